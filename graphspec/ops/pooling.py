"""Pooling over spatial axes, channels-first like torch and ONNX: ``[batch, channels,
length]`` for the 1d ops, ``[batch, channels, height, width]`` for the 2d ones.

Windowed pools (``max_pool1d/2d``, ``avg_pool1d/2d``) follow torch's ``F.max_pool*d`` /
``F.avg_pool*d`` exactly, including ``ceil_mode`` and ``count_include_pad``. Global pools
reduce every axis after the channels and return ``[batch, channels]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
from pydantic import PositiveInt, model_validator

from graphspec.ops.registry import Attrs, Sample, ShapeError, TensorType, op, require_rank

IntOrPair = PositiveInt | tuple[PositiveInt, PositiveInt]
NonNegOrPair = int | tuple[int, int]


def pool_out_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """torch's output length of a pooling window sliding over ``size`` values.

    ``(size + 2*padding - kernel) / stride + 1``, rounded down, or up with ``ceil_mode``;
    rounded up, the last window must still start inside the input or its left padding.
    """
    span = size + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


class _Pool(Attrs):
    """Shared by the windowed pools: attributes, validation and the shape rule."""

    spatial: ClassVar[tuple[str, ...]] = ("height", "width")

    kernel: IntOrPair
    stride: IntOrPair | None = None
    padding: NonNegOrPair = 0
    ceil_mode: bool = False

    def _tuple(self, v: int | tuple[int, int]) -> tuple[int, ...]:
        return (v,) * len(self.spatial) if isinstance(v, int) else tuple(v)

    @property
    def window(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """``(kernel, stride, padding)``, one entry per spatial axis; stride defaults to the
        kernel."""
        k = self._tuple(self.kernel)
        s = k if self.stride is None else self._tuple(self.stride)
        return k, s, self._tuple(self.padding)

    @model_validator(mode="after")
    def _check_padding(self) -> _Pool:
        k, _, p = self.window
        for axis, kk, pp in zip(self.spatial, k, p, strict=True):
            if pp < 0:
                raise ValueError(f"padding along {axis} must be >= 0, got {pp}")
            # torch refuses more: a window could then lie wholly in the padding.
            if 2 * pp > kk:
                raise ValueError(
                    f"padding {pp} along {axis} is more than half the kernel {kk} "
                    f"(2*{pp} > {kk}; torch refuses it)"
                )
        return self

    def kernel_attrs(self) -> dict[str, Any]:
        # Kernels get one int per spatial axis, stride filled in.
        k, s, p = self.window
        return super().kernel_attrs() | {"kernel": k, "stride": s, "padding": p}

    def infer(self, x: TensorType, *rest: TensorType) -> TensorType:
        name = type(self).op_name  # type: ignore[attr-defined]
        n = len(self.spatial)
        require_rank(x, n + 2, what=f"{name}'s input [batch, channels, {', '.join(self.spatial)}]")
        if x.dtype != "float":
            raise ShapeError(f"{name} takes a float tensor, got {x}")
        out = list(x.shape[:2])
        for axis, d, kk, ss, pp in zip(self.spatial, x.shape[2:], *self.window, strict=True):
            if not isinstance(d, int):
                raise ShapeError(f"{name}'s {axis} axis must be a fixed size, got shape {x}")
            if kk > d + 2 * pp:
                raise ShapeError(
                    f"kernel {kk} is larger than the padded {axis} "
                    f"{d} + 2*{pp} = {d + 2 * pp}"
                )
            out.append(pool_out_size(d, kk, ss, pp, self.ceil_mode))
        return TensorType(tuple(out))

    def flops(self, *types: TensorType, out: TensorType) -> int:
        return out.numel() * math.prod(self.window[0])  # one compare or add per window value


class _Pool1d(_Pool):
    spatial: ClassVar[tuple[str, ...]] = ("length",)

    kernel: PositiveInt  # type: ignore[assignment]
    stride: PositiveInt | None = None  # type: ignore[assignment]
    padding: int = 0  # type: ignore[assignment]


def _distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values at least 0.1 apart, shuffled: no two tie, so each window's maximum is unique
    and stays so under finite-difference steps."""
    n = math.prod(shape)
    return (rng.permutation(n) * 0.1 - n * 0.05 + rng.uniform(0, 0.02, n)).reshape(shape)


def _samples2d(rng: np.random.Generator, avg: bool) -> Iterator[Sample]:
    yield Sample({"x": _distinct(rng, (2, 3, 6, 6))}, {"kernel": 2}, note="stride = kernel")
    yield Sample(
        {"x": _distinct(rng, (2, 2, 7, 5))},
        {"kernel": [3, 2], "stride": [2, 1], "padding": [1, 1]},
        note="rectangular kernel, stride != kernel, padding",
    )
    # height: the ceil rule drops a window starting in the right padding; width: ceil adds one.
    ceil = {"kernel": [2, 3], "stride": 2, "padding": 1, "ceil_mode": True}
    yield Sample({"x": _distinct(rng, (1, 2, 5, 6))}, ceil, note="ceil_mode, padding")
    if avg:
        yield Sample(
            {"x": _distinct(rng, (2, 2, 7, 5))},
            {"kernel": [3, 2], "stride": [2, 1], "padding": [1, 1], "count_include_pad": False},
            note="count_include_pad false",
        )
        yield Sample(
            {"x": _distinct(rng, (1, 2, 5, 6))},
            ceil | {"count_include_pad": False},
            note="ceil_mode, count_include_pad false",
        )


