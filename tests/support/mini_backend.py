"""A third backend, small: an interpreter over ``ir.order`` running the numpy kernels.

It is what docs/backends.md describes, written as a plugin would be: it imports only the
core and a kernel table, registers through the ``graphspec.backends`` entry-point group
(tests/backends/test_backend_plugin.py does that with a temporary dist-info), and is verified
against the reference with ``verify(spec, backends=("numpy", "mini"))``.  No code is generated: each
call walks the graph, and the backward pass walks it back with the registered VJPs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphspec.backend import Arrays, Capabilities, CompileOptions, LossResult
from graphspec.ir.graph import IR
from graphspec.ir.plan import Plan
from graphspec.train.groups import param_groups
from graphspec.train.schedules import lr_factor
from graphspec_numpy.kernels import SPECS, VJPS, forward
from graphspec_numpy.kernels._prelude import unbroadcast
from graphspec_numpy.optim import clip_grad_norm, make_optimizer


class MiniProgram:
    def __init__(self, ir: IR, options: CompileOptions) -> None:
        self.ir, self.options = ir, options
        self.dtype = np.dtype(options.dtype)
        self.plan = Plan(ir)

    def source(self) -> str:
        return "# the mini backend interprets the IR; it generates no code\n"

    def _cast(self, arrays: Arrays | None) -> Arrays:
        out = {}
        for k, v in (arrays or {}).items():
            a = np.asarray(v)
            out[k] = a.astype(self.dtype) if a.dtype.kind == "f" else a
        return out

    def _run(self, params: Arrays, inputs: Arrays, training: bool, noise: Arrays,
             targets: list[str], residuals: dict[str, Any] | None = None) -> tuple[Arrays, Arrays]:
        """Every value the targets need, and the new state buffers.  Noise drawn here is
        added to ``noise``, so the backward pass sees the same draws; with ``residuals``,
        what each op's forward hands its VJP goes there."""
        values = {**self._cast(params), **self._cast(inputs)}
        new_state: Arrays = {}
        for nid in self.plan.needed(targets):
            node = self.ir.op(nid)
            args, kw = self._call(nid, values, training, noise)
            if residuals is None:
                out = forward(node.op, args, kw)
            else:
                out, residuals[nid] = forward(node.op, args, kw, save=True)
            if node.opdef.has_state:
                out, state = out
                new_state.update(zip(node.state_args, state))
            values[nid] = np.asarray(out)
        return values, new_state

    def _call(self, nid: str, values: Arrays, training: bool,
              noise: Arrays) -> tuple[list[Any], dict[str, Any]]:
        node = self.ir.op(nid)
        kw = node.attrs.kernel_attrs()
        if node.opdef.uses_training:
            kw["training"] = training
        nz = node.attrs.noise() if node.opdef.stochastic else None
        args = [values[a] for a in node.inputs]
        if nz is not None:
            like = args[nz.like]
            if nid not in noise:  # training: draw natively
                rng = np.random.default_rng()
                noise[nid] = (rng.random(like.shape) if nz.kind == "uniform"
                              else rng.standard_normal(like.shape)).astype(self.dtype)
            kw["noise"] = noise[nid]
        return args, kw

    def forward(self, params: Arrays, inputs: Arrays, *, training: bool = False,
                noise: Arrays | None = None) -> Arrays:
        values, _ = self._run(params, inputs, training, self._cast(noise),
                              [f"output:{k}" for k in self.ir.outputs])
        return {k: values[v] for k, v in self.ir.outputs.items()}

    def evaluate(self, params: Arrays, inputs: Arrays, *, training: bool = False,
                 noise: Arrays | None = None) -> LossResult:
        targets = [f"output:{k}" for k in self.ir.outputs] + self.plan.loss_targets()
        values, state = self._run(params, inputs, training, self._cast(noise),
                                  targets + self.ir.metrics)
        terms = {lid: float(values[lid]) for lid, _ in self.ir.losses}
        loss = sum(w * terms[lid] for lid, w in self.ir.losses)
        return LossResult(float(loss), terms, {}, state,
                          {m: float(values[m]) for m in self.ir.metrics})

    def loss_and_grads(self, params: Arrays, inputs: Arrays, *, noise: Arrays | None = None,
                       training: bool = True) -> LossResult:
        noise = self._cast(noise)
        residuals: dict[str, Any] = {}
        values, state = self._run(params, inputs, training, noise, self.plan.loss_targets(),
                                  residuals)
        path = self.plan.grad_path()
        cot: Arrays = {lid: np.asarray(w, self.dtype) for lid, w in self.ir.losses if lid in path}
        for nid in reversed(self.plan.needed(self.plan.loss_targets())):
            node = self.ir.op(nid)
            if nid not in cot or node.op not in VJPS:
                continue
            args, kw = self._call(nid, values, training, noise)
            if SPECS[node.op].reads_residuals:
                kw["res"] = residuals[nid]
            grads = VJPS[node.op](cot[nid], values[nid], *args, **kw)
            for a, flag, g in zip(node.inputs, node.grad_flags, grads):
                if flag and a in path and g is not None:  # a value read twice adds up
                    g = unbroadcast(np.asarray(g), np.shape(values[a]))
                    cot[a] = cot[a] + g if a in cot else g
        grads = {leaf: cot.get(leaf, np.zeros_like(values[leaf]))
                 for leaf in self.plan.grad_leaves()}
        terms = {lid: float(values[lid]) for lid, _ in self.ir.losses}
        loss = sum(w * terms[lid] for lid, w in self.ir.losses)
        return LossResult(float(loss), terms, grads, state)

    def trainer(self, params: Arrays, train: Any, seed: int) -> MiniTrainer:
        return MiniTrainer(self, params, train)


