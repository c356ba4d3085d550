"""Losses (scalar, mean over the batch) and weight penalties.

Targets are never differentiated. Classification losses take the classes on the last axis
(or the ``axis`` they are given) and average over every other position (the batch, and the
length for sequences).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, NonNegativeFloat, StrictInt

from graphspec.ops.registry import (
    Attrs,
    Input,
    OptionAttrs,
    Sample,
    ShapeError,
    TensorType,
    broadcast,
    op,
)

# Targets take no gradient and may be class indices (int) or values (float).
_TARGET = Input("target", differentiable=False, dtype="any")


class _Pairwise(Attrs):
    """Base: a prediction and a target of broadcast-compatible shapes, reduced to a scalar."""

    def infer(self, pred: TensorType, target: TensorType) -> TensorType:
        try:
            broadcast(pred, target)
        except ShapeError:
            raise ShapeError(f"prediction {pred} and target {target} do not match") from None
        if broadcast(pred, target) != pred.shape:
            raise ShapeError(f"target {target} would broadcast prediction {pred} to a new shape")
        return TensorType(())

    def flops(self, *types: TensorType, out: TensorType) -> int:
        return 4 * types[0].numel()


def _extreme_logits(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Logits with some entries at ±1000, where a naive formula overflows or takes log(0)."""
    z = rng.normal(size=shape)
    flat = z.reshape(-1)
    flat[: min(4, flat.size)] = [1000.0, -1000.0, 1000.0, -1000.0][: min(4, flat.size)]
    return z


@op("mse", inputs=["pred", _TARGET], category="loss")
class MSE(_Pairwise):
    """Mean squared error ``mean((pred - target)^2)`` over every element."""

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"pred": rng.normal(size=(4, 2)), "target": rng.normal(size=(4, 2))})
        yield Sample(
            {"pred": rng.normal(size=(3, 2, 2)), "target": rng.normal(size=(2,))},
            note="target broadcast over the batch",
        )


@op("bce", inputs=["prob", _TARGET], category="loss")
class BCE(_Pairwise):
    """Binary cross-entropy on probabilities, ``-mean(t log p + (1 - t) log(1 - p))``.

    As torch's ``binary_cross_entropy``, each log is clamped at -100, so a probability of
    exactly 0 or 1 gives a finite loss, never NaN; the gradient divides by
    ``max(p (1 - p), 1e-12)``. Prefer ``bce_with_logits`` on logits: it is exact where a
    sigmoid has rounded to 0 or 1.
    """

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample(
            {
                "prob": rng.uniform(0.05, 0.95, size=(5, 1)),
                "target": rng.integers(0, 2, size=(5, 1)).astype(float),
            }
        )
        yield Sample(
            {
                "prob": rng.uniform(0.05, 0.95, size=(3, 4)),
                "target": rng.uniform(0, 1, size=(3, 4)),
            },
            note="soft targets",
        )


@op("bce_with_logits", inputs=["logits", _TARGET], category="loss")
class BCEWithLogits(_Pairwise):
    """Binary cross-entropy on logits, ``mean(softplus(z) - y z)``; finite at any logit."""

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample(
            {
                "logits": rng.normal(size=(5, 1)) * 2,
                "target": rng.integers(0, 2, size=(5, 1)).astype(float),
            }
        )
        yield Sample(
            {
                "logits": _extreme_logits(rng, (6, 1)),
                "target": np.array([[1.0], [0.0], [0.0], [1.0], [1.0], [0.0]]),
            },
            note="logits ±1000, right and wrong",
        )


class ClassAxis(OptionAttrs):
    """The options of an op that reads classes along one axis: cross_entropy, nll and the
    accuracy metric (which takes them from the loss it accompanies)."""

    ignore_index: StrictInt | None = None
    axis: StrictInt = -1

    def class_axis(self, pred: TensorType) -> int:
        """The class axis of a prediction, as a non-negative index."""
        what = type(self).op_name  # type: ignore[attr-defined]
        if pred.rank < 1:
            raise ShapeError(f"{what} needs logits with a class (last) axis, got shape {pred}")
        if not -pred.rank <= self.axis < pred.rank:
            raise ShapeError(
                f"{what}'s class axis {self.axis} is out of range for its rank-{pred.rank} "
                f"input {pred}"
            )
        return self.axis % pred.rank


