"""``decision_boundary``: a 2-D classifier's scores over a grid covering its data.

The classic picture: the plane of the two input features, the classifier's
decision regions and the data on top.  Writes ``<name>.npz`` (``boundary.npz``): the grid
axes ``gx`` and ``gy``, ``scores`` ``[len(gy), len(gx), k]``, ``kind`` (``logit`` for one
logit, ``probability`` for one probability, ``classes`` for k class scores) and the data
(``x_train``, ``y_train``, ``x_val``, ``y_val``; labels as class indices).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, NonNegativeFloat

from graphspec.analysis.context import CheckContext, Context
from graphspec.analysis.registry import Entry, Procedure, procedure
from graphspec.ir.graph import IR

PROBABILITY_LOSSES = {"bce"}  # losses that read their prediction as a probability


@procedure("decision_boundary")
class DecisionBoundary(Procedure):
    """Class scores of ``output`` on a ``resolution`` x ``resolution`` grid over the data of
    a classifier with a 2-feature ``input``, padded by ``pad`` of the data's extent."""

    stem = "boundary"
    input: str | None = None
    output: str | None = None
    resolution: int = Field(200, ge=10, le=2000)
    pad: NonNegativeFloat = 0.1

    def check(self, ctx: CheckContext) -> Procedure:
        x_name = ctx.feature_input(self.input)
        out = ctx.output(self.output)
        shape = ctx.ir.type(x_name).shape
        if len(shape) != 2 or shape[1] != 2:
            raise ctx.error(f"a decision boundary is drawn in the plane of 2 features; input "
                            f"'{x_name}' is {ctx.ir.type(x_name)}", "input" if self.input
                            else "procedure")
        oshape = ctx.ir.type(ctx.ir.outputs[out]).shape
        if len(oshape) != 2 or not isinstance(oshape[1], int):
            raise ctx.error(f"output '{out}' is {ctx.ir.type(ctx.ir.outputs[out])}; a "
                            "classifier's output is [batch, 1] (binary) or [batch, classes]",
                            "output" if self.output else "procedure")
        return self.model_copy(update={"input": x_name, "output": out})

    def run(self, ctx: Context, entry: Entry) -> dict[str, Any]:
        x_name, out = str(self.input), str(self.output)
        node = ctx.ir.outputs[out]
        xs = np.concatenate([a[x_name] for a in ctx.splits.values()])
        lo, hi = xs.min(axis=0), xs.max(axis=0)
        pad = self.pad * (hi - lo) + 1e-9
        gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], self.resolution)
        gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], self.resolution)
        mx, my = np.meshgrid(gx, gy)
        grid = np.column_stack([mx.ravel(), my.ravel()])
        scores = np.asarray(ctx.forward({x_name: grid}, ctx.rng(entry.index))[node],
                            dtype=np.float64)
        k = scores.shape[-1]
        arrays: dict[str, Any] = {
            "gx": gx, "gy": gy, "scores": scores.reshape(len(gy), len(gx), k),
            "kind": score_kind(ctx.ir, node, k),
        }
        target = ctx.target_of(out)
        for sp, a in ctx.splits.items():
            arrays[f"x_{sp}"] = a[x_name]
            if target is not None:
                arrays[f"y_{sp}"] = class_labels(a[target])
        ctx.write_npz(entry.name, arrays)
        return {"resolution": self.resolution, "kind": str(arrays["kind"])}


def score_kind(ir: IR, node: str, k: int) -> str:
    if k > 1:
        return "classes"
    for _, consumer in ir.graph.out_edges(node):
        if ir.node(consumer).op in PROBABILITY_LOSSES:
            return "probability"
    return "logit"


def class_labels(y: np.ndarray) -> np.ndarray:
    """Class indices from int labels, 0/1 floats or one-hot rows."""
    y = np.asarray(y)
    if y.ndim >= 2 and y.shape[-1] > 1:
        return y.argmax(-1)
    y = y.reshape(len(y))
    return (y > 0.5).astype(np.int64) if y.dtype.kind == "f" else y.astype(np.int64)
