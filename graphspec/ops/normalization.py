"""Normalization and regularization layers: batch_norm, layer_norm, dropout.

By default features are on the last axis, as for ``linear``: ``batch_norm`` normalizes each
feature over every other axis (``[batch, features]``, or ``[batch, length, features]`` over
batch and length, like Keras), ``layer_norm`` normalizes each row over its features.
``batch_norm``'s ``axis`` names another feature axis (``axis: 1`` on ``[batch, channels,
height, width]`` is torch's BatchNorm2d) and ``layer_norm``'s ``axes`` several trailing
axes (torch's ``normalized_shape``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, PositiveFloat, StrictInt, field_validator

from graphspec.ops.registry import (
    Attrs,
    Noise,
    ParamDecl,
    Sample,
    ShapeError,
    TensorType,
    norm_axis,
    op,
)


def _features(x: TensorType, what: str, min_rank: int, axis: int = -1) -> int:
    """The fixed size of the feature axis ``axis``, checking the rank."""
    if x.rank < min_rank:
        axes = "a batch and a feature axis" if min_rank == 2 else "a feature axis"
        raise ShapeError(f"{what} needs an input with {axes}, got shape {x}")
    n = x.shape[norm_axis(axis, x.rank)]
    if not isinstance(n, int):
        which = "(last) axis" if axis == -1 else f"axis {axis}"
        raise ShapeError(f"{what}'s feature {which} must be a fixed size, got shape {x}")
    return n


def _affine(shape: tuple[int, ...]) -> dict[str, ParamDecl]:
    n = int(np.prod(shape))
    return {
        "gamma": ParamDecl(shape, "ones", n, n),
        "beta": ParamDecl(shape, "zeros", n, n),
    }


@op("batch_norm", uses_training=True, has_state=True)
class BatchNorm(Attrs):
    """Batch normalization: ``y = gamma * (x - mean) / sqrt(var + eps) + beta`` per feature.

    Features are the axis ``axis`` (default ``-1``, the last); the statistics run over all
    other axes (batch, and length for rank-3 input). ``axis: 1`` on ``[batch, channels,
    height, width]`` normalizes each channel over batch and pixels, as torch's BatchNorm2d
    (on ``[batch, channels, length]``, BatchNorm1d). In training the batch's mean and
    biased variance normalize, and the running statistics move towards them, as torch:
    ``new = (1 - momentum) * old + momentum * batch``, with the unbiased variance
    (n / (n - 1)) in the running update. In evaluation the running statistics normalize and
    stay as they are. Parameters ``gamma`` (ones) and ``beta`` (zeros); state
    ``running_mean`` (zeros) and ``running_var`` (ones), one entry per feature.
    """

    momentum: float = Field(0.1, ge=0.0, le=1.0)
    eps: PositiveFloat = 1e-5
    axis: StrictInt = -1

    def infer(self, x: TensorType, *params: TensorType) -> TensorType:
        _features(x, "batch_norm", 2, self.axis)
        return x

    def params(self, x: TensorType, *_: TensorType) -> dict[str, ParamDecl]:
        return _affine((_features(x, "batch_norm", 2, self.axis),))

    def state(self, x: TensorType, *_: TensorType) -> dict[str, ParamDecl]:
        n = _features(x, "batch_norm", 2, self.axis)
        return {"running_mean": ParamDecl((n,), "zeros"), "running_var": ParamDecl((n,), "ones")}

    def flops(self, x: TensorType, *params: TensorType, out: TensorType) -> int:
        return 8 * out.numel()  # mean, variance, normalize, scale and shift

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        def sample(shape: tuple[int, ...], training: bool, note: str, **attrs: Any) -> Sample:
            n = shape[attrs.get("axis", -1)]
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
        yield sample((2, 3, 3, 2), True, "axis 1 of [batch, C, H, W] (BatchNorm2d)", axis=1)
        yield sample((2, 3, 3, 2), False, "axis 1 (BatchNorm2d), evaluation", axis=1)
        yield sample((3, 2, 4), True, "axis 1 of a rank-3 input (BatchNorm1d)", axis=1)


@op("layer_norm")
class LayerNorm(Attrs):
    """Layer normalization over trailing axes: ``gamma * (x - mean) / sqrt(var + eps) + beta``.

    ``axes`` (default ``[-1]``, the last) are the normalized axes, which must be the last
    ones, as torch's ``normalized_shape`` and ONNX's LayerNormalization require
    (``[-3, -2, -1]`` normalizes each example of ``[batch, C, H, W]`` over all its values;
    ``transpose`` first to normalize other axes). Each slice is normalized by its own mean
    and biased variance (no running statistics, the same in training and evaluation);
    ``gamma`` (ones) and ``beta`` (zeros) have the normalized axes' shape.
    """

    eps: PositiveFloat = 1e-5
    axes: tuple[StrictInt, ...] = (-1,)

    @field_validator("axes")
    @classmethod
    def _distinct(cls, axes: tuple[int, ...]) -> tuple[int, ...]:
        if not axes:
            raise ValueError("name at least one axis to normalize")
        if len(set(axes)) != len(axes):
            raise ValueError(f"names an axis twice: {list(axes)}")
        return axes

    def _shape(self, x: TensorType) -> tuple[int, ...]:
        """The normalized (trailing) axes' fixed sizes, checking the axes."""
        _features(x, "layer_norm", 1)
        k = len(self.axes)
        got = sorted(norm_axis(a, x.rank) for a in self.axes)
        twice = [a for a, b in zip(got, got[1:]) if a == b]
        if twice:
            raise ShapeError(f"layer_norm's axes {list(self.axes)} name axis {twice[0]} twice")
        if got != list(range(x.rank - k, x.rank)):
            raise ShapeError(
                f"layer_norm normalizes trailing axes (as torch and ONNX): axes "
                f"{list(self.axes)} of a rank-{x.rank} input must be the last {k} "
                f"({list(range(x.rank - k, x.rank))}); transpose the input first"
            )
        shape = x.shape[x.rank - k :]
        if not all(isinstance(d, int) for d in shape):
            raise ShapeError(f"layer_norm's normalized axes must be fixed sizes, got shape {x}")
        return tuple(int(d) for d in shape)

    def infer(self, x: TensorType, *params: TensorType) -> TensorType:
        self._shape(x)
        return x

    def params(self, x: TensorType, *_: TensorType) -> dict[str, ParamDecl]:
        return _affine(self._shape(x))

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
        yield Sample(
            {
                "x": rng.normal(size=(2, 3, 2, 3)) * 2 + 1,
                "gamma": rng.normal(size=(3, 2, 3)) + 1,
                "beta": rng.normal(size=(3, 2, 3)),
            },
            {"axes": [-3, -2, -1]},
            note="axes [-3, -2, -1]: each example of [batch, C, H, W] over all its values",
        )
        yield Sample(
            {
                "x": rng.normal(size=(2, 3, 4)),
                "gamma": rng.normal(size=(3, 4)) + 1,
                "beta": rng.normal(size=(3, 4)),
            },
            {"axes": [2, 1]},
            note="axes [2, 1]: positive, in any order",
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