class ClassLoss(ClassAxis):
    """Base of cross_entropy and nll: the loss options and the target rule."""

    class_weights: list[NonNegativeFloat] | None = None
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    reduction: Literal["mean", "sum"] = "mean"
    probability_targets: ClassVar[bool] = False

    def infer(self, pred: TensorType, target: TensorType) -> TensorType:
        ax = self.class_axis(pred)
        probs = self._check_targets(pred, target, ax)
        what = type(self).op_name  # type: ignore[attr-defined]
        if probs and self.ignore_index is not None:
            raise ShapeError(
                f"{what}'s ignore_index applies to integer class targets; targets {target} "
                f"are one-hot or probability rows of the logits' shape {pred}"
            )
        classes = pred.shape[ax]
        if self.class_weights is not None and classes != len(self.class_weights):
            raise ShapeError(
                f"{what}'s class_weights has {len(self.class_weights)} entries, but the "
                f"logits {pred} have {classes} classes (axis {self.axis})"
            )
        return TensorType(())

    def _check_targets(self, pred: TensorType, target: TensorType, ax: int) -> bool:
        """Whether ``target`` holds probability rows (else integer class indices): indices
        are shaped like the logits without their class axis, or with a class axis of 1."""
        what = type(self).op_name  # type: ignore[attr-defined]
        lead = pred.shape[:ax] + pred.shape[ax + 1 :]
        kept = pred.shape[:ax] + (1,) + pred.shape[ax + 1 :]
        if target.dtype == "int" and target.shape in (lead, kept):
            return False
        if self.probability_targets and target.shape == pred.shape:
            return True  # one-hot rows or probabilities (an int one-hot works too)
        indices = TensorType(lead, "int")
        # The messages of the default (last) class axis are those from before the option.
        on = "" if self.axis == -1 else f" (classes on axis {self.axis})"
        other = self._fitting_axis(pred, target, ax)
        hint = f": with the classes on axis {other}, set axis: {other}" if other is not None else ""
        if not self.probability_targets:
            raise ShapeError(
                f"{what} needs integer class targets of shape {indices} for logits {pred}{on}, "
                f"got {target}{hint}"
            )
        if target.dtype != "int" and target.shape in (lead, kept):
            raise ShapeError(
                f"{what} targets {target} look like class indices but are float: declare the "
                f"input with dtype int, or give one-hot targets of the logits' shape {pred}"
            )
        raise ShapeError(
            f"{what} targets {target} fit neither integer classes {indices} nor one-hot or "
            f"probability rows {pred}{on}{hint}"
        )

    @staticmethod
    def _fitting_axis(pred: TensorType, target: TensorType, ax: int) -> int | None:
        """Another class axis that integer targets of this shape would fit, for the hint."""
        for other in range(pred.rank):
            if other != ax and target.shape == pred.shape[:other] + pred.shape[other + 1 :]:
                return other
        return None

    @classmethod
    def option_samples(cls, rng: np.random.Generator, pred: str) -> Any:
        """One sample per option (not every combination); ``pred`` names the first input."""
        z = rng.normal(size=(6, 4))
        labels = np.array([0, 3, 1, 3, 2, 1])
        yield Sample(
            {pred: z, "target": labels}, {"class_weights": [0.5, 2.0, 1.0, 0.25]},
            note="class_weights",
        )
        yield Sample(
            {pred: z, "target": np.array([0, -100, 1, 3, -100, 1])}, {"ignore_index": -100},
            note="ignore_index",
        )
        yield Sample({pred: z, "target": labels}, {"label_smoothing": 0.2}, note="label_smoothing")
        yield Sample({pred: z, "target": labels}, {"reduction": "sum"}, note="reduction sum")
        yield Sample(
            {pred: rng.normal(size=(2, 3, 2, 2)), "target": rng.integers(0, 3, (2, 2, 2))},
            {"axis": 1}, note="classes on axis 1: per-pixel [batch, classes, H, W]",
        )
        yield Sample(
            {pred: z, "target": np.array([2, 3, 2, 0, 2, 1])},
            {"class_weights": [1.0, 0.5, 2.0, 1.5], "ignore_index": 2, "label_smoothing": 0.1},
            note="weights, ignore_index and smoothing together",
        )


