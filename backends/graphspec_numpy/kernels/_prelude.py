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
    """``1 / (1 + exp(-x))`` without overflow for large |x|: ``1 / (1 + e)`` for x >= 0 and
    ``e / (1 + e)`` below, ``e = exp(-|x|)`` (one division for both branches)."""
    e = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1.0, e)  # a new array (0-d for a scalar): safe to divide in place
    out /= 1.0 + e
    return out.astype(x.dtype, copy=False)


def stable_softplus(x):
    """``log(1 + exp(x))`` without overflow: ``max(x, 0) + log1p(exp(-|x|))``."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def log_softmax_along(x, axis):
    """``x - logsumexp(x)`` along ``axis`` as ``(x - m) - log(sum(exp(x - m)))``, m the max:
    adding m back to the log-sum and subtracting it from x again would round both to m's
    precision (float32 at logits near 1e4: 2e-4 off; this way, 1 ulp, as torch)."""
    m = np.max(x, axis=axis, keepdims=True)
    shifted = x - np.where(np.isfinite(m), m, 0)  # a row of -inf stays -inf, not NaN
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax_along(x, axis):
    """Normalized exponentials along ``axis``, max-shifted so that no exp overflows."""
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


_ERF_SPLIT = 1.25


def _erf_series(a):
    a2 = 2.0 * a * a
    term = a
    total = a
    for n in range(1, 22):
        term = term * a2 / (2 * n + 1)
        total = total + term
    return 1.1283791670955126 * np.exp(-a * a) * total  # 2 / sqrt(pi)


def _erfc_continued_fraction(a):
    # exp(-a^2) as exp(-hi^2) exp(-(a - hi)(a + hi)) with hi = a rounded to 12 fractional
    # bits: hi^2 is exact, so the rounding error of a^2 (up to 1e-13 relative at a = 25)
    # does not reach the result.
    hi = np.round(a * 4096.0) / 4096.0
    e = np.exp(-hi * hi) * np.exp(-(a - hi) * (a + hi))
    k = a
    for n in range(150, 0, -1):
        k = a + (0.5 * n) / k
    return e / (1.7724538509055159 * k)  # sqrt(pi)


def _erf_parts(x):
    """(|x|, mask |x| < split, erf(|x|) on the mask, erfc(|x|) off it)."""
    # erf and erfc for arrays (numpy has none, and a generated module imports only numpy).
    # Below |x| = 1.25: the series erf(x) = 2/sqrt(pi) exp(-x^2) sum_n (2x^2)^n x / (2n+1)!!,
    # whose terms are all positive (no cancellation; 22 terms reach 1e-17 at 1.25). Above
    # it: Laplace's continued fraction
    # erfc(x) = exp(-x^2) / sqrt(pi) / (x + (1/2)/(x + 1/(x + ...))), 150 levels evaluated
    # backwards (converged to 1e-16 at 1.25, faster further out). Measured against
    # math.erf/math.erfc on [-27, 27]: erf within 1e-15 relative, erfc within 7e-15.
    # Cost: about 190 vectorized passes, ~0.1 us per element (like np.frompyfunc(math.erf)).
    x = np.asarray(x)
    a = np.abs(x)
    small = a < _ERF_SPLIT
    # erfc underflows to 0 beyond 27; clipping keeps inf out of the continued fraction.
    return a, small, _erf_series(a[small]), _erfc_continued_fraction(np.minimum(a[~small], 30.0))


def erf(x):
    """The error function, elementwise (see _erf_parts for the method and accuracy)."""
    a, small, s, c = _erf_parts(x)
    out = np.empty_like(a)
    out[small] = s
    out[~small] = 1.0 - c
    return np.copysign(out, x)


def erfc(x):
    """``1 - erf(x)`` without cancellation for large x (relative accuracy in the tail)."""
    a, small, s, c = _erf_parts(x)
    pos = np.empty_like(a)
    pos[small] = 1.0 - s
    pos[~small] = c
    return np.where(np.asarray(x) < 0, 2.0 - pos, pos)


def activation_with_slope(a, name):
    """``(f(a), f'(a))`` for the activations a composite op may name (highway's)."""
    if name == "relu":
        return np.maximum(a, 0), (a > 0).astype(a.dtype)
    if name == "tanh":
        h = np.tanh(a)
        return h, 1 - h * h
    if name == "sigmoid":
        h = stable_sigmoid(a)
        return h, h * (1 - h)
    if name == "identity":
        return a, np.ones_like(a)
    raise ValueError(f"unknown activation '{name}'")


def normal_log_sigma(scale, parameterization):
    """log σ of a normal whose scale is written as log σ, log σ² or σ."""
    if parameterization == "log_sigma":
        return scale
    if parameterization == "log_var":
        return 0.5 * scale
    return np.log(scale)


def reduced_axes(axis, ndim):
    """The non-negative axes a reduction with ``axis`` (None, int or list) runs over."""
    axes = range(ndim) if axis is None else [axis] if isinstance(axis, int) else axis
    return tuple(a % ndim for a in axes)
