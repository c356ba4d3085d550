"""Layers that own parameters: linear, matmul over explicit params, highway, param."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveInt

from graphspec.ops.registry import (
    Attrs,
    ParamDecl,
    Sample,
    ShapeError,
    TensorType,
    broadcast,
    op,
)


@op("linear")
class Linear(Attrs):
    """Affine map ``y = x @ weight + bias`` over the last axis (weight is [in, units]).

    Default init: ``glorot_uniform`` weight, zero bias. ``bias: false`` drops the bias.
    """

    units: PositiveInt
    bias: bool = True
    graph_only: ClassVar[frozenset[str]] = frozenset({"units", "bias"})

    def infer(self, x: TensorType, *params: TensorType) -> TensorType:
        if x.rank < 1:
            raise ShapeError(f"linear needs an input with a feature axis, got shape {x}")
        return TensorType(x.shape[:-1] + (self.units,))

    def params(self, x: TensorType, *_: TensorType) -> dict[str, ParamDecl]:
        if x.rank < 1:  # params are sized before infer runs: check here too
            raise ShapeError(f"linear needs an input with a feature axis, got shape {x}")
        fan_in = x.shape[-1]
        if not isinstance(fan_in, int):
            raise ShapeError(f"linear's input feature axis must be a fixed size, got shape {x}")
        out = {
            "weight": ParamDecl((fan_in, self.units), "glorot_uniform", fan_in, self.units, True)
        }
        if self.bias:
            out["bias"] = ParamDecl((self.units,), "zeros", fan_in, self.units)
        return out

    def flops(self, x: TensorType, *params: TensorType, out: TensorType) -> int:
        return 2 * x.numel() * self.units

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample(
            {
                "x": rng.normal(size=(4, 3)),
                "weight": rng.normal(size=(3, 5)),
                "bias": rng.normal(size=5),
            },
            {"units": 5},
        )
        yield Sample(
            {"x": rng.normal(size=(2, 3, 4)), "weight": rng.normal(size=(4, 2))},
            {"units": 2, "bias": False},
            note="rank-3 input, no bias",
        )


@op("matmul", inputs=["a", "b"])
class MatMul(Attrs):
    """Matrix product ``a @ b`` with NumPy's rules: batch axes broadcast; a vector operand
    is a row (``a``) or a column (``b``) that the result then drops."""

    def infer(self, a: TensorType, b: TensorType) -> TensorType:
        if a.rank == 0 or b.rank == 0:
            raise ShapeError(f"matmul needs tensors of rank >= 1, got {a} and {b}")
        ka = a.shape[-1]
        kb = b.shape[-2] if b.rank >= 2 else b.shape[0]
        if ka != kb:
            raise ShapeError(f"matmul inner dimensions differ: {a} @ {b} ({ka} vs {kb})")
        if a.rank == 1 and b.rank == 1:
            return TensorType(())
        if a.rank == 1:
            return TensorType(b.shape[:-2] + b.shape[-1:])
        if b.rank == 1:
            return TensorType(a.shape[:-1])
        try:
            batch = broadcast(TensorType(a.shape[:-2]), TensorType(b.shape[:-2]))
        except ShapeError:
            raise ShapeError(
                f"matmul batch dimensions do not broadcast: {a} @ {b} "
                f"({list(a.shape[:-2])} vs {list(b.shape[:-2])})"
            ) from None
        return TensorType(batch + (a.shape[-2], b.shape[-1]))

    def flops(self, a: TensorType, b: TensorType, out: TensorType) -> int:
        return 2 * out.numel() * int(a.shape[-1]) if isinstance(a.shape[-1], int) else out.numel()

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        n = rng.normal
        yield Sample({"a": n(size=(3, 4)), "b": n(size=(4, 2))})
        yield Sample(
            {"a": n(size=(2, 3, 4)), "b": n(size=(4, 5))},
            note="batched @ matrix (b's gradient sums over the batch)",
        )
        yield Sample(
            {"a": n(size=(2, 1, 3, 4)), "b": n(size=(5, 4, 2))},
            note="batch axes broadcast both ways",
        )
        yield Sample({"a": n(size=(4,)), "b": n(size=(4, 3))}, note="vector @ matrix")
        yield Sample({"a": n(size=(2, 3, 4)), "b": n(size=(4,))}, note="batched @ vector")
        yield Sample({"a": n(size=(4,)), "b": n(size=(2, 4, 3))}, note="vector @ batched")
        yield Sample({"a": n(size=(4,)), "b": n(size=(4,))}, note="vector @ vector")


@op("param", inputs=[])
class Param(Attrs):
    """An explicit parameter tensor; other nodes read it by this node's id (sharing).

    Its initializer is the node's ``init`` (default ``normal``), written either for the
    parameter (``init: {value: glorot_uniform}``) or directly (``init: uniform``,
    ``init: {name: constant, value: 0.5}``).
    """

    shape: list[PositiveInt] = Field(min_length=0)
    penalize: bool = True
    graph_only: ClassVar[frozenset[str]] = frozenset({"shape", "penalize"})

    def infer(self, *params: TensorType) -> TensorType:
        return TensorType(tuple(self.shape))

    def params(self, *_: TensorType) -> dict[str, ParamDecl]:
        # Fans are read from the shape by the initializers (a rank >= 3 param is a conv kernel).
        return {"value": ParamDecl(tuple(self.shape), "normal", penalize=self.penalize)}

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"value": rng.normal(size=(2, 3))}, {"shape": [2, 3]})
        yield Sample({"value": rng.normal(size=(4,))}, {"shape": [4]}, note="a vector")


@op("highway")
class Highway(Attrs):
    """Highway layer: ``t = sigmoid(x Wt + bt); y = t * act(x W + b) + (1 - t) * x``.

    The transform gate ``t`` mixes a non-linear layer with the unchanged input over the last
    axis, so the input's width is kept. The gate bias starts at ``gate_bias`` (negative: the
    layer carries its input at first, which lets deep stacks train; Srivastava et al. 2015).
    """

    activation: Literal["relu", "tanh", "sigmoid", "identity"] = "relu"
    gate_bias: float = -2.0
    graph_only: ClassVar[frozenset[str]] = frozenset({"gate_bias"})

    def infer(self, x: TensorType, *params: TensorType) -> TensorType:
        if x.rank < 1:
            raise ShapeError(f"highway needs an input with a feature axis, got shape {x}")
        return x

    def params(self, x: TensorType, *_: TensorType) -> dict[str, ParamDecl]:
        n = x.shape[-1] if x.rank else None
        if not isinstance(n, int):
            raise ShapeError(f"highway's feature axis must be a fixed size, got shape {x}")
        return {
            "weight": ParamDecl((n, n), "glorot_uniform", n, n, True),
            "bias": ParamDecl((n,), "zeros", n, n),
            "gate_weight": ParamDecl((n, n), "glorot_uniform", n, n, True),
            "gate_bias": ParamDecl((n,), {"name": "constant", "value": self.gate_bias}, n, n),
        }

    def flops(self, x: TensorType, *params: TensorType, out: TensorType) -> int:
        return 4 * x.numel() * int(x.shape[-1]) + 6 * out.numel()

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        n = 3

        def sample(shape: tuple[int, ...], act: str, note: str = "") -> Sample:
            return Sample(
                {
                    "x": rng.normal(size=shape),
                    "weight": rng.normal(size=(n, n)),
                    "bias": rng.normal(size=n) + 0.1,
                    "gate_weight": rng.normal(size=(n, n)),
                    "gate_bias": rng.normal(size=n),
                },
                {"activation": act},
                note=note,
            )

        for act in ("relu", "tanh", "sigmoid", "identity"):
            yield sample((4, n), act)
        yield sample((2, 3, n), "tanh", note="rank 3")