def _samples1d(rng: np.random.Generator, avg: bool) -> Iterator[Sample]:
    yield Sample({"x": _distinct(rng, (2, 3, 8))}, {"kernel": 2}, note="stride = kernel")
    yield Sample(
        {"x": _distinct(rng, (2, 2, 9))},
        {"kernel": 3, "stride": 2, "padding": 1},
        note="stride != kernel, padding",
    )
    yield Sample(
        {"x": _distinct(rng, (1, 2, 6))},
        {"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True}
        | ({"count_include_pad": False} if avg else {}),
        note="ceil_mode adds a window" + (", count_include_pad false" if avg else ""),
    )


@op("max_pool2d")
class MaxPool2d(_Pool):
    """Max pooling over ``[batch, channels, height, width]``, as torch's ``F.max_pool2d``.

    ``kernel`` (an int or ``[height, width]``), ``stride`` (default: the kernel), ``padding``
    (int or pair, at most half the kernel; padded values are -inf, never the maximum) and
    ``ceil_mode`` (round the output size up; a last window starting past the input and its
    left padding is dropped). Output size per axis: ``(size + 2*padding - kernel) / stride +
    1``, rounded down (or up). The gradient flows to each window's maximum (the first one
    on a tie, as torch).
    """

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield from _samples2d(rng, avg=False)


@op("avg_pool2d")
class AvgPool2d(_Pool):
    """Average pooling over ``[batch, channels, height, width]``, as torch's ``F.avg_pool2d``.

    Attributes as for ``max_pool2d``; padded values are zeros. ``count_include_pad``
    (default true) divides by the window's size including padding; false divides by the
    number of input values in the window. A window that ``ceil_mode`` lets run past the
    right padding never counts that overhang.
    """

    count_include_pad: bool = True

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield from _samples2d(rng, avg=True)


@op("max_pool1d")
class MaxPool1d(_Pool1d):
    """Max pooling over ``[batch, channels, length]``, as torch's ``F.max_pool1d``.

    ``kernel``, ``stride`` (default: the kernel), ``padding`` and ``ceil_mode`` are ints
    and bools with the meaning they have for ``max_pool2d``.
    """

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield from _samples1d(rng, avg=False)


@op("avg_pool1d")
class AvgPool1d(_Pool1d):
    """Average pooling over ``[batch, channels, length]``, as torch's ``F.avg_pool1d``.

    ``kernel``, ``stride``, ``padding``, ``ceil_mode`` and ``count_include_pad`` mean what
    they do for ``avg_pool2d``.
    """

    count_include_pad: bool = True

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield from _samples1d(rng, avg=True)


class _GlobalPool(Attrs):
    """Shared by the global pools: ``[batch, channels, *spatial] -> [batch, channels]``.

    The output drops the spatial axes (as Keras's global pooling layers do) instead of
    keeping them as ones (torch's ``AdaptiveAvgPool2d(1)``, ONNX's ``GlobalAveragePool``):
    a global pool is almost always followed by a ``linear`` layer, which takes
    ``[batch, features]`` with no ``flatten`` between.
    """

    def infer(self, x: TensorType, *rest: TensorType) -> TensorType:
        name = type(self).op_name  # type: ignore[attr-defined]
        if x.rank < 3:
            raise ShapeError(
                f"{name} needs an input [batch, channels, *spatial] with at least one spatial "
                f"axis, got shape {x}"
            )
        if x.dtype != "float":
            raise ShapeError(f"{name} takes a float tensor, got {x}")
        return TensorType(x.shape[:2])

    def flops(self, x: TensorType, *rest: TensorType, out: TensorType) -> int:
        return x.numel()

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": _distinct(rng, (2, 3, 4, 5))}, note="2d: [batch, channels, h, w]")
        yield Sample({"x": _distinct(rng, (2, 3, 6))}, note="1d: [batch, channels, length]")


@op("global_avg_pool")
class GlobalAvgPool(_GlobalPool):
    """The mean over every axis after the channels: ``[batch, channels, *spatial] ->
    [batch, channels]``.

    The output is ``[batch, channels]``, ready for a ``linear`` layer (torch's
    ``AdaptiveAvgPool2d(1)`` and ONNX's ``GlobalAveragePool`` keep the spatial axes as ones;
    ``flatten`` of those is this).
    """


@op("global_max_pool")
class GlobalMaxPool(_GlobalPool):
    """The maximum over every axis after the channels: ``[batch, channels, *spatial] ->
    [batch, channels]``.

    The output is ``[batch, channels]``, as for ``global_avg_pool``. The gradient is shared
    equally by the values that tie for a maximum (torch's ``amax``).
    """