@op("cross_entropy", inputs=["logits", _TARGET], category="loss")
class CrossEntropy(ClassLoss):
    """Softmax cross-entropy on logits, mean over every position but the class axis.

    ``target`` holds integer class indices (the logits' shape without the class axis, or
    with it of size 1) or, with the logits' shape, one-hot rows or class probabilities:
    ``-mean_rows(sum(t * log softmax(z)))``. Log-sum-exp keeps it finite at any logit.

    Options, as torch's ``F.cross_entropy``: ``axis`` (default -1, the last; 1 for torch's
    ``[batch, classes, H, W]`` layout), ``class_weights`` (one per class: each position is
    weighted by its target class's weight, and the mean divides by the sum of those
    weights; with probability targets, each class term is weighted and the mean divides by
    the number of positions), ``ignore_index`` (a target value whose positions contribute
    nothing and leave the mean's denominator; integer targets only), ``label_smoothing``
    ``e`` in [0, 1) (the target mixes ``1 - e`` of itself with ``e`` spread evenly over the
    classes, the spread term weighted by ``class_weights`` too), ``reduction`` ``mean`` or
    ``sum``.
    """

    probability_targets: ClassVar[bool] = True

    def flops(self, logits: TensorType, *rest: TensorType, out: TensorType) -> int:
        return 6 * logits.numel()

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        z = rng.normal(size=(5, 4))
        labels = rng.integers(0, 4, size=5)
        yield Sample({"logits": z, "target": labels}, note="integer targets")
        yield Sample({"logits": z, "target": np.eye(4)[labels]}, note="one-hot targets")
        yield Sample({"logits": z, "target": labels[:, None]}, note="integer targets [batch, 1]")
        yield Sample(
            {"logits": rng.normal(size=(3, 4)), "target": rng.dirichlet(np.ones(4), size=3)},
            note="probability targets",
        )
        yield Sample(
            {"logits": rng.normal(size=(2, 3, 4)), "target": rng.integers(0, 4, (2, 3))},
            note="rank 3: mean over batch and length",
        )
        yield Sample(
            {"logits": _extreme_logits(rng, (3, 4)), "target": np.array([0, 2, 3])},
            note="logits ±1000",
        )
        yield from cls.option_samples(rng, "logits")
        p = rng.dirichlet(np.ones(4), size=3)
        yield Sample(
            {"logits": rng.normal(size=(3, 4)), "target": p},
            {"class_weights": [0.5, 2.0, 1.0, 0.25], "label_smoothing": 0.3},
            note="probability targets, class_weights and label_smoothing",
        )
        yield Sample(
            {"logits": rng.normal(size=(2, 4, 3)), "target": rng.dirichlet(np.ones(4), (2, 3))
             .transpose(0, 2, 1)},
            {"axis": 1, "reduction": "sum"}, note="probability targets on axis 1, summed",
        )


