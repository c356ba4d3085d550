"""Attention: soft re-weighting, scaled dot-product attention, hard selection by learned scores.

``soft_attention`` and ``hard_attention`` score the ``n`` positions of their input with a
learned map (their own parameters) and then re-weight (``a ⊙ x``, Xu et al., 2015) or select
(``x[a]``, Mnih et al., 2014).  The scores of ``x`` are

* ``x: [batch, n]``:    ``s = x @ weight + bias``  (weight ``[n, n]``, bias ``[n]``): each
  position's score reads every feature, plus a learned prior over positions;
* ``x: [batch, n, d]``: ``s_i = x_i · weight``     (weight ``[d]``): one score per position
  from its own ``d`` features; no bias, since softmax ignores a shift shared by all positions.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import PositiveFloat, PositiveInt

from graphspec.ops.registry import (
    Attrs,
    Noise,
    ParamDecl,
    Sample,
    ShapeError,
    TensorType,
    op,
)


class _Scored(Attrs):
    """Base: ops over ``x: [batch, n]`` or ``[batch, n, d]`` that score the ``n`` positions."""

    def _check_x(self, x: TensorType) -> None:
        if x.rank not in (2, 3):
            raise ShapeError(f"{_name(self)} needs x of shape [batch, n] or [batch, n, d], got {x}")

    def params(self, x: TensorType, *_: TensorType) -> dict[str, ParamDecl]:
        self._check_x(x)
        feat = x.shape[-1]
        if not isinstance(feat, int):
            raise ShapeError(
                f"{_name(self)}'s last axis must be a fixed size to size its score weights, "
                f"got shape {x}"
            )
        if x.rank == 2:
            return {
                "weight": ParamDecl((feat, feat), "glorot_uniform", feat, feat, True),
                "bias": ParamDecl((feat,), "zeros", feat, feat),
            }
        return {"weight": ParamDecl((feat,), "glorot_uniform", feat, 1, True)}

    def flops(self, x: TensorType, *params: TensorType, out: TensorType) -> int:
        scores = x.numel() * (2 * int(x.shape[-1]) if x.rank == 2 else 2)
        return scores + 4 * x.numel()


def _name(attrs: Attrs) -> str:
    return str(getattr(attrs, "op_name", type(attrs).__name__))


def _int(t: TensorType) -> int:
    """The last axis's size (1 when symbolic), for FLOP estimates."""
    return t.shape[-1] if isinstance(t.shape[-1], int) else 1


def _score_params(rng: np.random.Generator, x: np.ndarray) -> dict[str, Any]:
    if x.ndim == 2:
        n = x.shape[1]
        return {"weight": rng.normal(size=(n, n)) / np.sqrt(n), "bias": rng.normal(size=n)}
    return {"weight": rng.normal(size=x.shape[-1])}


