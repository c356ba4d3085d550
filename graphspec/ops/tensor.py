"""Tensor plumbing: reductions, joining and cutting, reshaping, indexing, feature maps.

Axes follow NumPy: negative values count from the end. Ops that cut or join default to
the last axis (features), never the batch axis. Every op yields one value: ``split`` takes
the ``index`` of the part a node yields, so two parts are two nodes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field, StrictInt, field_validator, model_validator

from graphspec.ops.registry import (
    Attrs,
    Dim,
    Input,
    Sample,
    ShapeError,
    TensorType,
    norm_axis,
    op,
)

# polynomial_features refuses to build more columns than this (a typo in `degree` on wide
# inputs would otherwise ask for billions).
MAX_POLY_FEATURES = 1_000_000


def _axes(axis: int | list[int] | None, rank: int) -> tuple[int, ...]:
    """Normalized, checked reduction axes (None: all of them)."""
    if axis is None:
        return tuple(range(rank))
    axes = [axis] if isinstance(axis, int) else list(axis)
    out = tuple(norm_axis(a, rank) for a in axes)
    if len(set(out)) != len(out):
        raise ShapeError(f"axis {axis} names an axis twice (for a rank-{rank} tensor)")
    return out


def _fixed(t: TensorType, axis: int, what: str) -> int:
    d = t.shape[axis]
    if not isinstance(d, int):
        raise ShapeError(
            f"{what} needs a fixed size along axis {axis}, got symbolic '{d}' in shape {t}"
        )
    return d


class _Reduce(Attrs):
    axis: StrictInt | list[StrictInt] | None = Field(
        default=None, description="axis or axes to reduce; none: all"
    )
    keepdims: bool = False

    @field_validator("axis")
    @classmethod
    def _nonempty(cls, v: Any) -> Any:
        # [] would mean "reduce nothing" to NumPy but "reduce everything" to torch.
        if isinstance(v, list) and not v:
            raise ValueError("axis must name at least one axis (leave it out to reduce all)")
        return v

    def infer(self, x: TensorType) -> TensorType:
        axes = _axes(self.axis, x.rank)
        if self.keepdims:
            shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        else:
            shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return TensorType(shape, x.dtype)

    def flops(self, x: TensorType, out: TensorType) -> int:
        return x.numel()

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": rng.normal(size=(3, 4))})
        yield Sample({"x": rng.normal(size=(3, 4))}, {"axis": -1}, note="last axis")
        yield Sample(
            {"x": rng.normal(size=(2, 3, 4))},
            {"axis": [0, 2], "keepdims": True},
            note="two axes, keepdims",
        )
        yield Sample({"x": rng.normal(size=(2, 3, 4))}, {"axis": 1})
        yield Sample({"x": rng.normal(size=(2, 3))}, {"keepdims": True}, note="all, keepdims")


@op("sum", inputs=[Input("x", dtype="any")])
class Sum(_Reduce):
    """Sum over ``axis`` (an int, a list, or all axes), optionally keeping the dims."""


@op("mean")
class Mean(_Reduce):
    """Mean over ``axis`` (an int, a list, or all axes), optionally keeping the dims."""

    def infer(self, x: TensorType) -> TensorType:
        if x.dtype != "float":
            raise ShapeError(f"mean takes a float tensor, got {x}")
        return super().infer(x)


@op("concat", inputs=[Input("x", variadic=True, dtype="any")])
class Concat(Attrs):
    """Join tensors along ``axis`` (default: the last); other dims must be equal."""

    axis: StrictInt = -1

    def infer(self, *xs: TensorType) -> TensorType:
        first = xs[0]
        for t in xs[1:]:
            if t.rank != first.rank:
                raise ShapeError(f"concat needs tensors of one rank, got {first} and {t}")
            if t.dtype != first.dtype:
                raise ShapeError(f"concat needs tensors of one dtype, got {first} and {t}")
        ax = norm_axis(self.axis, first.rank)
        total = sum(_fixed(t, ax, "concat") for t in xs)
        for i in range(first.rank):
            if i != ax and len({t.shape[i] for t in xs}) > 1:
                shapes = ", ".join(str(t) for t in xs)
                raise ShapeError(f"concat along axis {self.axis}: axis {i} differs ({shapes})")
        return TensorType(first.shape[:ax] + (total,) + first.shape[ax + 1 :], first.dtype)

    def flops(self, *xs: TensorType, out: TensorType) -> int:
        return 0

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": [rng.normal(size=(3, 2)), rng.normal(size=(3, 4))]})
        yield Sample(
            {
                "x": [
                    rng.normal(size=(2, 1, 3)),
                    rng.normal(size=(2, 2, 3)),
                    rng.normal(size=(2, 3, 3)),
                ]
            },
            {"axis": 1},
            note="three, rank 3",
        )
        yield Sample(
            {"x": [rng.normal(size=(2, 3)), rng.normal(size=(1, 3))]},
            {"axis": -2},
            note="negative axis",
        )


@op("slice", inputs=[Input("x", dtype="any")])
class Slice(Attrs):
    """``x[start:stop:step]`` along ``axis`` (default: the last), with NumPy's rules.

    Negative ``start``/``stop`` count from the end, a negative ``step`` walks backwards.
    """

    axis: StrictInt = -1
    start: StrictInt | None = None
    stop: StrictInt | None = None
    step: StrictInt | None = None

    @field_validator("step")
    @classmethod
    def _step(cls, v: int | None) -> int | None:
        if v == 0:
            raise ValueError("step cannot be zero")
        return v

    def infer(self, x: TensorType) -> TensorType:
        ax = norm_axis(self.axis, x.rank)
        d = x.shape[ax]
        if isinstance(d, int):
            n: Dim = len(range(d)[self.start : self.stop : self.step])
            if n == 0:
                raise ShapeError(f"slice [{self._text()}] of axis {self.axis} (size {d}) is empty")
        elif self.start is None and self.stop is None and self.step in (None, 1):
            n = d
        else:
            raise ShapeError(f"cannot slice [{self._text()}] along symbolic dim '{d}' of {x}")
        return TensorType(x.shape[:ax] + (n,) + x.shape[ax + 1 :], x.dtype)

    def _text(self) -> str:
        parts = ["" if v is None else str(v) for v in (self.start, self.stop, self.step)]
        return ":".join(parts[:2] if self.step is None else parts)

    def flops(self, x: TensorType, out: TensorType) -> int:
        return 0

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": rng.normal(size=(3, 5))}, {"start": 1, "stop": 4})
        yield Sample(
            {"x": rng.normal(size=(2, 6, 3))},
            {"axis": 1, "start": -4, "step": 2},
            note="rank 3, negative start, step",
        )
        yield Sample({"x": rng.normal(size=(4, 3))}, {"axis": 0, "step": -1}, note="reversed")
        yield Sample(
            {"x": rng.normal(size=(2, 7))},
            {"start": 5, "stop": 1, "step": -2},
            note="backwards with bounds",
        )


@op("split", inputs=[Input("x", dtype="any")])
class Split(Attrs):
    """Part ``index`` of ``x`` cut along ``axis`` (default: the last) into ``sections``.

    ``sections`` is a number of equal parts or a list of part sizes summing to the axis.
    Ops yield one value each, so a split in two is two nodes with ``index: 0`` and
    ``index: 1`` (negative indices count from the end).
    """

    sections: StrictInt | list[StrictInt]
    index: StrictInt
    axis: StrictInt = -1

    @field_validator("sections")
    @classmethod
    def _sections(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int) and v < 1:
            raise ValueError("sections must be at least 1")
        if isinstance(v, list) and (not v or any(s < 1 for s in v)):
            raise ValueError("sections must list one or more positive sizes")
        return v

    @model_validator(mode="after")
    def _index(self) -> Split:
        n = self.sections if isinstance(self.sections, int) else len(self.sections)
        if not -n <= self.index < n:
            raise ValueError(f"index {self.index} is out of range for {n} sections")
        return self

    def infer(self, x: TensorType) -> TensorType:
        ax = norm_axis(self.axis, x.rank)
        d = _fixed(x, ax, "split")
        if isinstance(self.sections, int):
            if d % self.sections:
                raise ShapeError(
                    f"axis {self.axis} of {x} (size {d}) does not split into "
                    f"{self.sections} equal parts; give a list of sizes"
                )
            size = d // self.sections
        else:
            if sum(self.sections) != d:
                raise ShapeError(
                    f"sections {self.sections} sum to {sum(self.sections)}, but "
                    f"axis {self.axis} of {x} has size {d}"
                )
            size = self.sections[self.index]
        return TensorType(x.shape[:ax] + (size,) + x.shape[ax + 1 :], x.dtype)

    def flops(self, x: TensorType, out: TensorType) -> int:
        return 0

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": rng.normal(size=(3, 4))}, {"sections": 2, "index": 1})
        yield Sample(
            {"x": rng.normal(size=(2, 6, 3))},
            {"sections": [1, 3, 2], "index": 1, "axis": 1},
            note="sizes, rank 3",
        )
        yield Sample(
            {"x": rng.normal(size=(4, 3))},
            {"sections": [3, 1], "index": -2, "axis": 0},
            note="negative index",
        )


@op("reshape", inputs=[Input("x", dtype="any")])
class Reshape(Attrs):
    """``x`` with a new ``shape``; one entry may be -1 (inferred from the element count).

    A symbolic name keeps the input's dimension of that name, at the same position:
    ``shape: [batch, 28, 28]`` turns ``[batch, 784]`` into ``[batch, 28, 28]`` and
    ``shape: [batch, -1]`` flattens everything after the batch axis.
    """

    shape: list[StrictInt | str] = Field(min_length=0)

    @field_validator("shape")
    @classmethod
    def _entries(cls, v: list[int | str]) -> list[int | str]:
        for d in v:
            if isinstance(d, str) and not d.isidentifier():
                raise ValueError(f"'{d}' is neither a size nor a symbolic dimension name")
            if isinstance(d, int) and d < 1 and d != -1:
                raise ValueError(f"sizes must be positive (or -1 for 'the rest'), got {d}")
        if sum(1 for d in v if d == -1) > 1:
            raise ValueError("only one entry may be -1")
        return v

    def infer(self, x: TensorType) -> TensorType:
        for i, d in enumerate(self.shape):
            if isinstance(d, str) and (i >= x.rank or x.shape[i] != d):
                raise ShapeError(
                    f"reshape to {self.shape}: symbolic dim '{d}' must stay at axis {i}, "
                    f"where the input {x} has " + (f"'{x.shape[i]}'" if i < x.rank else "no axis")
                )
        kept = {i for i, d in enumerate(self.shape) if isinstance(d, str)}
        moving = [d for i, d in enumerate(x.shape) if i not in kept]
        for d in moving:
            if isinstance(d, str):
                raise ShapeError(
                    f"reshape to {self.shape}: symbolic dim '{d}' of the input {x} must be "
                    f"kept at its position (write '{d}' there in shape)"
                )
        have = math.prod(d for d in moving if isinstance(d, int))
        want = math.prod(d for d in self.shape if isinstance(d, int) and d != -1)
        out = list(self.shape)
        if -1 in out:
            if have % want:
                raise ShapeError(
                    f"cannot reshape {x} to {self.shape}: {have} elements do not "
                    f"divide into parts of {want}"
                )
            out[out.index(-1)] = have // want
        elif have != want:
            raise ShapeError(
                f"cannot reshape {x} ({have} elements besides symbolic dims) to "
                f"{self.shape} ({want})"
            )
        return TensorType(tuple(out), x.dtype)

    def flops(self, x: TensorType, out: TensorType) -> int:
        return 0

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": rng.normal(size=(3, 8))}, {"shape": [3, 2, 4]})
        yield Sample({"x": rng.normal(size=(2, 3, 4))}, {"shape": [-1, 4]}, note="-1")
        yield Sample({"x": rng.normal(size=(6,))}, {"shape": [2, 1, 3]})


@op("flatten", inputs=[Input("x", dtype="any")])
class Flatten(Attrs):
    """Merge axes ``start_axis`` to ``end_axis`` (default 1 to -1): [b, 4, 3] -> [b, 12]."""

    start_axis: StrictInt = 1
    end_axis: StrictInt = -1

    def infer(self, x: TensorType) -> TensorType:
        if x.rank == 0:
            raise ShapeError("flatten needs a tensor of rank >= 1, got a scalar")
        s, e = norm_axis(self.start_axis, x.rank), norm_axis(self.end_axis, x.rank)
        if s > e:
            raise ShapeError(
                f"flatten's start_axis {self.start_axis} comes after its end_axis "
                f"{self.end_axis} for {x}"
            )
        merged = x.shape[s : e + 1]
        if len(merged) == 1:
            return x
        sym = [d for d in merged if isinstance(d, str)]
        if sym:
            raise ShapeError(
                f"flatten cannot merge symbolic dim '{sym[0]}' of {x} "
                f"(axes {s} to {e}); start after it"
            )
        size = math.prod(d for d in merged if isinstance(d, int))
        return TensorType(x.shape[:s] + (size,) + x.shape[e + 1 :], x.dtype)

    def flops(self, x: TensorType, out: TensorType) -> int:
        return 0

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": rng.normal(size=(2, 3, 4))})
        yield Sample(
            {"x": rng.normal(size=(2, 3, 4, 2))},
            {"start_axis": 1, "end_axis": -2},
            note="middle axes",
        )
        yield Sample({"x": rng.normal(size=(3, 4))}, {"start_axis": 0}, note="everything")


@op("transpose", inputs=[Input("x", dtype="any")])
class Transpose(Attrs):
    """Permute the axes: ``axes`` lists the input axis for each output axis (default: reversed)."""

    axes: list[StrictInt] | None = None

    def _perm(self, rank: int) -> tuple[int, ...]:
        if self.axes is None:
            return tuple(reversed(range(rank)))
        if len(self.axes) != rank:
            raise ShapeError(f"transpose axes {self.axes} must list all {rank} axes of the input")
        perm = tuple(norm_axis(a, rank) for a in self.axes)
        if sorted(perm) != list(range(rank)):
            raise ShapeError(f"transpose axes {self.axes} are not a permutation of 0..{rank - 1}")
        return perm

    def infer(self, x: TensorType) -> TensorType:
        return TensorType(tuple(x.shape[i] for i in self._perm(x.rank)), x.dtype)

    def flops(self, x: TensorType, out: TensorType) -> int:
        return 0

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": rng.normal(size=(3, 4))})
        yield Sample({"x": rng.normal(size=(2, 3, 4))}, {"axes": [0, 2, 1]})
        yield Sample({"x": rng.normal(size=(2, 3, 4))}, {"axes": [-1, 0, 1]}, note="negative axis")


@op("gather", inputs=[Input("x", dtype="any"), Input("indices", differentiable=False, dtype="int")])
class Gather(Attrs):
    """``take(x, indices, axis)``: the slices of ``x`` at integer ``indices`` along ``axis``.

    The output is ``x.shape[:axis] + indices.shape + x.shape[axis+1:]`` (embedding lookup:
    a [vocab, d] table and [batch, seq] indices give [batch, seq, d]). Indices lie in
    ``[-n, n)``; negative ones count from the end. Repeated indices add their gradients.
    """

    axis: StrictInt = 0

    def infer(self, x: TensorType, indices: TensorType) -> TensorType:
        if indices.dtype != "int":
            raise ShapeError(f"gather's indices must be integers, got {indices}")
        if x.rank == 0:
            raise ShapeError("gather needs a tensor of rank >= 1 to index, got a scalar")
        ax = norm_axis(self.axis, x.rank)
        return TensorType(x.shape[:ax] + indices.shape + x.shape[ax + 1 :], x.dtype)

    def flops(self, x: TensorType, indices: TensorType, out: TensorType) -> int:
        return 0

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample(
            {"x": rng.normal(size=(5, 3)), "indices": np.array([[0, 4], [4, 2]])},
            note="embedding lookup, a repeated index",
        )
        yield Sample(
            {"x": rng.normal(size=(2, 4, 3)), "indices": np.array([3, -1, 0])},
            {"axis": 1},
            note="rank 3, negative index",
        )
        yield Sample(
            {"x": rng.normal(size=(3, 4)), "indices": np.array(2)},
            {"axis": -1},
            note="scalar index drops the axis",
        )


@op("polynomial_features")
class PolynomialFeatures(Attrs):
    """Monomials of the last axis up to ``degree``: [x1, x2] -> [x1, x2, x1², x1·x2, x2²].

    Order (scikit-learn's): the bias column 1 if ``include_bias``, then degree 1 (the
    inputs, unless ``include_linear: false``), then each higher degree in turn, its
    monomials in lexicographic order of their index tuples (i <= j <= ...). With degree 2
    XOR and circles become linearly separable (specs/polynomial_features.yaml).
    """

    degree: int = Field(default=2, ge=1, le=10)
    include_linear: bool = True
    include_bias: bool = False

    def infer(self, x: TensorType) -> TensorType:
        if x.rank == 0:
            raise ShapeError("polynomial_features needs a feature axis, got a scalar")
        if x.dtype != "float":
            raise ShapeError(f"polynomial_features takes a float tensor, got {x}")
        n = _fixed(x, -1, "polynomial_features")
        count = self.count(n)
        if count == 0:
            raise ShapeError(
                "polynomial_features with degree 1 and no linear terms or bias yields no features"
            )
        if count > MAX_POLY_FEATURES:
            raise ShapeError(
                f"polynomial_features of degree {self.degree} on {n} features "
                f"makes {count:,} columns (limit {MAX_POLY_FEATURES:,})"
            )
        return TensorType(x.shape[:-1] + (count,), x.dtype)

    def count(self, n: int) -> int:
        """Number of output columns for ``n`` input features."""
        first = 1 if self.include_linear else 2
        return int(self.include_bias) + sum(
            math.comb(n + k - 1, k) for k in range(first, self.degree + 1)
        )

    def flops(self, x: TensorType, out: TensorType) -> int:
        return out.numel() * max(self.degree - 1, 1)

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": rng.normal(size=(4, 2))})
        yield Sample(
            {"x": rng.normal(size=(2, 3, 3))},
            {"degree": 3, "include_bias": True},
            note="rank 3, degree 3, bias",
        )
        yield Sample(
            {"x": rng.normal(size=(3, 2))},
            {"include_linear": False},
            note="squares and products only",
        )
