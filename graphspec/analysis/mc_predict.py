"""``mc_predict``: Monte-Carlo prediction of a stochastic model, mean and spread.

Each of ``samples`` forward passes draws fresh noise for every stochastic op (dropout in
training mode, ``gaussian_sample`` weights of a Bayesian layer...); the predictive mean
and standard deviation are taken over the passes.  For a 1-D input the passes run on a
grid over the data's range widened by ``extend`` on each side (so the picture shows the
uncertainty grow away from the data), else on the ``split`` rows.  Writes
``<name>.npz`` (``predictive.npz``): ``x``, ``mean``, ``std``, ``draws`` (the first few
passes), and the data (``x_train``, ``y_train``, ``x_val``, ``y_val``) for the picture.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, NonNegativeFloat

from graphspec.analysis.context import CheckContext, Context
from graphspec.analysis.registry import Entry, Procedure, procedure

KEPT_DRAWS = 20  # passes kept whole, to draw a few sample functions


@procedure("mc_predict")
class McPredict(Procedure):
    """Mean and std of output ``output`` over ``samples`` noise draws (``training: true``
    keeps dropout on; batch norm then uses the batch's statistics)."""

    stem = "predictive"
    samples: int = Field(100, ge=2, le=100_000)
    input: str | None = None
    output: str | None = None
    training: bool = True
    grid: int = Field(200, ge=2, le=100_000)
    extend: NonNegativeFloat = 0.25
    split: Literal["val", "train"] = "val"

    def check(self, ctx: CheckContext) -> Procedure:
        x_name = ctx.feature_input(self.input)
        out = ctx.output(self.output)
        if not ctx.stochastic(self.training):
            raise ctx.error(
                "mc_predict needs a stochastic model: every pass would give the same numbers",
                "procedure", hint="models with dropout (training: true) or sampling ops "
                "(gaussian_sample...) have a predictive spread")
        return self.model_copy(update={"input": x_name, "output": out})

    def run(self, ctx: Context, entry: Entry) -> dict[str, Any]:
        x_name, out = str(self.input), str(self.output)
        node = ctx.ir.outputs[out]
        target = ctx.target_of(out)
        split, data = ctx.split(self.split)
        one_d = _is_one_d(data[x_name])
        if one_d:
            xs = np.concatenate([a[x_name].reshape(-1) for a in ctx.splits.values()])
            lo, hi = float(xs.min()), float(xs.max())
            pad = self.extend * (hi - lo)
            x = np.linspace(lo - pad, hi + pad, self.grid).reshape(
                (self.grid,) + data[x_name].shape[1:])
        else:
            x = data[x_name]
        # A grid has only the feature; rows of a split bring every input they have.
        inputs = {x_name: x} if one_d else dict(data)
        total = np.zeros(0)
        total_sq = np.zeros(0)
        draws = []
        for s in range(self.samples):
            y = np.asarray(ctx.forward(inputs, ctx.rng(entry.index, s), self.training)[node],
                           dtype=np.float64)
            if s == 0:
                total, total_sq = np.zeros_like(y), np.zeros_like(y)
            total += y
            total_sq += y * y
            if s < KEPT_DRAWS:
                draws.append(y)
        mean = total / self.samples
        # Unbiased sample variance from the two running sums; tiny negatives are rounding.
        var = np.maximum(total_sq - self.samples * mean * mean, 0.0) / (self.samples - 1)
        std = np.sqrt(var)
        arrays: dict[str, Any] = {"x": x, "mean": mean, "std": std, "draws": np.stack(draws),
                                  "one_d": one_d, "split": split}
        for sp, a in ctx.splits.items():
            arrays[f"x_{sp}"] = a[x_name]
            if target is not None:
                arrays[f"y_{sp}"] = a[target]
        ctx.write_npz(entry.name, arrays)
        summary: dict[str, Any] = {"samples": self.samples, "mean_std": float(std.mean())}
        if one_d:
            inside = (x.reshape(len(x), -1)[:, 0] >= lo) & (x.reshape(len(x), -1)[:, 0] <= hi)
            per_row = std.reshape(len(x), -1).mean(axis=1)
            summary["std_inside_data"] = float(per_row[inside].mean())
            if (~inside).any():
                summary["std_outside_data"] = float(per_row[~inside].mean())
        return summary


def _is_one_d(x: np.ndarray) -> bool:
    return x.ndim == 1 or (x.ndim == 2 and x.shape[1] == 1)