def _scores(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    return x @ weight + bias if bias is not None else x @ weight


@op("soft_attention")
class SoftAttention(_Scored):
    """Soft attention: re-weight the ``n`` positions of ``x`` by ``a = softmax(scores)``.

    ``x: [batch, n]``: ``y = a ⊙ x`` with ``a = softmax(x @ weight + bias)`` over the ``n``
    features (weight ``[n, n]``: each score reads every feature; bias ``[n]``: a learned
    prior over positions).

    ``x: [batch, n, d]``: ``y_i = a_i x_i`` with ``a = softmax_i(x_i · weight)`` over the
    ``n`` positions (weight ``[d]``: each position scored from its own features; no bias,
    as softmax ignores a shift shared by all positions).

    ``output: sum`` returns the attended summary ``sum_i a_i x_i`` instead: ``[batch, 1]``
    for rank-2 ``x``, ``[batch, d]`` for rank-3 ``x``.
    """

    output: Literal["weighted", "sum"] = "weighted"

    def infer(self, x: TensorType, *params: TensorType) -> TensorType:
        self._check_x(x)
        if self.output == "weighted":
            return x
        return TensorType((x.shape[0], 1) if x.rank == 2 else (x.shape[0], x.shape[2]))

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        x = rng.normal(size=(4, 5))
        yield Sample({"x": x, **_score_params(rng, x)})
        x = rng.normal(size=(3, 4))
        yield Sample({"x": x, **_score_params(rng, x)}, {"output": "sum"}, note="summary")
        x = rng.normal(size=(2, 4, 3))
        yield Sample({"x": x, **_score_params(rng, x)}, note="positions with features")
        x = rng.normal(size=(2, 4, 3))
        yield Sample({"x": x, **_score_params(rng, x)}, {"output": "sum"},
                     note="positions with features, summary")


@op("scaled_dot_product_attention", inputs=["q", "k", "v"])
class ScaledDotProductAttention(Attrs):
    """``softmax(q k^T * scale) v`` with ``scale = 1 / sqrt(d)`` unless given.

    Shapes: ``q [..., tq, d]``, ``k [..., tk, d]``, ``v [..., tk, dv]`` -> ``[..., tq, dv]``
    (the leading axes, e.g. batch, must be equal).  ``causal: true`` lets query ``i`` attend
    to keys ``j <= i`` only (top-left aligned when ``tq != tk``, as torch's ``is_causal``).
    """

    causal: bool = False
    scale: PositiveFloat | None = None

    def infer(self, q: TensorType, k: TensorType, v: TensorType) -> TensorType:
        for name, t in (("q", q), ("k", k), ("v", v)):
            if t.rank < 2:
                raise ShapeError(f"{name} must have rank >= 2 ([..., t, d]), got shape {t}")
        if not q.rank == k.rank == v.rank or not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
            raise ShapeError(
                f"q {q}, k {k} and v {v} must have the same leading (batch) axes"
            )
        if q.shape[-1] != k.shape[-1]:
            raise ShapeError(
                f"q and k must have the same feature size d: q {q} vs k {k} "
                f"({q.shape[-1]} vs {k.shape[-1]})"
            )
        if k.shape[-2] != v.shape[-2]:
            raise ShapeError(
                f"k and v must have the same number of keys: k {k} vs v {v} "
                f"({k.shape[-2]} vs {v.shape[-2]})"
            )
        return TensorType(q.shape[:-1] + v.shape[-1:])

    def flops(self, q: TensorType, k: TensorType, v: TensorType, out: TensorType) -> int:
        tk = k.shape[-2] if isinstance(k.shape[-2], int) else 1
        # q k^T and a v (a multiply-add each), plus about 4 per score for the softmax.
        return 2 * q.numel() * tk + 2 * out.numel() * tk + 4 * (q.numel() // max(1, _int(q)) * tk)

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"q": rng.normal(size=(2, 3, 4)), "k": rng.normal(size=(2, 5, 4)),
                      "v": rng.normal(size=(2, 5, 3))})
        yield Sample({"q": rng.normal(size=(2, 4, 3)), "k": rng.normal(size=(2, 4, 3)),
                      "v": rng.normal(size=(2, 4, 2))}, {"causal": True}, note="causal")
        yield Sample({"q": rng.normal(size=(2, 2, 3, 4)), "k": rng.normal(size=(2, 2, 5, 4)),
                      "v": rng.normal(size=(2, 2, 5, 2))}, {"causal": True, "scale": 0.3},
                     note="heads axis, causal with tq < tk, explicit scale")