@op("nll", inputs=["log_probs", _TARGET], category="loss")
class NLL(ClassLoss):
    """Negative log-likelihood ``-mean(log_probs[target])`` of integer class targets.

    ``log_probs`` has the classes on axis ``axis`` (default the last; from
    ``log_softmax``); ``target`` holds class indices, shaped like ``log_probs`` without
    the class axis (or with it of size 1). The options are cross_entropy's, with the same
    meaning (``nll(log_softmax(z))`` equals ``cross_entropy(z)`` for every option; torch's
    ``F.nll_loss`` has no ``label_smoothing``, which here is cross_entropy's).
    """

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        z = rng.normal(size=(5, 4))  # the classes of the option samples
        yield Sample(
            {
                "log_probs": z - np.log(np.exp(z).sum(-1, keepdims=True)),
                "target": rng.integers(0, 4, size=5),
            }
        )
        yield Sample(
            {"log_probs": rng.normal(size=(2, 3, 4)), "target": rng.integers(0, 4, size=(2, 3, 1))},
            note="rank 3, [.., 1] targets",
        )
        yield from cls.option_samples(rng, "log_probs")


class _Penalty(Attrs):
    """Base: a penalty over parameters (by default every weight, not biases)."""

    def infer(self, *params: TensorType) -> TensorType:
        return TensorType(())

    def flops(self, *types: TensorType, out: TensorType) -> int:
        return 2 * sum(t.numel() for t in types)

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"params": [rng.normal(size=(3, 2)), rng.normal(size=(4,))]})
        yield Sample({"params": [rng.normal(size=(2, 2))]}, note="one parameter")


@op("l1_penalty", inputs=[Input("params", variadic=True)], category="loss")
class L1Penalty(_Penalty):
    """``sum over params of sum(|p|)``; scale it with the term's ``weight``.

    Its subgradient at ``p = 0`` is taken as 0 (``sign(p)``), as torch's ``abs``.
    """


@op("l2_penalty", inputs=[Input("params", variadic=True)], category="loss")
class L2Penalty(_Penalty):
    """``sum over params of sum(p^2) / 2``; scale it with the term's ``weight``."""


@op(
    "kl_normal",
    inputs=[
        "mu",
        "log_var",
        Input("prior_mu", optional=True),
        Input("prior_log_var", optional=True),
    ],
    category="loss",
)
class KLNormal(Attrs):
    """KL divergence of diagonal normals, summed over features (last axis), mean over batch.

    ``KL(N(mu, exp(log_var)) || N(0, 1)) = sum(mu^2 + exp(log_var) - 1 - log_var) / 2``.
    The posterior is parameterized by its mean and log-variance (``log_var = log sigma^2``,
    the VAE encoder's outputs). Given also ``prior_mu`` and ``prior_log_var`` (both, of the
    same shape), the prior is ``N(prior_mu, exp(prior_log_var))`` instead:
    ``sum(lv_p - lv + (exp(lv) + (mu - mu_p)^2) / exp(lv_p) - 1) / 2``.
    """

    def infer(self, mu: TensorType, *rest: TensorType) -> TensorType:
        if len(rest) == 2:
            raise ShapeError(
                "kl_normal takes mu and log_var, or also both prior_mu and "
                "prior_log_var; got three inputs"
            )
        for name, t in zip(("log_var", "prior_mu", "prior_log_var"), rest):
            if t.shape != mu.shape:
                raise ShapeError(f"kl_normal's {name} {t} must have mu's shape {mu}")
        if mu.rank < 1:
            raise ShapeError(f"kl_normal needs a feature (last) axis, got mu of shape {mu}")
        return TensorType(())

    def flops(self, mu: TensorType, *rest: TensorType, out: TensorType) -> int:
        return 5 * mu.numel() * (1 + len(rest) // 2)

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"mu": rng.normal(size=(4, 3)), "log_var": rng.normal(size=(4, 3))})
        yield Sample(
            {
                "mu": rng.normal(size=(3, 2)),
                "log_var": rng.normal(size=(3, 2)),
                "prior_mu": rng.normal(size=(3, 2)),
                "prior_log_var": rng.normal(size=(3, 2)),
            },
            note="learned prior",
        )
        yield Sample(
            {"mu": rng.normal(size=(2, 3, 2)), "log_var": rng.normal(size=(2, 3, 2))}, note="rank 3"
        )
