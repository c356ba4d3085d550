"""Where a NaN or Inf first appears, by the core's interpreter of the forward pass.

The generated module computes the whole loss in one call; when that loss is non-finite we
replay the same forward pass with ``graphspec.ir.interpret.Interpreter``, op by op through
the same kernels (and, given the same generator state, the same noise draws in the same
order), and stop at the first value that is not finite.  Slow and only used after a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from graphspec.ir.graph import IR
from graphspec.ir.interpret import Interpreter
from graphspec_numpy import kernels


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

    def nonfinite(nid: str, value: Any) -> bool:  # stops the walk at the first one
        return not _finite(value)

    interpreter = Interpreter(ir, kernels)
    with np.errstate(all="ignore"):
        walk = interpreter.run(params, inputs, interpreter.plan.loss_targets(),
                               training=training, rng=rng, on_value=nonfinite)
    if walk.stopped is None:
        return None
    value = walk.values[walk.stopped]
    kind = ir.node(walk.stopped).kind
    if kind == "op":
        return Culprit(walk.stopped, "op", f"produced {_count(value)} from finite inputs")
    what = "parameter" if kind == "param" else "input"
    hint = "the previous update diverged" if kind == "param" else "bad data"
    return Culprit(walk.stopped, what, f"holds {_count(value)} ({hint})")
