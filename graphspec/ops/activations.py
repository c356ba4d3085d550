"""Non-linearities: the threshold unit, squashing functions, rectifiers, softmax."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import PositiveFloat

from graphspec.ops.registry import Elementwise, Input, Sample, TensorType, norm_axis, op


@op("identity")
class Identity(Elementwise):
    """``y = x``."""


@op("step", inputs=[Input("x", differentiable=False)])
class Step(Elementwise):
    """The threshold unit: ``y = 1 if x > 0 else 0``; its gradient is zero everywhere."""


@op("sigmoid")
class Sigmoid(Elementwise):
    """Logistic function ``1 / (1 + exp(-x))``, computed without overflow."""


@op("tanh")
class Tanh(Elementwise):
    """Hyperbolic tangent."""


@op("relu")
class ReLU(Elementwise):
    """Rectified linear unit ``max(x, 0)`` (gradient 0 at x = 0)."""


@op("leaky_relu")
class LeakyReLU(Elementwise):
    """``x if x > 0 else slope * x``."""

    slope: float = 0.01


@op("softplus")
class Softplus(Elementwise):
    """``log(1 + exp(beta x)) / beta``, finite for any x (linear above ``threshold``)."""

    beta: PositiveFloat = 1.0

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": rng.normal(size=(3, 4)) * 3})
        yield Sample({"x": rng.normal(size=(5,))}, {"beta": 2.0})


@op("elu")
class ELU(Elementwise):
    """``x if x > 0 else alpha * (exp(x) - 1)``."""

    alpha: float = 1.0


@op("gelu")
class GELU(Elementwise):
    """Gaussian error linear unit ``x * Phi(x)`` (``approximate: tanh`` for the tanh form)."""

    approximate: bool = False


@op("softmax")
class Softmax(Elementwise):
    """Normalized exponentials along ``axis`` (max-shifted, never overflows)."""

    axis: int = -1

    def infer(self, x: TensorType, *rest: TensorType) -> TensorType:
        norm_axis(self.axis, x.rank)
        return x

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": rng.normal(size=(3, 5))})
        yield Sample({"x": rng.normal(size=(2, 4, 3))}, {"axis": 1})


@op("log_softmax")
class LogSoftmax(Softmax):
    """``x - logsumexp(x)`` along ``axis``."""
