"""A node-by-node interpreter of the forward pass, to find where a NaN or Inf first appears.

The generated module computes the whole loss in one call; when that loss is non-finite we
replay the same forward pass here, op by op through the same kernels (and, given the same
generator state, the same noise draws in the same order), and stop at the first value that
is not finite.  Slow and only used after a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from graphspec.ir.graph import IR
from graphspec.ir.plan import Plan
from graphspec_numpy.kernels import KERNELS


@dataclass(frozen=True)
class Culprit:
    node: str
    kind: str  # "input" | "param" | "op"
    detail: str

    def describe(self, ir: IR) -> str:
        node = ir.node(self.node)
        where = f" at {node.src}" if node.src else ""
        if self.kind == "op":
            return f"node '{self.node}' ({node.op}{where}) {self.detail}"
        return f"{self.kind} '{self.node}'{where} {self.detail}"


def _finite(a: Any) -> bool:
    arr = np.asarray(a)
    return arr.dtype.kind not in "fc" or bool(np.isfinite(arr).all())


def _count(a: Any) -> str:
    arr = np.asarray(a)
    bad = ~np.isfinite(arr)
    kinds = [k for k, m in (("nan", np.isnan(arr)), ("inf", np.isinf(arr))) if m.any()]
    return f"{int(bad.sum())} of {arr.size} values {'/'.join(kinds)}"


def first_nonfinite(
    ir: IR, params: dict[str, np.ndarray], inputs: dict[str, np.ndarray], *,
    training: bool = True, rng: np.random.Generator | None = None,
) -> Culprit | None:
    """The first leaf read or op output on the way to the loss that is NaN or Inf, or None.

    ``params`` and ``inputs`` must already have the program's dtypes; ``rng`` in the state
    the generated ``loss_and_grads`` saw reproduces its noise draws."""
    plan = Plan(ir)
    rng = rng if rng is not None else np.random.default_rng()
    values: dict[str, Any] = {}
    checked: set[str] = set()
    for nid in plan.needed(plan.loss_targets()):
        node = ir.op(nid)
        for arg in node.inputs:
            if arg in values or arg in checked:
                continue
            kind = ir.node(arg).kind
            value = inputs[arg] if kind == "input" else params[arg]
            checked.add(arg)
            if not _finite(value):
                what = "parameter" if kind == "param" else "input"
                hint = "the previous update diverged" if kind == "param" else "bad data"
                return Culprit(arg, what, f"holds {_count(value)} ({hint})")
            values[arg] = value
        opdef = node.opdef
        args = [values[a] for a in node.inputs]
        kwargs = node.attrs.kernel_attrs()
        if opdef.uses_training:
            kwargs["training"] = training
        if opdef.stochastic:
            nz = node.attrs.noise()
            if nz is not None:  # drawn exactly as the generated _draw does
                like = np.asarray(args[nz.like])
                kwargs["noise"] = (
                    rng.random(like.shape, dtype=like.dtype) if nz.kind == "uniform"
                    else rng.standard_normal(like.shape, dtype=like.dtype)
                )
        with np.errstate(all="ignore"):
            out = KERNELS[node.op](*args, **kwargs)
        if opdef.has_state:
            out = out[0]
        if not _finite(out):
            return Culprit(nid, "op", f"produced {_count(out)} from finite inputs")
        values[nid] = out
    return None
