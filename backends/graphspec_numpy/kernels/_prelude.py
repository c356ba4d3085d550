"""Helpers every numpy kernel may use; copied verbatim into generated modules."""

import numpy as np


def unbroadcast(g, shape):
    """Sum ``g`` down to ``shape``: the adjoint of NumPy broadcasting."""
    if g.shape == shape:
        return g
    if g.ndim < len(shape):
        raise ValueError(f"gradient of shape {g.shape} cannot reduce to {shape}")
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1
    )
    out = g.sum(axis=axes, keepdims=True) if axes else g
    out = out.reshape(out.shape[lead:]) if lead else out
    if out.shape != shape:
        raise ValueError(f"gradient of shape {g.shape} cannot reduce to {shape}")
    return out


def stable_sigmoid(x):
    """``1 / (1 + exp(-x))`` without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def stable_softplus(x):
    """``log(1 + exp(x))`` without overflow: ``max(x, 0) + log1p(exp(-|x|))``."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def logsumexp(x, axis, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def zeros_like_or_none(x):
    return None
