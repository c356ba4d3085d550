"""Kernels for graphspec.ops.attention.

The scores ``s = x @ weight (+ bias)`` and their softmax are family helpers: generated
modules copy them with the kernels that call them. Soft and scaled dot-product attention
hand their weights ``a`` to their VJPs as residuals.
"""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp
from graphspec_numpy.kernels._prelude import softmax_along


def _scores(x, weight, bias):
    """``x @ weight + bias`` (no bias: ``x @ weight``), one score per position."""
    return x @ weight + bias if bias is not None else x @ weight


def _causal_scores(q, k, causal, scale):
    """Scaled dot products ``q k^T c`` (``c = 1/sqrt(d)`` unless given), and -inf above the
    diagonal when causal. Returns ``(s, c)``."""
    c = float(q.shape[-1]) ** -0.5 if scale is None else scale
    s = (q @ np.swapaxes(k, -1, -2)) * c
    if causal:
        s = np.where(np.triu(np.ones(s.shape[-2:], dtype=bool), 1), -np.inf, s)
    return s, c


@kernel("soft_attention", residuals=True)
def soft_attention(x, weight, bias=None, *, output, save=False):
    # Residuals: the attention weights a.
    a = softmax_along(_scores(x, weight, bias), -1)
    y = (a[..., None] if x.ndim == 3 else a) * x
    y = y.sum(axis=1, keepdims=x.ndim == 2) if output == "sum" else y
    return (y, a) if save else y


@vjp("soft_attention", reads=("x", "weight", "res"), input_shaped=True)
def soft_attention_vjp(g, y, x, weight, bias=None, *, output, res):
    # y = a ⊙ x, a = softmax(s(x)): dL/ds = a (g⊙x - <g⊙x, a>) ; dL/dx = g ⊙ a + dL/ds ∂s/∂x
    a = res
    if output == "sum" and x.ndim == 3:
        g = g[:, None, :]  # the summary [batch, d] spreads over the n positions
    ga = g * x if x.ndim == 2 else (g * x).sum(axis=-1)
    gs = a * (ga - (ga * a).sum(axis=-1, keepdims=True))
    if x.ndim == 2:
        gx = g * a + gs @ weight.T
        return gx, x.T @ gs, gs.sum(axis=0)
    gx = g * a[..., None] + gs[..., None] * weight
    return gx, np.einsum("bn,bnd->d", gs, x)


@kernel("scaled_dot_product_attention", residuals=True)
def scaled_dot_product_attention(q, k, v, *, causal, scale, save=False):
    # Residuals: the attention weights a and the scale c.
    s, c = _causal_scores(q, k, causal, scale)
    a = softmax_along(s, -1)
    y = a @ v
    return (y, (a, c)) if save else y


@vjp("scaled_dot_product_attention", reads=("q", "k", "v", "res"))
def scaled_dot_product_attention_vjp(g, y, q, k, v, *, causal, scale, res):
    # dL/dv = a^T g ; dL/ds = a ⊙ (g v^T - rowsum(a ⊙ g v^T)) ; dL/dq = c ds k ; dL/dk = c ds^T q
    a, c = res
    ga = g @ np.swapaxes(v, -1, -2)
    gs = a * (ga - (ga * a).sum(axis=-1, keepdims=True)) * c
    return gs @ k, np.swapaxes(gs, -1, -2) @ q, np.swapaxes(a, -1, -2) @ g


@kernel("hard_attention")
def hard_attention(x, weight, bias=None, *, k, estimator, sample, training, noise=None):
    s = _scores(x, weight, bias)
    if sample and training:  # Gumbel-top-k: the top k of s + Gumbel noise draw k positions
        s = s - np.log(-np.log(noise[..., 0] if x.ndim == 3 else noise))
    top = np.argpartition(-s, k - 1, axis=-1)[..., :k]
    mask = np.zeros_like(s)
    np.put_along_axis(mask, top, 1.0, axis=-1)
    return x * (mask[..., None] if x.ndim == 3 else mask)


@vjp("hard_attention", reads=("x", "weight", "bias"))
def hard_attention_vjp(g, y, x, weight, bias=None, *, k, estimator, sample, training, noise=None):
    # dL/dx = g ⊙ mask ; straight-through (mask ~ k softmax(s)): dL/ds = k a (g⊙x - <g⊙x, a>)
    rank3 = x.ndim == 3
    s = _scores(x, weight, bias)
    p = s - np.log(-np.log(noise[..., 0] if rank3 else noise)) if sample and training else s
    top = np.argpartition(-p, k - 1, axis=-1)[..., :k]
    mask = np.zeros_like(s)
    np.put_along_axis(mask, top, 1.0, axis=-1)
    gx = g * (mask[..., None] if rank3 else mask)
    if estimator == "none":
        zeros = (np.zeros_like(weight),) + ((np.zeros_like(bias),) if bias is not None else ())
        return (gx,) + zeros
    a = softmax_along(s, -1)
    gm = (g * x).sum(axis=-1) if rank3 else g * x
    gs = k * a * (gm - (gm * a).sum(axis=-1, keepdims=True))
    if not rank3:
        return gx + gs @ weight.T, x.T @ gs, gs.sum(axis=0)
    return gx + gs[..., None] * weight, np.einsum("bn,bnd->d", gs, x)
