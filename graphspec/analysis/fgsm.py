"""``fgsm``: accuracy under the fast gradient sign attack, for a range of budgets ε.

``x_adv = x + ε sign(∂L/∂x)`` (Goodfellow et al., 2015) with the gradient of the spec's
own loss, from ``loss_and_grads`` (whose gradients include the differentiable inputs),
in evaluation mode.  Each ε is then evaluated like a validation split.  Writes
``<name>.json`` (``robustness.json``)::

    {"procedure": "fgsm", "split": "val", "input": "x", "metric": "binary_accuracy",
     "epsilons": [0, 0.05, ...], "accuracy": [0.99, 0.9, ...], "loss": [...],
     "metrics": {"binary_accuracy": [...]}}
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, NonNegativeFloat

from graphspec.analysis.context import CHUNK, CheckContext, Context
from graphspec.analysis.registry import Entry, Procedure, procedure
from graphspec.errors import TrainingError, did_you_mean
from graphspec.ops.registry import Bound


@procedure("fgsm")
class Fgsm(Procedure):
    """Accuracy (the spec's first metric, or ``metric``) on ``split`` perturbed by FGSM
    with each budget in ``epsilons``; ``clip: [lo, hi]`` keeps inputs in a valid range."""

    stem = "robustness"
    epsilons: list[NonNegativeFloat] = Field(min_length=1, max_length=100)
    input: str | None = None
    metric: str | None = None
    split: Literal["val", "train"] = "val"
    clip: tuple[Bound, Bound] | None = None  # -.inf / .inf: no bound on that side

    def check(self, ctx: CheckContext) -> Procedure:
        x_name = ctx.differentiable_input(self.input)
        if not ctx.ir.metrics:
            raise ctx.error("fgsm reports accuracy under attack, but the spec has no metric",
                            "procedure", hint="add one to train.metrics, e.g. [accuracy]")
        if self.metric is not None and self.metric not in ctx.ir.metrics:
            raise ctx.error(f"unknown metric '{self.metric}'", "metric",
                            hint=did_you_mean(self.metric, ctx.ir.metrics)
                            or "metrics: " + ", ".join(ctx.ir.metrics))
        if self.clip is not None and self.clip[0] >= self.clip[1]:
            raise ctx.error(f"clip needs lo < hi, got {list(self.clip)}", "clip")
        return self.model_copy(update={"input": x_name,
                                       "metric": self.metric or ctx.ir.metrics[0]})

    def run(self, ctx: Context, entry: Entry) -> dict[str, Any]:
        x_name, metric = str(self.input), str(self.metric)
        split, data = ctx.split(self.split)
        rng = ctx.rng(entry.index)
        direction = _gradient_sign(ctx, data, x_name, rng)
        curves: dict[str, list[float]] = {}
        for eps in self.epsilons:
            x_adv = data[x_name] + eps * direction
            if self.clip is not None:
                x_adv = np.clip(x_adv, *self.clip)
            # The same noise stream for every ε: the curve shows the attack, not the draws.
            ev = ctx.evaluate({**data, x_name: x_adv}, ctx.rng(entry.index, 1))
            for k, v in ev.items():
                curves.setdefault(k, []).append(v)
        ctx.write_json(entry.name, {
            "procedure": entry.procedure, "at": ctx.at, "split": split, "input": x_name,
            "metric": metric, "epsilons": list(self.epsilons), "accuracy": curves[metric],
            "loss": curves["loss"], "metrics": {m: curves[m] for m in ctx.ir.metrics},
        })
        return {"epsilons": list(self.epsilons), "accuracy": curves[metric]}


def _gradient_sign(ctx: Context, data: dict[str, np.ndarray], x_name: str,
                   rng: np.random.Generator) -> np.ndarray:
    """sign(∂L/∂x) row by row; chunking scales each chunk's loss, never a sign."""
    n = len(data[x_name])
    parts = []
    for i in range(0, n, CHUNK):
        chunk = {k: v[i:i + CHUNK] for k, v in data.items()}
        res = ctx.grads(chunk, rng, training=False)
        if x_name not in res.grads:
            raise TrainingError(f"fgsm: the loss has no gradient with respect to '{x_name}'")
        parts.append(np.sign(np.asarray(res.grads[x_name], dtype=np.float64)))
    return np.concatenate(parts)
