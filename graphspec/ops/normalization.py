"""Normalization and regularization layers: batch_norm, layer_norm, dropout.

Features are on the last axis, as for ``linear``: ``batch_norm`` normalizes each feature
over every other axis (``[batch, features]``, or ``[batch, length, features]`` over batch
and length, like Keras), ``layer_norm`` normalizes each row over its features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, PositiveFloat

from graphspec.ops.registry import Attrs, Noise, ParamDecl, Sample, ShapeError, TensorType, op


def _features(x: TensorType, what: str, min_rank: int) -> int:
    """The fixed size of the feature (last) axis, checking the rank."""
    if x.rank < min_rank:
        axes = "a batch and a feature axis" if min_rank == 2 else "a feature axis"
        raise ShapeError(f"{what} needs an input with {axes}, got shape {x}")
    n = x.shape[-1]
    if not isinstance(n, int):
        raise ShapeError(f"{what}'s feature (last) axis must be a fixed size, got shape {x}")
    return n


def _affine(n: int) -> dict[str, ParamDecl]:
    return {"gamma": ParamDecl((n,), "ones", n, n), "beta": ParamDecl((n,), "zeros", n, n)}


@op("batch_norm", uses_training=True, has_state=True)
class BatchNorm(Attrs):
    """Batch normalization: ``y = gamma * (x - mean) / sqrt(var + eps) + beta`` per feature.

    Features are the last axis; the statistics run over all other axes (batch, and length
    for rank-3 input). In training the batch's mean and biased variance normalize, and the
    running statistics move towards them, as torch: ``new = (1 - momentum) * old + momentum *
    batch``, with the unbiased variance (n / (n - 1)) in the running update. In evaluation
    the running statistics normalize and stay as they are. Parameters ``gamma`` (ones) and
    ``beta`` (zeros); state ``running_mean`` (zeros) and ``running_var`` (ones).
    """

    momentum: float = Field(0.1, ge=0.0, le=1.0)
    eps: PositiveFloat = 1e-5

    def infer(self, x: TensorType, *params: TensorType) -> TensorType:
        _features(x, "batch_norm", 2)
        return x

    def params(self, x: TensorType, *_: TensorType) -> dict[str, ParamDecl]:
        return _affine(_features(x, "batch_norm", 2))

    def state(self, x: TensorType, *_: TensorType) -> dict[str, ParamDecl]:
        n = _features(x, "batch_norm", 2)
        return {"running_mean": ParamDecl((n,), "zeros"), "running_var": ParamDecl((n,), "ones")}

    def flops(self, x: TensorType, *params: TensorType, out: TensorType) -> int:
        return 8 * out.numel()  # mean, variance, normalize, scale and shift

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        def sample(shape: tuple[int, ...], training: bool, note: str, **attrs: Any) -> Sample:
            n = shape[-1]
            return Sample(
                {
                    "x": rng.normal(size=shape) * 2 + 1,
                    "gamma": rng.normal(size=n) + 1,
                    "beta": rng.normal(size=n),
                    "running_mean": rng.normal(size=n),
                    "running_var": rng.uniform(0.5, 2.0, size=n),
                },
                attrs,
                training=training,
                note=note,
            )

        yield sample((5, 3), True, "training: batch statistics, running update")
        yield sample((5, 3), False, "evaluation: running statistics")
        yield sample((3, 4, 2), True, "rank 3: statistics over batch and length", momentum=0.3)
        yield sample((3, 4, 2), False, "rank 3, evaluation", eps=1e-3)


@op("layer_norm")
class LayerNorm(Attrs):
    """Layer normalization over the last axis: ``gamma * (x - mean) / sqrt(var + eps) + beta``.

    Each row is normalized by its own mean and biased variance (no running statistics, the
    same in training and evaluation); ``gamma`` (ones) and ``beta`` (zeros) are per feature.
    """

    eps: PositiveFloat = 1e-5

    def infer(self, x: TensorType, *params: TensorType) -> TensorType:
        _features(x, "layer_norm", 1)
        return x

    def params(self, x: TensorType, *_: TensorType) -> dict[str, ParamDecl]:
        return _affine(_features(x, "layer_norm", 1))

    def flops(self, x: TensorType, *params: TensorType, out: TensorType) -> int:
        return 8 * out.numel()

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample(
            {
                "x": rng.normal(size=(4, 5)) * 3 - 1,
                "gamma": rng.normal(size=5) + 1,
                "beta": rng.normal(size=5),
            }
        )
        yield Sample(
            {
                "x": rng.normal(size=(2, 3, 4)),
                "gamma": rng.normal(size=4) + 1,
                "beta": rng.normal(size=4),
            },
            {"eps": 1e-3},
            note="rank 3",
        )


@op("dropout", uses_training=True, stochastic=True)
class Dropout(Attrs):
    """Inverted dropout: in training each element is kept with probability ``1 - p`` and
    scaled by ``1 / (1 - p)``; in evaluation the op is the identity.

    It consumes uniform noise shaped like ``x``: an element is kept where ``noise >= p``.
    The gradient uses the same mask.
    """

    p: float = Field(0.5, ge=0.0, lt=1.0)

    def infer(self, x: TensorType, *rest: TensorType) -> TensorType:
        return x

    def noise(self) -> Noise:
        return Noise("uniform", like=0)

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": rng.normal(size=(4, 5))}, note="training")
        yield Sample({"x": rng.normal(size=(2, 3, 4))}, {"p": 0.2}, note="training, rank 3")
        yield Sample({"x": rng.normal(size=(4, 5))}, training=False, note="evaluation")