@op("hard_attention", uses_training=True, stochastic=True)
class HardAttention(_Scored):
    """Hard attention: keep the ``k`` best-scored positions of ``x``, zero the others.

    ``y = x ⊙ mask`` where ``mask`` is the k-hot indicator of the top-``k`` learned scores
    over the ``n`` positions (``k: 1``: one-hot of the argmax).  The scores are
    ``soft_attention``'s: ``x @ weight + bias`` for ``x: [batch, n]``, ``x_i · weight`` per
    position for ``x: [batch, n, d]`` (the mask then covers each kept position's features).
    ``y`` keeps ``x``'s shape: extracting the one entry ``x[a]`` (``k: 1``) is ``sum`` of
    ``y`` over the ``n`` axis.

    The gradient reaches ``x`` through the selected entries.  Selection has no derivative
    with respect to the scores, so the spec must declare an ``estimator``: ``none`` (the
    score parameters get no gradient) or ``straight_through`` (the backward pass treats the
    mask as ``k * softmax(scores)``, the gradient of its smooth relaxation).

    ``sample: true`` draws the positions instead of taking the best: Gumbel-top-k on
    uniform noise ``u`` (``argtop_k(scores - log(-log u))``, ``k: 1`` draws from
    ``softmax(scores)``) in training; evaluation takes the top-k.  The straight-through
    backward is unchanged.  For a REINFORCE-trained selection, compose ``linear`` ->
    ``categorical_sample {estimator: reinforce}`` -> ``mul`` with ``x``.
    """

    k: PositiveInt = 1
    estimator: Literal["none", "straight_through"]
    sample: bool = False

    def infer(self, x: TensorType, *params: TensorType) -> TensorType:
        self._check_x(x)
        n = x.shape[1]
        if isinstance(n, int) and self.k > n:
            raise ShapeError(f"hard_attention selects k={self.k} of only {n} positions in {x}")
        return x

    @property
    def fd_exempt(self) -> str | None:
        if self.estimator == "straight_through":
            return "straight-through: the backward pass uses k * softmax(scores), not the mask"
        return None

    def noise(self) -> Noise | None:
        # Shaped like x; the kernel reads the first feature for rank-3 x (scores are [batch, n]).
        return Noise("uniform", 0) if self.sample else None

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        # Scores at least 0.05 apart: finite differences (eps 1e-6) never flip the selection.
        def separated(x: np.ndarray, **kw: Any) -> dict[str, Any]:
            while True:
                p = _score_params(rng, x)
                s = np.sort(_scores(x, p["weight"], p.get("bias")) + kw.get("g", 0.0), axis=1)
                if np.diff(s, axis=1).min() > 0.05:
                    return p

        x = rng.normal(size=(4, 5))
        yield Sample({"x": x, **separated(x)}, {"estimator": "none"})
        x = rng.normal(size=(3, 6))
        yield Sample({"x": x, **separated(x)}, {"estimator": "none", "k": 2}, note="top-2")
        x = rng.normal(size=(2, 4, 3))
        yield Sample({"x": x, **separated(x)}, {"estimator": "none"}, note="positions")
        x = rng.normal(size=(4, 5))
        yield Sample({"x": x, **separated(x)}, {"estimator": "straight_through", "k": 2},
                     note="straight-through")
        x = rng.normal(size=(2, 5, 3))
        yield Sample({"x": x, **separated(x)}, {"estimator": "straight_through"},
                     note="straight-through, positions")
        x = rng.normal(size=(4, 5))
        u = rng.uniform(0.05, 0.95, size=x.shape)
        gumbel = -np.log(-np.log(u))
        yield Sample({"x": x, "noise": u, **separated(x, g=gumbel)},
                     {"estimator": "none", "sample": True}, note="Gumbel sample")
        x = rng.normal(size=(2, 4, 3))
        u = rng.uniform(0.05, 0.95, size=x.shape)
        gumbel = -np.log(-np.log(u[..., 0]))
        yield Sample({"x": x, "noise": u, **separated(x, g=gumbel)},
                     {"estimator": "straight_through", "sample": True, "k": 2},
                     note="Gumbel top-2, straight-through")
        yield Sample({"x": x, "noise": u, **separated(x)},
                     {"estimator": "none", "sample": True, "k": 2}, training=False,
                     note="evaluation takes the top-k")


__all__ = ["HardAttention", "ScaledDotProductAttention", "SoftAttention"]
