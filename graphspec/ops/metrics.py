"""Metrics: reported per epoch, never differentiated."""

from __future__ import annotations

from typing import Any

import numpy as np

from graphspec.ops.registry import Attrs, Input, Sample, ShapeError, TensorType, op

# Targets may be class indices (int) or one-hot / 0-1 values (float).
_TARGET = Input("target", False, dtype="any")


@op("accuracy", inputs=[Input("logits", False), _TARGET], category="metric")
class Accuracy(Attrs):
    """Fraction of rows whose argmax over the last (class) axis equals the target.

    Targets are integer class labels (``[batch]`` or ``[batch, 1]``) or one-hot (or
    probability) rows of the logits' shape, whose argmax is the label. With a single logit
    per row (``[batch, 1]``, a binary classifier) there is nothing to argmax: the prediction
    is ``logit > 0`` against ``target > 0.5``, as ``binary_accuracy``.
    """

    def infer(self, logits: TensorType, target: TensorType) -> TensorType:
        if logits.rank < 1:
            raise ShapeError(f"accuracy needs logits with a class (last) axis, got {logits}")
        lead = logits.shape[:-1]
        if target.shape not in (logits.shape, lead, lead + (1,)):
            raise ShapeError(
                f"targets {target} fit logits {logits} neither as class labels "
                f"{list(lead)} (or {list(lead + (1,))}) nor as one-hot rows {list(logits.shape)}"
            )
        return TensorType(())

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        z = rng.normal(size=(6, 3))
        labels = rng.integers(0, 3, size=6)
        yield Sample({"logits": z, "target": labels}, note="integer labels")
        yield Sample({"logits": z, "target": labels[:, None]}, note="integer labels [batch, 1]")
        yield Sample({"logits": z, "target": np.eye(3)[labels]}, note="one-hot targets")
        yield Sample(
            {"logits": rng.normal(size=(6, 1)), "target": rng.integers(0, 2, size=(6, 1))},
            note="one logit: binary",
        )
        yield Sample(
            {"logits": rng.normal(size=(2, 4, 3)), "target": rng.integers(0, 3, (2, 4))},
            note="rank 3",
        )


@op("binary_accuracy", inputs=[Input("logits", False), _TARGET], category="metric")
class BinaryAccuracy(Attrs):
    """Fraction of entries where ``(logit > threshold) == (target > 0.5)``.

    The default threshold 0 suits logits; use 0.5 for probabilities. Targets have the
    logits' shape, or drop their last axis when it is 1 (``[batch]`` for ``[batch, 1]``).
    """

    threshold: float = 0.0

    def infer(self, logits: TensorType, target: TensorType) -> TensorType:
        squeezed = logits.rank >= 1 and logits.shape[-1] == 1 and target.shape == logits.shape[:-1]
        if logits.shape != target.shape and not squeezed:
            raise ShapeError(f"logits {logits} and targets {target} differ in shape")
        return TensorType(())

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample(
            {
                "logits": rng.normal(size=(6, 1)),
                "target": rng.integers(0, 2, size=(6, 1)).astype(float),
            }
        )
        yield Sample(
            {"logits": rng.normal(size=(6, 1)), "target": rng.integers(0, 2, size=6)},
            note="integer targets [batch]",
        )
        yield Sample(
            {
                "logits": rng.uniform(size=(4, 3)),
                "target": rng.integers(0, 2, size=(4, 3)).astype(float),
            },
            {"threshold": 0.5},
            note="probabilities",
        )
