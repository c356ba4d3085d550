"""Selection and borders: choosing between tensors by a mask, padding, einsum.

``where`` broadcasts like NumPy; its VJP returns gradients in the broadcast output's shape
and the backward driver sums them back down, as for the arithmetic ops.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, StrictInt, field_validator, model_validator

from graphspec.ops.registry import (
    Attrs,
    Input,
    Sample,
    ShapeError,
    TensorType,
    broadcast,
    op,
)

# torch's F.pad (and so the ONNX export) mirrors or repeats at most the last three axes.
MAX_NONCONSTANT_PAD_AXES = 3


@op(
    "where",
    inputs=[
        Input("cond", differentiable=False, dtype="any"),
        Input("a", dtype="any"),
        Input("b", dtype="any"),
    ],
)
class Where(Attrs):
    """``a`` where ``cond`` is true, ``b`` elsewhere, all three broadcast (NumPy's rules).

    ``cond`` may be any tensor: a float or integer one is read as ``cond != 0``. It takes no
    gradient; ``a`` gets the gradient where ``cond`` holds, ``b`` everywhere else. ``a``
    and ``b`` must have one dtype, which the output keeps.
    """

    def infer(self, cond: TensorType, a: TensorType, b: TensorType) -> TensorType:
        if a.dtype != b.dtype:
            raise ShapeError(f"where needs a and b of one dtype, got a {a} and b {b}")
        try:
            shape = broadcast(cond, a, b)
        except ShapeError:
            raise ShapeError(
                f"where: cond {cond}, a {a} and b {b} do not broadcast to one shape"
            ) from None
        return TensorType(shape, a.dtype)

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample(
            {
                "cond": (rng.random((3, 4)) < 0.5).astype(np.float64),
                "a": rng.normal(size=(3, 4)),
                "b": rng.normal(size=(3, 4)),
            },
            note="a float mask",
        )
        yield Sample(
            {
                "cond": rng.integers(-2, 3, size=(4,)),
                "a": rng.normal(size=(2, 3, 4)),
                "b": rng.normal(size=(3, 1)),
            },
            note="an integer mask read as != 0, all three broadcast",
        )
        yield Sample(
            {
                "cond": rng.random((2, 1)) < 0.5,
                "a": rng.normal(size=()),
                "b": rng.normal(size=(2, 3)),
            },
            note="a boolean mask, a scalar a",
        )


PadPair = tuple[StrictInt, StrictInt]


@op("pad", inputs=[Input("x", dtype="any")])
class Pad(Attrs):
    """``x`` with borders added to its trailing axes.

    ``pads`` lists one ``[before, after]`` pair per padded axis, in axis order, for the last
    ``len(pads)`` axes (NumPy's ``np.pad`` order, restricted to trailing axes; torch's
    ``F.pad`` lists the same numbers last axis first): ``pads: [[1, 1], [2, 0]]`` on
    ``[batch, 3, 4, 5]`` adds one row above and below and two columns on the left, giving
    ``[batch, 3, 6, 7]``. ``mode``: ``constant`` fills with ``value``; ``reflect`` mirrors
    the values next to the border, without repeating the edge (each pad smaller than its
    axis); ``replicate`` repeats the edge value. ``reflect`` and ``replicate`` pad at most
    three axes (the limit of torch's ``F.pad``).
    """

    pads: list[PadPair] = Field(min_length=1)
    mode: Literal["constant", "reflect", "replicate"] = "constant"
    value: float = 0.0

    @field_validator("pads")
    @classmethod
    def _non_negative(cls, v: list[PadPair]) -> list[PadPair]:
        for before, after in v:
            if before < 0 or after < 0:
                raise ValueError(f"pads must be >= 0 (use slice to cut), got [{before}, {after}]")
        return v

    @model_validator(mode="after")
    def _mode(self) -> Pad:
        if self.mode != "constant" and len(self.pads) > MAX_NONCONSTANT_PAD_AXES:
            raise ValueError(
                f"mode '{self.mode}' pads at most {MAX_NONCONSTANT_PAD_AXES} trailing axes, "
                f"pads lists {len(self.pads)}"
            )
        if self.mode != "constant" and self.value != 0.0:
            raise ValueError(f"value applies to mode 'constant' only, not '{self.mode}'")
        return self

    def infer(self, x: TensorType) -> TensorType:
        k = len(self.pads)
        if k > x.rank:
            raise ShapeError(f"pads lists {k} axes, but the input {x} has rank {x.rank}")
        shape = list(x.shape)
        for (before, after), ax in zip(self.pads, range(x.rank - k, x.rank)):
            d = shape[ax]
            if before == after == 0:
                continue
            if not isinstance(d, int):
                raise ShapeError(
                    f"pad cannot grow symbolic dim '{d}' (axis {ax} of {x}); pad it by [0, 0]"
                )
            if self.mode == "reflect" and max(before, after) >= d:
                raise ShapeError(
                    f"reflect padding [{before}, {after}] of axis {ax} of {x} needs each pad "
                    f"smaller than the axis ({d})"
                )
            shape[ax] = before + d + after
        return TensorType(tuple(shape), x.dtype)

    def flops(self, x: TensorType, out: TensorType) -> int:
        return 0

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": rng.normal(size=(2, 3, 4))}, {"pads": [[1, 2]]})
        yield Sample(
            {"x": rng.normal(size=(2, 3, 4, 5))},
            {"pads": [[1, 0], [0, 2]], "value": -1.5},
            note="two axes, a fill value",
        )
        yield Sample(
            {"x": rng.normal(size=(2, 4, 5))},
            {"pads": [[3, 1], [2, 4]], "mode": "reflect"},
            note="reflect",
        )
        yield Sample(
            {"x": rng.normal(size=(2, 3, 2, 3))},
            {"pads": [[1, 2], [0, 1], [4, 3]], "mode": "replicate"},
            note="replicate, three axes, pads past the axis",
        )
        yield Sample(
            {"x": rng.normal(size=(5,))}, {"pads": [[2, 2]], "mode": "reflect"}, note="a vector"
        )


def einsum_terms(equation: str) -> tuple[list[str], str]:
    """(each operand's letters, the output's letters) of an explicit ``equation``, checked:
    letters only, ``->`` once, no letter twice on one operand or in the output, and every
    output letter on some operand. Raises ValueError with the reason."""
    eq = equation.replace(" ", "")
    if "..." in eq:
        raise ValueError(f"'{equation}': '...' is not supported; name each axis with a letter")
    if eq.count("->") != 1:
        raise ValueError(
            f"'{equation}' needs one '->' followed by the output's letters (e.g. 'ij,jk->ik')"
        )
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    for term in [*terms, out]:
        bad = [c for c in term if not ("a" <= c <= "z" or "A" <= c <= "Z")]
        if bad:
            raise ValueError(f"'{equation}': '{bad[0]}' is not a letter (axes are a-z, A-Z)")
    for k, term in enumerate(terms):
        twice = sorted({c for c in term if term.count(c) > 1})
        if twice:
            raise ValueError(
                f"'{equation}': operand {k} repeats '{twice[0]}' (diagonals and traces are "
                "not supported)"
            )
    twice = sorted({c for c in out if out.count(c) > 1})
    if twice:
        raise ValueError(f"'{equation}': the output repeats '{twice[0]}'")
    missing = [c for c in out if not any(c in t for t in terms)]
    if missing:
        raise ValueError(f"'{equation}': output letter '{missing[0]}' is on no operand")
    return terms, out


@op("einsum", inputs=[Input("x", variadic=True)])
class Einsum(Attrs):
    """Einstein summation over one or more inputs, as ``np.einsum``/``torch.einsum``.

    ``equation`` names each input's axes with letters, inputs separated by commas, then
    ``->`` and the output's axes, always written out: ``ij,jk->ik`` is a matrix product,
    ``bij,bjk->bik`` a batched one, ``ij->ji`` a transpose, ``bi,bi->b`` a row-wise dot
    product. A letter shared by inputs must have one size everywhere; letters missing from
    the output are summed over. Not supported: ``...`` and a letter repeated on one input
    (diagonals, traces).
    """

    equation: str

    @field_validator("equation")
    @classmethod
    def _parse(cls, v: str) -> str:
        einsum_terms(v)
        return v

    def infer(self, *xs: TensorType) -> TensorType:
        terms, out = einsum_terms(self.equation)
        if len(terms) != len(xs):
            raise ShapeError(
                f"einsum '{self.equation}' names {len(terms)} operand(s), but the node has "
                f"{len(xs)} input(s)"
            )
        sizes: dict[str, tuple[Any, int]] = {}
        for k, (term, x) in enumerate(zip(terms, xs)):
            if x.dtype != "float":
                raise ShapeError(f"einsum takes float tensors, got {x} for operand {k}")
            if len(term) != x.rank:
                raise ShapeError(
                    f"einsum '{self.equation}': operand {k} '{term}' names {len(term)} axes, "
                    f"but input {k} {x} has rank {x.rank}"
                )
            for c, d in zip(term, x.shape):
                if c in sizes and sizes[c][0] != d:
                    d0, k0 = sizes[c]
                    raise ShapeError(
                        f"einsum '{self.equation}': letter '{c}' is {d0} on operand {k0} "
                        f"but {d} on operand {k}"
                    )
                sizes.setdefault(c, (d, k))
        return TensorType(tuple(sizes[c][0] for c in out))

    def flops(self, *xs: TensorType, out: TensorType) -> int:
        # One multiply-add per point of the space of all letters, per extra operand.
        terms, _ = einsum_terms(self.equation)
        dims = {c: d for term, x in zip(terms, xs) for c, d in zip(term, x.shape)}
        points = TensorType(tuple(dims.values())).numel()
        return 2 * points * max(len(xs) - 1, 1)

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample(
            {"x": [rng.normal(size=(3, 4)), rng.normal(size=(4, 2))]},
            {"equation": "ij,jk->ik"},
            note="matrix product",
        )
        yield Sample(
            {"x": [rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 4, 5))]},
            {"equation": "bij,bjk->bik"},
            note="batched",
        )
        yield Sample(
            {"x": [rng.normal(size=(3, 4))]},
            {"equation": "ij->j"},
            note="one operand, a sum",
        )
        yield Sample(
            {"x": [rng.normal(size=(2, 3)), rng.normal(size=(3, 4)), rng.normal(size=(4,))]},
            {"equation": "ij, jk, k -> ki"},
            note="three operands, spaces, a transposed output",
        )
        yield Sample(
            {"x": [rng.normal(size=(2, 3)), rng.normal(size=(4,))]},
            {"equation": "ij,k->"},
            note="sums within each operand, scalar output",
        )
