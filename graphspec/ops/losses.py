"""Losses (scalar, mean over the batch) and weight penalties.

Targets are never differentiated. Classification losses take the classes on the last axis
and average over every other position (the batch, and the length for sequences).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphspec.ops.registry import Attrs, Input, Sample, ShapeError, TensorType, broadcast, op

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


def _class_targets(what: str, logits: TensorType, target: TensorType, probs: bool) -> None:
    """Targets are class indices (int, shaped like the logits without their class axis, or
    with a class axis of 1) or, when ``probs``, class probabilities of the logits' shape."""
    if logits.rank < 1:
        raise ShapeError(f"{what} needs logits with a class (last) axis, got shape {logits}")
    lead = logits.shape[:-1]
    if target.dtype == "int" and target.shape in (lead, lead + (1,)):
        return
    if probs and target.shape == logits.shape:
        return  # one-hot rows or probabilities (an int one-hot works too)
    indices = TensorType(lead, "int")
    if not probs:
        raise ShapeError(
            f"{what} needs integer class targets of shape {indices} for logits {logits}, "
            f"got {target}"
        )
    if target.dtype != "int" and target.shape in (lead, lead + (1,)):
        raise ShapeError(
            f"{what} targets {target} look like class indices but are float: declare the "
            f"input with dtype int, or give one-hot targets of the logits' shape {logits}"
        )
    raise ShapeError(
        f"{what} targets {target} fit neither integer classes {indices} nor one-hot or "
        f"probability rows {logits}"
    )


@op("cross_entropy", inputs=["logits", _TARGET], category="loss")
class CrossEntropy(Attrs):
    """Softmax cross-entropy on logits (classes on the last axis), mean over the batch.

    ``target`` holds integer class indices (shape ``[batch]``, or ``[batch, 1]``) or, with
    the logits' shape, one-hot rows or class probabilities: ``-mean_rows(sum(t * log
    softmax(z)))``. Log-sum-exp keeps it finite at any logit.
    """

    def infer(self, logits: TensorType, target: TensorType) -> TensorType:
        _class_targets("cross_entropy", logits, target, probs=True)
        return TensorType(())

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


@op("nll", inputs=["log_probs", _TARGET], category="loss")
class NLL(Attrs):
    """Negative log-likelihood ``-mean(log_probs[target])`` of integer class targets.

    ``log_probs`` has the classes on the last axis (from ``log_softmax``); ``target`` holds
    class indices of shape ``[batch]`` (or ``[batch, 1]``).
    """

    def infer(self, log_probs: TensorType, target: TensorType) -> TensorType:
        _class_targets("nll", log_probs, target, probs=False)
        return TensorType(())

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        z = rng.normal(size=(5, 3))
        yield Sample(
            {
                "log_probs": z - np.log(np.exp(z).sum(-1, keepdims=True)),
                "target": rng.integers(0, 3, size=5),
            }
        )
        yield Sample(
            {"log_probs": rng.normal(size=(2, 3, 4)), "target": rng.integers(0, 4, size=(2, 3, 1))},
            note="rank 3, [.., 1] targets",
        )


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
