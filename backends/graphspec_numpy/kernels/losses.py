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


# ---- cross_entropy and nll: the class-axis options, as torch's F.cross_entropy --------------
# With integer targets, a position n of target class t_n weighs w_n = class_weights[t_n] (1
# without weights; 0 where t_n is ignore_index) and the loss is
#   sum_n [(1 - e) w_n (-log p[n, t_n]) + e/C sum_c class_weights[c] (-log p[n, c])] / d,
# d = sum_n w_n for the mean, 1 for the sum. With probability targets q, it is
# -sum(q' * class_weights * log p) / d, q' = (1 - e) q + e/C and d = the number of positions.
# Either is -sum(Q * log p) / d for a target matrix Q (_class_target_matrix), which the VJPs
# use. Every option at its default leaves today's arithmetic as it was.


def _classes_last(x, axis):
    """``x`` with its class axis moved last (a view; ``x`` itself when it is last already)."""
    ax = axis % x.ndim
    return x if ax == x.ndim - 1 else np.moveaxis(x, ax, -1)


def _classes_back(g, axis):
    """The inverse of _classes_last: the class axis of ``g`` moved from last to ``axis``."""
    ax = axis % g.ndim
    return g if ax == g.ndim - 1 else np.moveaxis(g, -1, ax)


def _class_weights(class_weights, dtype):
    return None if class_weights is None else np.asarray(class_weights, dtype=dtype)


def _target_indices(log_p, t, ignore_index):
    """(``[..., 1]`` class indices into log_p's last axis, 0 at ignored positions; where the
    targets count, None when every one does)."""
    idx = t.reshape(log_p.shape[:-1] + (1,)).astype(np.intp)
    if ignore_index is None:
        return idx, None
    keep = idx != ignore_index
    return np.where(keep, idx, 0), keep


def _position_weights(idx, keep, w, dtype):
    """Each position's weight: its target class's weight (1 without class_weights), 0 where
    ignored; None when every one is 1."""
    if w is None and keep is None:
        return None
    wt = np.ones(idx.shape, dtype) if w is None else w[idx]
    return wt if keep is None else wt * keep


def _smoothed(t, label_smoothing, n_classes):
    return t * (1 - label_smoothing) + label_smoothing / n_classes if label_smoothing else t


def _class_loss(log_p, t, probs, class_weights, ignore_index, label_smoothing, reduction):
    """The loss from log-probabilities with the classes last; ``probs``: t holds
    probability rows of log_p's shape, else class indices."""
    n = log_p.shape[-1]
    w = _class_weights(class_weights, log_p.dtype)
    if probs:
        q = _smoothed(t, label_smoothing, n)
        total = -np.sum(q * log_p if w is None else q * w * log_p)
        count = log_p.size // n
    else:
        idx, keep = _target_indices(log_p, t, ignore_index)
        wt = _position_weights(idx, keep, w, log_p.dtype)
        picked = np.take_along_axis(log_p, idx, -1)
        total = -np.sum(picked if wt is None else wt * picked)
        count = log_p.size // n if wt is None else np.sum(wt)
        if label_smoothing:
            spread = np.sum(log_p if w is None else log_p * w, -1, keepdims=True)
            spread = spread if keep is None else spread * keep
            total = (1 - label_smoothing) * total - label_smoothing / n * np.sum(spread)
    return total / count if reduction == "mean" else total


def _class_target_matrix(log_p, t, probs, class_weights, ignore_index, label_smoothing,
                         reduction):
    """(Q, d) with the loss ``-sum(Q * log_p) / d`` (see above); log_p's classes last."""
    n = log_p.shape[-1]
    w = _class_weights(class_weights, log_p.dtype)
    if probs:
        q = _smoothed(t, label_smoothing, n)
        big_q, count = (q if w is None else q * w), log_p.size // n
    else:
        idx, keep = _target_indices(log_p, t, ignore_index)
        wt = _position_weights(idx, keep, w, log_p.dtype)
        big_q = (np.arange(n) == idx).astype(log_p.dtype)
        if wt is not None or label_smoothing:
            big_q *= (1 - label_smoothing) * (1 if wt is None else wt)
        if label_smoothing:
            spread = np.ones(n, log_p.dtype) if w is None else w
            big_q += label_smoothing / n * (spread if keep is None else spread * keep)
        count = log_p.size // n if wt is None else np.sum(wt)
    return big_q, (count if reduction == "mean" else 1)


@kernel("cross_entropy")
def cross_entropy(z, t, *, class_weights=None, ignore_index=None, label_smoothing=0.0, axis=-1,
                  reduction="mean"):
    probs = t.shape == z.shape  # one-hot rows or class probabilities
    z = _classes_last(z, axis)
    t = _classes_last(t, axis) if probs else t
    return _class_loss(log_softmax_along(z, -1), t, probs, class_weights, ignore_index,
                       label_smoothing, reduction)


@vjp("cross_entropy", reads=("z", "t"), input_shaped=True)
def cross_entropy_vjp(g, y, z, t, *, class_weights=None, ignore_index=None, label_smoothing=0.0,
                      axis=-1, reduction="mean"):
    # dL/dz = g * (softmax(z) * sum_c(Q) - Q) / d
    probs = t.shape == z.shape
    z = _classes_last(z, axis)
    t = _classes_last(t, axis) if probs else t
    big_q, count = _class_target_matrix(z, t, probs, class_weights, ignore_index,
                                        label_smoothing, reduction)
    gz = g * (softmax_along(z, -1) * np.sum(big_q, -1, keepdims=True) - big_q) / count
    return _classes_back(gz, axis), None


@kernel("nll")
def nll(log_p, t, *, class_weights=None, ignore_index=None, label_smoothing=0.0, axis=-1,
        reduction="mean"):
    return _class_loss(_classes_last(log_p, axis), t, False, class_weights, ignore_index,
                       label_smoothing, reduction)


@vjp("nll", reads=("log_p", "t"), input_shaped=True)
def nll_vjp(g, y, log_p, t, *, class_weights=None, ignore_index=None, label_smoothing=0.0,
            axis=-1, reduction="mean"):
    # dL/dlog_p = -g * Q / d
    big_q, count = _class_target_matrix(_classes_last(log_p, axis), t, False, class_weights,
                                        ignore_index, label_smoothing, reduction)
    return _classes_back(-g * big_q / count, axis), None


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
