"""The reference interpreter: the IR run node by node through a backend's kernel table.

In the spirit of torch.fx's ``Interpreter`` and ONNX's ``ReferenceEvaluator``: nothing is
generated; :meth:`Interpreter.run` walks ``Plan.needed(targets)`` calling each op's kernel,
keeps every value, and hands each one to an optional hook that may stop the walk;
:meth:`Interpreter.backward` walks the op nodes back with their VJPs.  It computes what a
generated module computes, in the same order (the numpy backend's generated module is
tested to agree with it exactly), so it serves wherever values are wanted one node at a
time: the numpy backend's search for the first non-finite value, the conformance suite,
and small plug-in backends (tests/support/mini_backend.py).

The core never imports a backend: the kernel table is handed in (:class:`Kernels`;
``graphspec_numpy.kernels`` is one).  Arrays are numpy arrays keyed by node id.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from graphspec.backend import Arrays, LossResult
from graphspec.ir.graph import IR
from graphspec.ir.plan import Plan


class Kernels(Protocol):
    """A backend's kernel table as the interpreter calls it; ``graphspec_numpy.kernels``
    is one.  ``forward`` calls op ``op``'s kernel as ``kernel(*args, **kwargs)`` (with
    ``save``: returns ``(out, residuals)``); ``backward`` calls its VJP with the cotangent
    ``g``, the output ``y``, the same arguments and keywords, the residuals the forward
    saved and, when some gradient is not wanted, ``needs`` (one bool per argument); it
    returns one gradient (or None) per argument.  ``unbroadcast(g, shape)`` sums a
    gradient down to its argument's shape."""

    @property
    def VJPS(self) -> Mapping[str, Callable[..., Any]]: ...  # noqa: N802 - the table's name

    def forward(
        self, op: str, args: Sequence[Any], kwargs: dict[str, Any], save: bool = False
    ) -> Any: ...

    def backward(
        self,
        op: str,
        g: Any,
        y: Any,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        res: Any = None,
        needs: Sequence[bool] | None = None,
    ) -> tuple[Any, ...]: ...

    def unbroadcast(self, g: Any, shape: tuple[int, ...]) -> Any: ...


OnValue = Callable[[str, Any], bool]
"""``on_value(node id, value)``: called for each leaf when an op first reads it and for each
op's output as it is computed; returning True stops the walk there."""


@dataclass
class Values:
    """One forward walk: every leaf read and every op output by node id, the new value of
    each state buffer an op updated, the noise each stochastic node used (given or drawn),
    the residuals kept for the backward pass, and the node the hook stopped at (or None)."""

    values: Arrays = field(default_factory=dict)
    state: Arrays = field(default_factory=dict)
    noise: Arrays = field(default_factory=dict)
    residuals: dict[str, Any] = field(default_factory=dict)
    stopped: str | None = None


