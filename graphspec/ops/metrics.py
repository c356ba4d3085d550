"""Metrics: reported per epoch, never differentiated."""

from __future__ import annotations

from typing import Any

import numpy as np

from graphspec.ops.losses import ClassAxis
from graphspec.ops.registry import Attrs, Input, Sample, ShapeError, TensorType, op

# Targets may be class indices (int) or one-hot / 0-1 values (float).
_TARGET = Input("target", False, dtype="any")


@op("accuracy", inputs=[Input("logits", False), _TARGET], category="metric")
class Accuracy(ClassAxis):
    """Fraction of positions whose argmax over the class axis equals the target.

    Targets are class labels (the logits' shape without the class axis, or with it of size
    1) or one-hot (or probability) rows of the logits' shape, whose argmax is the label. With
    a single logit per position (a class axis of size 1, a binary classifier) there is
    nothing to argmax: the prediction is ``logit > 0`` against ``target > 0.5``, as
    ``binary_accuracy``. ``axis`` (default -1, the last) and ``ignore_index`` (a label whose
    positions are not counted) are cross_entropy's; a metric named bare in ``metrics:``
    takes them from the loss term it reads.
    """

    def infer(self, logits: TensorType, target: TensorType) -> TensorType:
        ax = self.class_axis(logits)
        lead = logits.shape[:ax] + logits.shape[ax + 1 :]
        kept = logits.shape[:ax] + (1,) + logits.shape[ax + 1 :]
        if target.shape not in (logits.shape, lead, kept):
            raise ShapeError(
                f"targets {target} fit logits {logits} neither as class labels "
                f"{list(lead)} (or {list(kept)}) nor as one-hot rows {list(logits.shape)}"
            )
        if self.ignore_index is not None and target.shape == logits.shape != kept:
            raise ShapeError(
                f"accuracy's ignore_index applies to class labels; targets {target} are "
                f"one-hot or probability rows of the logits' shape {logits}"
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
        yield Sample(
            {"logits": rng.normal(size=(2, 3, 4, 5)), "target": rng.integers(0, 3, (2, 4, 5))},
            {"axis": 1}, note="classes on axis 1: per-pixel [batch, classes, H, W]",
        )
        yield Sample(
            {"logits": z, "target": np.where(labels == 1, -100, labels)},
            {"ignore_index": -100}, note="ignore_index",
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
