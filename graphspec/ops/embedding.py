"""Embeddings: integer token ids looked up in a learned table (torch's ``nn.Embedding``)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import NonNegativeInt, PositiveInt, model_validator

from graphspec.ops.registry import Attrs, Input, ParamDecl, Sample, ShapeError, TensorType, op


@op("embedding", inputs=[Input("ids", differentiable=False, dtype="int")])
class Embedding(Attrs):
    """Rows of a learned ``weight`` table ``[vocab, dim]`` at integer token ``ids``.

    ``ids`` is an ``int`` input of any rank; the output is its shape plus ``[dim]``
    (``[batch, time]`` ids give ``[batch, time, dim]``), as torch's ``nn.Embedding``. Ids
    lie in ``[0, vocab)``: data with an id outside is refused where it is loaded, naming the
    file and row. The gradient reaches only the rows the batch used. Default init: normal
    (std 1), as torch. ``padding_idx`` names a row that is initialized to zeros and never
    takes a gradient (the padding token's vector stays zero).
    """

    vocab: PositiveInt
    dim: PositiveInt
    padding_idx: NonNegativeInt | None = None
    graph_only: ClassVar[frozenset[str]] = frozenset({"vocab", "dim"})

    @model_validator(mode="after")
    def _check(self) -> Embedding:
        if self.padding_idx is not None and self.padding_idx >= self.vocab:
            raise ValueError(
                f"padding_idx {self.padding_idx} is not a token id of a vocabulary of "
                f"{self.vocab} (ids 0..{self.vocab - 1})"
            )
        return self

    @property
    def fd_exempt(self) -> str | None:
        if self.padding_idx is not None:
            return (
                "padding_idx: its row takes no gradient by definition (torch's), though the "
                "output reads it"
            )
        return None

    def _ids(self, ids: TensorType) -> None:
        if ids.dtype != "int":
            raise ShapeError(
                f"embedding looks up integer token ids, got {ids}: declare the input with "
                "dtype: int"
            )

    def infer(self, ids: TensorType, *params: TensorType) -> TensorType:
        self._ids(ids)
        return TensorType(ids.shape + (self.dim,))

    def params(self, ids: TensorType, *_: TensorType) -> dict[str, ParamDecl]:
        self._ids(ids)  # params are sized before infer runs: check here too
        zero = () if self.padding_idx is None else (self.padding_idx,)
        return {
            "weight": ParamDecl(
                (self.vocab, self.dim),
                {"name": "normal", "std": 1.0},
                penalize=True,
                zero_rows=zero,
            )
        }

    def flops(self, ids: TensorType, *params: TensorType, out: TensorType) -> int:
        return 0  # a lookup: memory traffic, no arithmetic

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample(
            {"ids": np.array([[0, 3, 3], [5, 1, 0]]), "weight": rng.normal(size=(6, 4))},
            {"vocab": 6, "dim": 4},
            note="[batch, time] ids, a repeated id",
        )
        yield Sample(
            {"ids": np.array([2, 0, 4, 0]), "weight": rng.normal(size=(5, 3))},
            {"vocab": 5, "dim": 3, "padding_idx": 0},
            note="padding_idx: no gradient to row 0",
        )
        yield Sample(
            {"ids": rng.integers(0, 7, size=(2, 2, 3)), "weight": rng.normal(size=(7, 2))},
            {"vocab": 7, "dim": 2},
            note="rank-3 ids",
        )
