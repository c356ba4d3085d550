"""Elementwise arithmetic: sums and products with NumPy broadcasting, unary math, constants.

Binary ops broadcast like NumPy (a symbolic dim matches itself or 1); their VJPs return
gradients in the broadcast output's shape and the backward driver sums them back down.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator, model_validator

from graphspec.ops.registry import (
    Attrs,
    Bound,
    Elementwise,
    Input,
    ParamDecl,
    Sample,
    ShapeError,
    TensorType,
    broadcast,
    op,
)


def _require_float(name: str, *types: TensorType) -> None:
    for t in types:
        if t.dtype != "float":
            raise ShapeError(f"{name} takes float tensors, got {t}")


def _positive(rng: np.random.Generator, size: Any) -> np.ndarray:
    """Samples for log, sqrt and fractional powers: well inside the domain."""
    return rng.uniform(0.5, 2.0, size=size)


def _away_from_zero(rng: np.random.Generator, size: Any) -> np.ndarray:
    """Signed samples with |x| >= 0.3 (abs, division)."""
    x = rng.normal(size=size)
    return np.sign(x) * (np.abs(x) + 0.3)


class _Unary(Elementwise):
    """Base: float in, same shape out."""

    def infer(self, x: TensorType, *rest: TensorType) -> TensorType:
        _require_float(type(self).op_name, x)  # type: ignore[attr-defined]
        return x


class _Binary(Attrs):
    """Base: two float tensors, broadcast together."""

    def infer(self, a: TensorType, b: TensorType) -> TensorType:
        _require_float(type(self).op_name, a, b)  # type: ignore[attr-defined]
        return TensorType(broadcast(a, b))

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"a": rng.normal(size=(3, 4)), "b": _away_from_zero(rng, (3, 4))})
        yield Sample(
            {"a": rng.normal(size=(2, 3, 4)), "b": _away_from_zero(rng, (4,))},
            note="rank 3 with a vector (b's gradient sums over two axes)",
        )
        yield Sample(
            {"a": rng.normal(size=(3, 1)), "b": _away_from_zero(rng, (1, 4))},
            note="both sides broadcast",
        )
        yield Sample({"a": rng.normal(size=(2, 3)), "b": _away_from_zero(rng, ())}, note="a scalar")


@op("add", inputs=[Input("x", variadic=True)])
class Add(Attrs):
    """Sum of one or more tensors, broadcast together (residual connections: ``[$in, h]``)."""

    def infer(self, *xs: TensorType) -> TensorType:
        _require_float("add", *xs)
        return TensorType(broadcast(*xs))

    def flops(self, *xs: TensorType, out: TensorType) -> int:
        return max(len(xs) - 1, 0) * out.numel()

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": [rng.normal(size=(3, 4)), rng.normal(size=(3, 4))]})
        four = [rng.normal(size=s) for s in [(2, 3, 4), (4,), (3, 1), ()]]
        yield Sample({"x": four}, note="four inputs, broadcast")
        yield Sample({"x": [rng.normal(size=(2, 3))]}, note="a single input")


@op("sub", inputs=["a", "b"])
class Sub(_Binary):
    """Difference ``a - b``, broadcast."""


@op("mul", inputs=["a", "b"])
class Mul(_Binary):
    """Elementwise product ``a * b``, broadcast (gating, masks, ``mul(x, x)``)."""


@op("div", inputs=["a", "b"])
class Div(_Binary):
    """Quotient ``a / b``, broadcast; ``b`` must stay away from zero."""


@op("maximum", inputs=["a", "b"])
class Maximum(_Binary):
    """Elementwise ``max(a, b)``, broadcast; the gradient goes to the larger input.

    At a tie each input gets half the gradient (torch's rule).
    """


@op("minimum", inputs=["a", "b"])
class Minimum(_Binary):
    """Elementwise ``min(a, b)``, broadcast; the gradient goes to the smaller input.

    At a tie each input gets half the gradient (torch's rule).
    """


@op("neg")
class Neg(_Unary):
    """``-x``."""


@op("exp")
class Exp(_Unary):
    """``e ** x`` (overflows to inf above about 709 in float64, 88 in float32)."""


@op("log")
class Log(_Unary):
    """Natural logarithm, clamped: ``log(max(x, eps))``; never NaN, finite for ``eps > 0``.

    With the default ``eps = 1e-12`` ``log(0)`` is about -27.6 instead of -inf, so a
    hand-written ``y * log(p)`` stays finite when ``p`` saturates; below ``eps`` the
    gradient is 0 (torch's ``log(clamp(x, min=eps))``). ``eps: 0`` is the plain logarithm
    on positive inputs (-inf at 0 and for negative inputs).
    """

    eps: float = Field(default=1e-12, ge=0.0)

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": _positive(rng, (3, 4))})
        yield Sample({"x": _positive(rng, (2, 3, 2))}, {"eps": 0.0}, note="plain log")
        yield Sample(
            {"x": np.array([1e-20, 0.0, -1.0, 0.7])},
            {"eps": 1e-3},
            note="clamped below eps: value log(eps), gradient 0",
        )


@op("square")
class Square(_Unary):
    """``x * x``."""


@op("sqrt")
class Sqrt(_Unary):
    """Square root; its gradient ``1 / (2 sqrt(x))`` is infinite at 0."""

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": _positive(rng, (3, 4))})


@op("pow")
class Pow(_Unary):
    """``x ** exponent`` for a constant exponent.

    Negative ``x`` needs an integral exponent; for a tensor exponent write
    ``exp(mul(e, log(x)))``.
    """

    exponent: float

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": rng.normal(size=(3, 4))}, {"exponent": 3.0})
        yield Sample({"x": _positive(rng, (2, 3, 2))}, {"exponent": 0.5})
        yield Sample({"x": _away_from_zero(rng, (5,))}, {"exponent": -2.0})
        yield Sample({"x": rng.normal(size=(4,))}, {"exponent": 0.0}, note="constant 1")


@op("abs")
class Abs(_Unary):
    """``|x|`` (gradient ``sign(x)``, 0 at 0 as in torch)."""

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": _away_from_zero(rng, (3, 4))})


@op("clip")
class Clip(_Unary):
    """``x`` limited to ``[min, max]`` (either bound may be left out, or be ``-.inf``/``.inf``).

    The gradient is 1 where ``min <= x <= max`` (bounds included, like ``torch.clamp``)
    and 0 outside.
    """

    min: Bound | None = None  # -.inf / .inf: no bound on that side
    max: Bound | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Clip:
        if self.min is None and self.max is None:
            raise ValueError("clip needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"clip's min ({self.min}) is greater than its max ({self.max})")
        return self

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        x = _away_from_zero(rng, (4, 5))  # |x| >= 0.3: away from both bounds below
        yield Sample({"x": x * 2}, {"min": -0.1, "max": 0.2})
        yield Sample({"x": x}, {"min": 0.0}, note="lower bound only")
        yield Sample({"x": x[0]}, {"max": -0.2}, note="upper bound only")


@op("scale")
class Scale(_Unary):
    """``factor * x`` for a constant ``factor``."""

    factor: float

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": rng.normal(size=(3, 4))}, {"factor": -2.5})
        yield Sample({"x": rng.normal(size=(2, 3, 2))}, {"factor": 0.5})


@op("stop_gradient", inputs=[Input("x", differentiable=False, dtype="any")])
class StopGradient(Elementwise):
    """``y = x`` forward; no gradient flows back through it (REINFORCE's baselines)."""

    def flops(self, x: TensorType, out: TensorType) -> int:
        return 0


@op("constant", inputs=[])
class Constant(Attrs):
    """A fixed float tensor ``value``: a number or a nested list (``[[1, 0], [0, 1]]``).

    The value lives in a non-trainable buffer ``<id>.value`` that the core initializes,
    so each backend holds it in its own dtype and on its own device, like batch norm's
    running statistics. Nothing trains it and no gradient reaches it.
    """

    value: float | list[Any]
    graph_only: ClassVar[frozenset[str]] = frozenset({"value"})

    @field_validator("value")
    @classmethod
    def _rectangular(cls, v: Any) -> Any:
        try:
            a = np.array(v, dtype=np.float64)
        except (ValueError, TypeError):
            raise ValueError(
                "value must be a number or a rectangular nested list of numbers"
            ) from None
        if not np.isfinite(a).all():
            raise ValueError("value must be finite")
        return v

    def _shape(self) -> tuple[int, ...]:
        return tuple(np.shape(np.asarray(self.value, dtype=np.float64)))

    def infer(self, *buffers: TensorType) -> TensorType:
        return TensorType(self._shape())

    def state(self, *_: TensorType) -> dict[str, ParamDecl]:
        init = {"name": "constant", "value": self.value}
        return {"value": ParamDecl(self._shape(), init)}

    def flops(self, *types: TensorType, out: TensorType) -> int:
        return 0

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        for value in (2.5, [[1.0, -2.0, 0.5], [0.0, 3.0, 4.0]]):
            yield Sample({"value": np.asarray(value)}, {"value": value})
