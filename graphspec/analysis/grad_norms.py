"""``grad_norms``: the gradient norm of each parameter on one batch.

At initialization (``at: init``) this shows vanishing gradients: in
a deep sigmoid network the norms shrink layer by layer towards the input, in a ReLU
network they do not.  Writes ``<name>.json`` (``grad_norms.json``)::

    {"procedure": "grad_norms", "at": "init", "batch": 64, "loss": 0.69,
     "norms": {"l0.weight": 1e-9, ...},      # every trainable parameter, input to output
     "weights": ["l0.weight", ...]}          # the penalized ones (weights, not biases)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import PositiveInt

from graphspec.analysis.context import Context
from graphspec.analysis.registry import Entry, Procedure, procedure


@procedure("grad_norms")
class GradNorms(Procedure):
    """Per-parameter gradient norms on ``batch`` rows (default: train.batch_size) of
    ``split``, in training mode unless ``training: false``."""

    stem = "grad_norms"
    batch: PositiveInt | Literal["full"] | None = None
    split: Literal["train", "val"] = "train"
    training: bool = True

    def run(self, ctx: Context, entry: Entry) -> dict[str, Any]:
        rng = ctx.rng(entry.index)
        inputs = ctx.batch(self.split, self.batch, rng)
        res = ctx.grads(inputs, rng, self.training)
        norms = {p: float(np.linalg.norm(np.ravel(res.grads[p]))) for p in ctx.ir.params
                 if p in res.grads}
        weights = [p for p in norms if ctx.ir.param(p).decl.penalize]
        ctx.write_json(entry.name, {
            "procedure": entry.procedure, "at": ctx.at, "split": ctx.split(self.split)[0],
            "batch": len(next(iter(inputs.values()))), "loss": res.loss,
            "norms": norms, "weights": weights,
        })
        shown = [norms[p] for p in weights] or list(norms.values())
        return {"first": shown[0], "last": shown[-1]} if shown else {}
