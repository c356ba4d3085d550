"""Losses (scalar, mean over the batch) and weight penalties."""

from __future__ import annotations

from typing import Any

import numpy as np

from graphspec.ops.registry import Attrs, Input, Sample, ShapeError, TensorType, broadcast, op


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


@op("mse", inputs=["pred", Input("target", differentiable=False)], category="loss")
class MSE(_Pairwise):
    """Mean squared error ``mean((pred - target)^2)``."""

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"pred": rng.normal(size=(4, 2)), "target": rng.normal(size=(4, 2))})


@op("bce_with_logits", inputs=["logits", Input("target", differentiable=False)], category="loss")
class BCEWithLogits(_Pairwise):
    """Binary cross-entropy on logits, ``mean(softplus(z) - y z)``; finite at any logit."""

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"logits": rng.normal(size=(5, 1)) * 2,
                      "target": rng.integers(0, 2, size=(5, 1)).astype(float)})


class _Penalty(Attrs):
    """Base: a penalty over parameters (by default every weight, not biases)."""

    def infer(self, *params: TensorType) -> TensorType:
        return TensorType(())

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"params": [rng.normal(size=(3, 2)), rng.normal(size=(4,))]})


@op("l2_penalty", inputs=[Input("params", variadic=True)], category="loss")
class L2Penalty(_Penalty):
    """``sum over params of sum(p^2) / 2``; scale it with the term's ``weight``."""
