"""Kernels for graphspec.ops.stochastic.

A REINFORCE sample's VJP returns zeros, not None: the parameters are declared
differentiable (straight-through needs them), and the score-function gradient reaches them
through the surrogate's ``log_prob`` that the compiler adds.
"""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp
from graphspec_numpy.kernels._prelude import (
    log_softmax_along,
    normal_log_sigma,
    stable_sigmoid,
    stable_softplus,
)


@kernel("gaussian_sample")
def gaussian_sample(mu, scale, *, parameterization, estimator, noise):
    if parameterization == "log_sigma":
        sigma = np.exp(scale)
    elif parameterization == "log_var":
        sigma = np.exp(0.5 * scale)
    else:
        sigma = scale
    return mu + noise * sigma


@vjp("gaussian_sample", reads=("scale",))
def gaussian_sample_vjp(g, z, mu, scale, *, parameterization, estimator, noise):
    # z = mu + eps σ: dL/dmu = g ; dL/dσ = g eps (σ' = σ for log σ, σ/2 for log σ²)
    if estimator == "reinforce":
        return np.zeros_like(g), np.zeros_like(g)
    if parameterization == "log_sigma":
        gs = g * noise * np.exp(scale)
    elif parameterization == "log_var":
        gs = g * noise * (0.5 * np.exp(0.5 * scale))
    else:
        gs = g * noise
    return g, gs


@kernel("bernoulli_sample")
def bernoulli_sample(p, *, logits, estimator, noise):
    prob = stable_sigmoid(p) if logits else p
    return (noise < prob).astype(p.dtype)


@vjp("bernoulli_sample", reads=("p",))
def bernoulli_sample_vjp(g, z, p, *, logits, estimator, noise):
    # straight-through: dz/dP = 1 (dP/dp = P (1 - P) for a logit) ; reinforce: no pathwise term
    if estimator == "reinforce":
        return (np.zeros_like(g),)
    if logits:
        prob = stable_sigmoid(p)
        return (g * prob * (1 - prob),)
    return (g,)


@kernel("categorical_sample")
def categorical_sample(logits, *, estimator, noise):
    idx = np.argmax(logits - np.log(-np.log(noise)), axis=-1)
    return (np.arange(logits.shape[-1]) == idx[..., None]).astype(logits.dtype)


@vjp("categorical_sample", reads=("logits",))
def categorical_sample_vjp(g, z, logits, *, estimator, noise):
    # straight-through (z ~ a = softmax(logits)): dL/dlogits = a (g - <g, a>) ; reinforce: none
    if estimator == "reinforce":
        return (np.zeros_like(g),)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    a = e / e.sum(axis=-1, keepdims=True)
    return (a * (g - (g * a).sum(axis=-1, keepdims=True)),)


@kernel("log_prob")
def log_prob(z, theta, scale=None, *, dist, parameterization, logits):
    if dist == "normal":
        log_sigma = normal_log_sigma(scale, parameterization)
        r = (z - theta) * np.exp(-log_sigma)
        lp = -0.5 * r * r - log_sigma - 0.9189385332046727  # log(2π) / 2
    elif dist == "bernoulli":
        if logits:
            lp = z * theta - stable_softplus(theta)
        else:
            lp = z * np.log(theta) + (1 - z) * np.log1p(-theta)
    else:
        lp = z * log_softmax_along(theta, -1)
    return lp.sum(axis=-1)


@vjp("log_prob", reads=("z", "theta", "scale"))
def log_prob_vjp(g, y, z, theta, scale=None, *, dist, parameterization, logits):
    # normal: dmu = g r/σ, dlogσ = g (r² - 1) ; bernoulli: dp = g (z/p - (1-z)/(1-p)) ;
    # logits: dθ = g (z - sigmoid θ) ; categorical: dθ = g (z - softmax(θ) sum(z))
    g = g[..., None]  # the event sum spreads each cotangent over the last axis
    if dist == "normal":
        log_sigma = normal_log_sigma(scale, parameterization)
        inv_sigma = np.exp(-log_sigma)
        r = (z - theta) * inv_sigma
        g_log_sigma = g * (r * r - 1)
        if parameterization == "log_var":
            g_scale = 0.5 * g_log_sigma
        elif parameterization == "sigma":
            g_scale = g_log_sigma / scale
        else:
            g_scale = g_log_sigma
        return None, g * r * inv_sigma, g_scale
    if dist == "bernoulli":
        if logits:
            return None, g * (z - stable_sigmoid(theta))
        return None, g * (z / theta - (1 - z) / (1 - theta))
    e = np.exp(theta - theta.max(axis=-1, keepdims=True))
    a = e / e.sum(axis=-1, keepdims=True)
    return None, g * (z - a * z.sum(axis=-1, keepdims=True))


@kernel("leave_one_out_mean")
def leave_one_out_mean(x, *, axis):
    n = x.shape[axis]
    if n < 2:
        return np.zeros_like(x)
    return (x.sum(axis=axis, keepdims=True) - x) / (n - 1)


@vjp("leave_one_out_mean", reads=("x",))
def leave_one_out_mean_vjp(g, y, x, *, axis):
    # the map is symmetric: dL/dx_i = (sum_j g_j - g_i) / (n - 1)
    n = x.shape[axis]
    if n < 2:
        return (np.zeros_like(g),)
    return ((g.sum(axis=axis, keepdims=True) - g) / (n - 1),)