class Interpreter:
    def __init__(self, ir: IR, kernels: Kernels) -> None:
        self.ir, self.kernels = ir, kernels
        self.plan = Plan(ir)
        # Draws when neither noise nor a generator is given, as a generated module's _RNG.
        self.rng = np.random.default_rng()

    # ---- the forward pass -----------------------------------------------------------------
    def run(
        self,
        params: Arrays,
        inputs: Arrays,
        targets: Iterable[str],
        *,
        training: bool,
        noise: Arrays | None = None,
        rng: np.random.Generator | None = None,
        on_value: OnValue | None = None,
        save: Collection[str] = (),
    ) -> Values:
        """Compute the op nodes ``targets`` need, in order.  Noise a node is not given is
        drawn from ``rng`` like the generated ``_draw`` (none for ``uses_training`` ops in
        evaluation); the op nodes in ``save`` keep their residuals for :meth:`backward`."""
        leaves = {**params, **inputs}
        out = Values(noise=dict(noise or {}))
        rng = self.rng if rng is None else rng
        for nid in self.plan.needed(targets):
            for a in self.ir.op(nid).inputs:
                if a not in out.values:
                    out.values[a] = leaves[a]
                    if on_value is not None and on_value(a, leaves[a]):
                        out.stopped = a
                        return out
            out.values[nid] = self._forward(nid, out, training, rng, nid in save)
            if on_value is not None and on_value(nid, out.values[nid]):
                out.stopped = nid
                return out
        return out

    def _keywords(
        self, nid: str, values: Values, training: bool, rng: np.random.Generator
    ) -> dict[str, Any]:
        """The kernel's keywords: attributes, ``training``, ``noise`` (recorded in ``values``
        so the backward pass sees the same draws)."""
        node = self.ir.op(nid)
        opdef = node.opdef
        kw = node.attrs.kernel_attrs()
        if opdef.uses_training:
            kw["training"] = training
        nz = node.attrs.noise() if opdef.stochastic else None
        if nz is None:
            return kw
        if opdef.uses_training and not training:  # dropout draws nothing in evaluation
            kw["noise"] = None
            return kw
        if nid not in values.noise:
            like = np.asarray(values.values[node.inputs[nz.like]])
            values.noise[nid] = (
                rng.random(like.shape, dtype=like.dtype)
                if nz.kind == "uniform"
                else rng.standard_normal(like.shape, dtype=like.dtype)
            )
        kw["noise"] = values.noise[nid]
        return kw

    def _forward(
        self, nid: str, values: Values, training: bool, rng: np.random.Generator, save: bool
    ) -> Any:
        node = self.ir.op(nid)
        args = [values.values[a] for a in node.inputs]
        kw = self._keywords(nid, values, training, rng)
        out = self.kernels.forward(node.op, args, kw, save=save)
        if save:
            out, values.residuals[nid] = out
        if not node.opdef.has_state:
            return out
        y, new = out
        values.state.update(zip(node.state_args, new))
        return y

    # ---- the backward pass ----------------------------------------------------------------
    def backward(
        self,
        fwd: Values,
        seeds: Mapping[str, Any],
        path: Collection[str],
        training: bool,
    ) -> Arrays:
        """Cotangents by reverse-mode accumulation from ``seeds`` (node id -> dL/d node),
        through the op nodes of ``fwd`` that lie on ``path`` (``Plan.grad_path``): each VJP
        once, for the arguments on the path it declares differentiable, unbroadcast to the
        argument's shape and added up where a value is read twice.  Returns every
        cotangent reached, leaves included."""
        cot = dict(seeds)
        ops = [n for n in fwd.values if self.ir.node(n).kind == "op"]
        for nid in reversed(ops):
            if nid not in path or nid not in cot:
                continue
            node = self.ir.op(nid)
            if node.op not in self.kernels.VJPS:
                continue
            args = node.inputs
            wanted = [f and a in path for a, f in zip(args, node.grad_flags)]
            if not any(wanted):
                continue
            grads = self.kernels.backward(
                node.op,
                cot[nid],
                fwd.values[nid],
                [fwd.values[a] for a in args],
                self._keywords(nid, fwd, training, self.rng),
                res=fwd.residuals.get(nid),
                needs=None if all(wanted) else wanted,
            )
            if len(grads) != len(args):
                raise ValueError(
                    f"the VJP of '{node.op}' returned {len(grads)} gradients "
                    f"for {len(args)} arguments"
                )
            for a, want, g in zip(args, wanted, grads):
                if want and g is not None:  # a value read twice adds up
                    g = self.kernels.unbroadcast(np.asarray(g), np.shape(fwd.values[a]))
                    cot[a] = cot[a] + g if a in cot else g
        return cot

    # ---- what a Program computes ----------------------------------------------------------
    def forward(
        self,
        params: Arrays,
        inputs: Arrays,
        *,
        training: bool = False,
        noise: Arrays | None = None,
        rng: np.random.Generator | None = None,
    ) -> Arrays:
        """The outputs, by name."""
        fwd = self.run(
            params,
            inputs,
            [f"output:{k}" for k in self.ir.outputs],
            training=training,
            noise=noise,
            rng=rng,
        )
        return {k: self._value(fwd, v, params, inputs) for k, v in self.ir.outputs.items()}

    def evaluate(
        self,
        params: Arrays,
        inputs: Arrays,
        *,
        training: bool = False,
        noise: Arrays | None = None,
        rng: np.random.Generator | None = None,
    ) -> LossResult:
        """Loss, terms, metrics and new state, without gradients."""
        targets = [f"output:{k}" for k in self.ir.outputs] + self.plan.loss_targets()
        fwd = self.run(
            params, inputs, targets + list(self.ir.metrics), training=training, noise=noise, rng=rng
        )
        res = self._losses(fwd, {}, fwd.state)
        res.metrics = {m: float(fwd.values[m]) for m in self.ir.metrics}
        return res

    def loss_and_grads(
        self,
        params: Arrays,
        inputs: Arrays,
        *,
        training: bool = True,
        noise: Arrays | None = None,
        rng: np.random.Generator | None = None,
        leaves: Sequence[str] | None = None,
    ) -> LossResult:
        """Loss, terms, the gradient of each of ``leaves`` (by default ``Plan.grad_leaves``:
        zeros for one the loss does not reach) and the new state."""
        leaves = self.plan.grad_leaves() if leaves is None else list(leaves)
        wanted = set(leaves)
        path = self.plan.grad_path([v for v in self.plan.leaves() if v in wanted])
        fwd = self.run(
            params,
            inputs,
            self.plan.loss_targets(),
            training=training,
            noise=noise,
            rng=rng,
            save=path,
        )
        # The loss's coefficients are the cotangents of its terms, as generated code writes.
        cot = self.backward(
            fwd, {lid: w for lid, w in self.ir.losses if lid in path}, path, training
        )
        grads = {
            v: cot[v] if v in cot else np.zeros_like(self._value(fwd, v, params, inputs))
            for v in leaves
        }
        return self._losses(fwd, grads, fwd.state)

    def _losses(self, fwd: Values, grads: Arrays, state: Arrays) -> LossResult:
        terms = {lid: fwd.values[lid] for lid, _ in self.ir.losses}
        loss: Any = 0.0
        for lid, w in self.ir.losses:  # summed in order, as generated code adds them up
            loss = loss + w * terms[lid]
        return LossResult(float(loss), {k: float(v) for k, v in terms.items()}, grads, state)

    @staticmethod
    def _value(fwd: Values, nid: str, params: Arrays, inputs: Arrays) -> Any:
        """A node's value; a leaf no op read comes straight from the arguments."""
        if nid in fwd.values:
            return fwd.values[nid]
        return params[nid] if nid in params else inputs[nid]
