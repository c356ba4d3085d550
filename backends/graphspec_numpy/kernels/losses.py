"""Kernels for graphspec.ops.losses (targets never take a gradient: their VJP slot is None).

A prediction's gradient has the prediction's shape (the shape rules refuse a target that
would broadcast it to a new one), so the VJPs are registered ``input_shaped``.
"""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp
from graphspec_numpy.kernels._prelude import (
    log_softmax_along,
    softmax_along,
    stable_sigmoid,
    stable_softplus,
)


# Means of float arrays are written np.add.reduce(v, axis=None) / v.size: the same number
# np.mean computes (it is that sum and that division), without np.mean's Python-level
# wrapper, which costs more than the whole loss on a small batch.
@kernel("mse")
def mse(pred, t):
    return np.add.reduce((pred - t) ** 2, axis=None) / pred.size


@vjp("mse", reads=("pred", "t"), input_shaped=True)
def mse_vjp(g, y, pred, t):
    # dL/dpred = 2 g (pred - t) / n
    return 2 * g * (pred - t) / pred.size, None


@kernel("bce")
def bce(p, t):
    # torch's clamp: each log is at least -100, so p = 0 or 1 gives a finite loss, not NaN.
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(p), -100.0)
        log_q = np.maximum(np.log1p(-p), -100.0)
    v = t * log_p + (1 - t) * log_q
    return -(np.add.reduce(v, axis=None) / v.size)


@vjp("bce", reads=("p", "t"), input_shaped=True)
def bce_vjp(g, y, p, t):
    # dL/dp = g * (p - t) / max(p (1 - p), 1e-12) / n  (torch's guard where p is 0 or 1)
    # The guard is torch's: 1e-12 rounded to float32, so saturated gradients agree too.
    return g * (p - t) / np.maximum(p * (1 - p), np.float32(1e-12)) / p.size, None


@kernel("bce_with_logits")
def bce_with_logits(z, t):
    v = stable_softplus(z) - t * z
    return np.add.reduce(v, axis=None) / v.size


@vjp("bce_with_logits", reads=("z", "t"), input_shaped=True)
def bce_with_logits_vjp(g, y, z, t):
    # dL/dz = g * (sigmoid(z) - t) / n
    return g * (stable_sigmoid(z) - t) / z.size, None


@kernel("cross_entropy")
def cross_entropy(z, t):
    log_p = log_softmax_along(z, -1)
    rows = z.size // z.shape[-1]
    if t.shape == z.shape:  # one-hot rows or class probabilities
        return -np.sum(t * log_p) / rows
    idx = t.reshape(z.shape[:-1] + (1,)).astype(np.intp)
    return -np.sum(np.take_along_axis(log_p, idx, -1)) / rows


@vjp("cross_entropy", reads=("z", "t"), input_shaped=True)
def cross_entropy_vjp(g, y, z, t):
    # dL/dz = g * (softmax(z) * sum(t) - t) / rows  (t one-hot for integer targets)
    rows = z.size // z.shape[-1]
    if t.shape != z.shape:
        idx = t.reshape(z.shape[:-1] + (1,))
        t = (np.arange(z.shape[-1]) == idx).astype(z.dtype)
    return g * (softmax_along(z, -1) * np.sum(t, -1, keepdims=True) - t) / rows, None


@kernel("nll")
def nll(log_p, t):
    idx = t.reshape(log_p.shape[:-1] + (1,)).astype(np.intp)
    return -np.sum(np.take_along_axis(log_p, idx, -1)) / (log_p.size // log_p.shape[-1])


@vjp("nll", reads=("log_p", "t"), input_shaped=True)
def nll_vjp(g, y, log_p, t):
    # dL/dlog_p = -g * onehot(t) / rows
    onehot = np.arange(log_p.shape[-1]) == t.reshape(log_p.shape[:-1] + (1,))
    return -g * onehot.astype(log_p.dtype) / (log_p.size // log_p.shape[-1]), None


@kernel("l1_penalty")
def l1_penalty(*params):
    return sum(np.sum(np.abs(p)) for p in params)


@vjp("l1_penalty", reads=("params",), input_shaped=True)
def l1_penalty_vjp(g, y, *params):
    # dL/dp = g * sign(p)  (the subgradient 0 at p = 0)
    return tuple(g * np.sign(p) for p in params)


@kernel("l2_penalty")
def l2_penalty(*params):
    return 0.5 * sum(np.vdot(p, p) for p in params)


@vjp("l2_penalty", reads=("params",), input_shaped=True)
def l2_penalty_vjp(g, y, *params):
    # dL/dp = g * p
    return tuple(g * p for p in params)


@kernel("kl_normal")
def kl_normal(mu, log_var, prior_mu=None, prior_log_var=None):
    rows = mu.size // mu.shape[-1]
    if prior_mu is None:
        kl = mu * mu + np.exp(log_var) - 1 - log_var
    else:
        d = mu - prior_mu
        kl = prior_log_var - log_var + (np.exp(log_var) + d * d) * np.exp(-prior_log_var) - 1
    return 0.5 * np.sum(kl) / rows


@vjp("kl_normal", reads=("mu", "log_var", "prior_mu", "prior_log_var"))
def kl_normal_vjp(g, y, mu, log_var, prior_mu=None, prior_log_var=None):
    # dL/dmu = c (mu - mu_p) / v_p ; dL/dlv = c (exp(lv) / v_p - 1) / 2 ; c = g / rows
    c = g / (mu.size // mu.shape[-1])
    if prior_mu is None:
        return c * mu, 0.5 * c * (np.exp(log_var) - 1)
    inv_vp = np.exp(-prior_log_var)
    d = mu - prior_mu
    g_mu = c * d * inv_vp
    g_lv = 0.5 * c * (np.exp(log_var) * inv_vp - 1)
    # dL/dmu_p = -dL/dmu ; dL/dlv_p = c (1 - (exp(lv) + (mu - mu_p)^2) / v_p) / 2
    g_plv = 0.5 * c * (1 - (np.exp(log_var) + d * d) * inv_vp)
    return g_mu, g_lv, -g_mu, g_plv
