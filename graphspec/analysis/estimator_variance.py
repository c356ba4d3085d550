"""``estimator_variance``: how noisy a stochastic gradient estimate is, at fixed parameters.

On one fixed batch, ``samples`` gradient evaluations each draw fresh noise for the
stochastic ops; the spread of the gradients across draws is the estimator's variance
(REINFORCE's score-function estimate against the reparameterized one: same expectation,
very different variance).  Writes ``<name>.json`` (``estimator_variance.json``)::

    {"procedure": "estimator_variance", "samples": 200, "batch": 32,
     "total_variance": 1.3,            # sum over the chosen params' elements of Var[g]
     "mean_norm": 0.4,                 # norm of the mean gradient (the signal)
     "params": {"mu": {"variance": 0.1, "total_variance": 0.3, "mean_norm": 0.2,
                       "snr": 0.36}, ...}}
"""

from __future__ import annotations

import fnmatch
from typing import Any, Literal

import numpy as np
from pydantic import Field, PositiveInt

from graphspec.analysis.context import CheckContext, Context
from graphspec.analysis.registry import Entry, Procedure, procedure
from graphspec.errors import did_you_mean
from graphspec.train.groups import WORDS


@procedure("estimator_variance")
class EstimatorVariance(Procedure):
    """Variance across ``samples`` noise draws of the gradient of ``params`` (names or
    globs, or 'weights'/'biases'; default: every trainable parameter) on one batch."""

    stem = "estimator_variance"
    samples: int = Field(100, ge=2, le=100_000)
    params: list[str] | None = Field(default=None, min_length=1)
    batch: PositiveInt | Literal["full"] | None = None
    split: Literal["train", "val"] = "train"
    training: bool = True

    def check(self, ctx: CheckContext) -> Procedure:
        if not ctx.stochastic(self.training):
            raise ctx.error("estimator_variance needs a stochastic model: without noise "
                            "every gradient evaluation is the same", "procedure")
        chosen: list[str] = []
        for i, pattern in enumerate(self.params or ["*"]):
            hits = [p for p in ctx.ir.params if _matches(ctx, pattern, p)]
            if not hits:
                raise ctx.error(f"'{pattern}' matches no trainable parameter", "params", i,
                                hint=did_you_mean(pattern, ctx.ir.params)
                                or "parameters: " + ", ".join(ctx.ir.params[:12]))
            chosen += [p for p in hits if p not in chosen]
        return self.model_copy(update={"params": [p for p in ctx.ir.params if p in chosen]})

    def run(self, ctx: Context, entry: Entry) -> dict[str, Any]:
        names = list(self.params or [])
        inputs = ctx.batch(self.split, self.batch, ctx.rng(entry.index))
        grads: dict[str, list[np.ndarray]] = {p: [] for p in names}
        for s in range(self.samples):
            res = ctx.grads(inputs, ctx.rng(entry.index, s + 1), self.training)
            for p in names:
                grads[p].append(np.asarray(res.grads[p], dtype=np.float64).ravel())
        per: dict[str, dict[str, float | None]] = {}
        total_var = 0.0
        mean_sq = 0.0
        for p in names:
            g = np.stack(grads[p])  # [samples, elements]
            var = g.var(axis=0, ddof=1)
            mean = g.mean(axis=0)
            per[p] = {"variance": float(var.mean()), "total_variance": float(var.sum()),
                      "mean_norm": float(np.linalg.norm(mean)),
                      "snr": float(np.linalg.norm(mean) / np.sqrt(var.sum()))
                      if var.sum() > 0 else None}
            total_var += float(var.sum())
            mean_sq += float(mean @ mean)
        summary = {"total_variance": total_var, "mean_norm": float(np.sqrt(mean_sq))}
        ctx.write_json(entry.name, {
            "procedure": entry.procedure, "at": ctx.at, "samples": self.samples,
            "batch": len(next(iter(inputs.values()))), **summary, "params": per,
        })
        return summary


def _matches(ctx: CheckContext, pattern: str, name: str) -> bool:
    if pattern in WORDS:
        return bool(ctx.ir.param(name).decl.penalize) == WORDS[pattern]
    return fnmatch.fnmatchcase(name, pattern)
