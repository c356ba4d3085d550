"""Metrics: reported per epoch, never differentiated."""

from __future__ import annotations

from typing import Any

import numpy as np

from graphspec.ops.registry import Attrs, Input, Sample, ShapeError, TensorType, op


@op("accuracy", inputs=[Input("logits", False), Input("target", False)], category="metric")
class Accuracy(Attrs):
    """Fraction of rows whose argmax over the last axis equals the target
    (integer class labels, or one-hot rows)."""

    def infer(self, logits: TensorType, target: TensorType) -> TensorType:
        if target.shape not in (logits.shape, logits.shape[:-1]) and not (
            target.shape == logits.shape[:-1] + (1,)
        ):
            raise ShapeError(f"targets {target} do not fit logits {logits}")
        return TensorType(())

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"logits": rng.normal(size=(6, 3)), "target": rng.integers(0, 3, size=6)})
        yield Sample({"logits": rng.normal(size=(6, 3)),
                      "target": np.eye(3)[rng.integers(0, 3, size=6)]}, note="one-hot targets")


@op("binary_accuracy", inputs=[Input("logits", False), Input("target", False)], category="metric")
class BinaryAccuracy(Attrs):
    """Fraction of entries where ``(logit > threshold) == (target > 0.5)``.

    The default threshold 0 suits logits; use 0.5 for probabilities.
    """

    threshold: float = 0.0

    def infer(self, logits: TensorType, target: TensorType) -> TensorType:
        if logits.shape != target.shape:
            raise ShapeError(f"logits {logits} and targets {target} differ in shape")
        return TensorType(())

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"logits": rng.normal(size=(6, 1)),
                      "target": rng.integers(0, 2, size=(6, 1)).astype(float)})