class MiniTrainer:
    """The Trainer protocol with numpy's optimizers; takes injected noise (``set_noise``)."""

    def __init__(self, program: MiniProgram, params: Arrays, train: Any) -> None:
        self.program, self.ir, self.train = program, program.ir, train
        self.p = {k: np.array(v, dtype=program.dtype) for k, v in params.items()}
        self.optimizer = make_optimizer(train.optimizer, param_groups(self.ir, train.optimizer))
        self.data: dict[str, Arrays] = {}
        self.noise: Arrays | None = None
        self.norms: dict[str, float] = {}

    def set_noise(self, noise: Arrays | None) -> None:
        self.noise = noise

    def set_data(self, split: str, arrays: Arrays) -> None:
        self.data[split] = dict(arrays)

    def train_epoch(self, batches: list[np.ndarray], epoch: int) -> dict[str, float]:
        sums: dict[str, float] = {}
        for step, idx in enumerate(batches):
            x = {k: v[idx] for k, v in self.data["train"].items()}
            res = self.program.loss_and_grads(self.p, x, noise=self.noise)
            grads = {k: res.grads[k] for k in self.ir.params}
            if self.train.clip_grad_norm is not None:
                grads, _, _ = clip_grad_norm(grads, self.train.clip_grad_norm)
            self.norms = {k: float(np.linalg.norm(g)) for k, g in grads.items()}
            factor = lr_factor(self.train.schedule, epoch, step, len(batches))
            self.optimizer.step(self.p, grads, factor)
            self.p.update(res.state)
            for k, v in [("loss", res.loss), *res.terms.items()]:
                sums[k] = sums.get(k, 0.0) + v / len(batches)
        return sums

    def evaluate(self, split: str) -> dict[str, float]:
        res = self.program.evaluate(self.p, self.data[split])
        return {"loss": res.loss, **res.terms, **res.metrics}

    def params(self) -> Arrays:
        return {k: np.array(v, dtype=np.float64) for k, v in self.p.items()}

    def load_params(self, arrays: Arrays) -> None:
        for k, v in arrays.items():
            self.p[k][...] = v

    def state_dict(self) -> Arrays:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: Arrays) -> None:
        self.optimizer.load_state_dict(state, self.p)

    def grad_norms(self) -> dict[str, float]:
        return dict(self.norms)


class MiniBackend:
    name = "mini"
    # Its trainers take injected noise (MiniTrainer.set_noise): verify compares their steps
    # on stochastic specs.  Nothing else is declared, so the core's defaults apply.
    capabilities = Capabilities(noise_injection=True)

    def compile(self, ir: IR, options: CompileOptions) -> MiniProgram:
        return MiniProgram(ir, options)


class BareBackend:
    """The same interpreter declaring nothing (no ``capabilities``): a minimal plugin."""

    name = "bare"

    def compile(self, ir: IR, options: CompileOptions) -> MiniProgram:
        return MiniProgram(ir, options)


backend = MiniBackend()
bare = BareBackend()
