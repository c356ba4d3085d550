"""Non-linearities: the threshold unit, squashing functions, rectifiers, softmax."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import PositiveFloat

from graphspec.ops.registry import Elementwise, Input, Sample, TensorType, norm_axis, op


def _away_from_zero(x: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """Move samples out of ``(-margin, margin)``: rectifiers have their kink at 0."""
    return np.where(np.abs(x) < margin, x + np.copysign(3 * margin, x), x)


def _extremes(rng: np.random.Generator) -> np.ndarray:
    """A row of ordinary values and a row of saturating ones (±1000), for stability checks."""
    x = _away_from_zero(rng.normal(size=(2, 4)))
    x[1] = [1000.0, -1000.0, 700.0, -40.0]
    return x


@op("identity", inputs=[Input("x", dtype="any")])
class Identity(Elementwise):
    """``y = x``."""


@op("step", inputs=[Input("x", differentiable=False)])
class Step(Elementwise):
    """The threshold unit: ``y = 1 if x > 0 else 0``; its gradient is zero everywhere.

    Its input is declared non-differentiable, so no gradient flows through it (a network of
    step units cannot be trained by backpropagation: the perceptron's limitation).
    """


@op("sigmoid")
class Sigmoid(Elementwise):
    """Logistic function ``1 / (1 + exp(-x))``, computed without overflow."""

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield from Elementwise.samples(rng)
        yield Sample({"x": _extremes(rng)}, note="saturated at ±1000")


@op("tanh")
class Tanh(Elementwise):
    """Hyperbolic tangent."""


@op("relu")
class ReLU(Elementwise):
    """Rectified linear unit ``max(x, 0)`` (gradient 0 at x = 0)."""

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield from Elementwise.samples(rng)
        yield Sample({"x": _away_from_zero(rng.normal(size=(2, 3, 4)))}, note="rank 3")


@op("leaky_relu")
class LeakyReLU(Elementwise):
    """``x if x > 0 else slope * x`` (gradient ``slope`` at x = 0, as torch)."""

    slope: float = 0.01

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield from Elementwise.samples(rng)
        yield Sample({"x": _away_from_zero(rng.normal(size=(3, 4)))}, {"slope": 0.2})


@op("softplus")
class Softplus(Elementwise):
    """``log(1 + exp(beta x)) / beta``, finite for any x; exactly ``x`` where
    ``beta x > threshold``.

    The threshold follows ``torch.nn.functional.softplus`` (default 20), so both backends
    compute the same function: above it the op is the identity, which differs from the
    smooth formula by less than ``exp(-threshold) / beta`` (2e-9 at the default).
    """

    beta: PositiveFloat = 1.0
    threshold: PositiveFloat = 20.0

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        # Values stay away from the threshold, where the op switches formula.
        yield Sample({"x": np.clip(rng.normal(size=(3, 4)) * 3, -15, 15)})
        yield Sample({"x": rng.normal(size=(5,))}, {"beta": 2.0})
        yield Sample({"x": _extremes(rng)}, note="±1000: linear and zero branches")
        yield Sample(
            {"x": np.array([-3.0, 0.5, 4.0, 12.0])},
            {"beta": 0.5, "threshold": 5.0},
            note="custom threshold (beta x = 6 is above it)",
        )


@op("elu")
class ELU(Elementwise):
    """``x if x > 0 else alpha * (exp(x) - 1)``."""

    alpha: float = 1.0

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield from Elementwise.samples(rng)
        yield Sample({"x": _extremes(rng)}, {"alpha": 0.5}, note="±1000")


@op("gelu")
class GELU(Elementwise):
    """Gaussian error linear unit ``x * Phi(x)`` (``approximate: tanh`` for the tanh form).

    ``Phi`` is the standard normal CDF, ``(1 + erf(x / sqrt 2)) / 2``; the tanh form is
    ``x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))``, as torch's ``approximate``.
    """

    approximate: Literal["none", "tanh"] = "none"

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        x = rng.normal(size=(3, 4)) * 2
        yield Sample({"x": x})
        yield Sample({"x": x}, {"approximate": "tanh"})
        wide = np.array([-30.0, -9.0, -4.5, -1.2, 0.3, 1.1, 2.5, 6.0])
        yield Sample({"x": wide}, note="tails (erf's series and continued-fraction branches)")
        yield Sample({"x": wide}, {"approximate": "tanh"}, note="tails")


@op("silu")
class SiLU(Elementwise):
    """Sigmoid-weighted linear unit (swish) ``x * sigmoid(x)``, as torch's ``F.silu``."""

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield from Elementwise.samples(rng)
        yield Sample({"x": _extremes(rng)}, note="saturated at ±1000")


@op("softmax")
class Softmax(Elementwise):
    """Normalized exponentials along ``axis`` (max-shifted, never overflows)."""

    axis: int = -1

    def infer(self, x: TensorType, *rest: TensorType) -> TensorType:
        norm_axis(self.axis, x.rank)
        return x

    def flops(self, *types: TensorType, out: TensorType) -> int:
        return 5 * out.numel()

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": rng.normal(size=(3, 5))})
        yield Sample({"x": rng.normal(size=(2, 4, 3))}, {"axis": 1}, note="rank 3, axis 1")
        yield Sample({"x": _extremes(rng)}, note="logits ±1000")


@op("log_softmax")
class LogSoftmax(Softmax):
    """``x - logsumexp(x)`` along ``axis`` (max-shifted, never overflows)."""
