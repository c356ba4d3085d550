"""A kernel table that is wrong on purpose, for the tests that show a check catches it."""

from __future__ import annotations

from typing import Any

from graphspec_numpy import kernels


class ScaledVJP:
    """``graphspec_numpy.kernels`` as a kernel table, but the gradients of ``op``'s VJP
    multiplied by ``factor``."""

    VJPS = kernels.VJPS

    def __init__(self, op: str, factor: float) -> None:
        self.op, self.factor = op, factor

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return kernels.forward(*args, **kwargs)

    def backward(self, op: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        grads = kernels.backward(op, *args, **kwargs)
        if op != self.op:
            return grads
        return tuple(None if g is None else self.factor * g for g in grads)

    def unbroadcast(self, g: Any, shape: tuple[int, ...]) -> Any:
        return kernels.unbroadcast(g, shape)
