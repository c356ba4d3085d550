"""Kernels for graphspec.ops.normalization (features on the last axis)."""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp


@kernel("batch_norm")
def batch_norm(x, gamma, beta, running_mean, running_var, *, momentum, eps, training):
    if not training:
        y = (x - running_mean) / np.sqrt(running_var + eps) * gamma + beta
        return y, (running_mean, running_var)
    axes = tuple(range(x.ndim - 1))
    n = x.size // x.shape[-1]
    if n < 2:
        raise ValueError("batch_norm in training needs more than one value per feature")
    mean = np.mean(x, axis=axes)
    var = np.var(x, axis=axes)
    y = (x - mean) / np.sqrt(var + eps) * gamma + beta
    # torch's rule: the running variance moves towards the unbiased batch variance.
    new_mean = (1 - momentum) * running_mean + momentum * mean
    new_var = (1 - momentum) * running_var + momentum * var * (n / (n - 1))
    return y, (new_mean, new_var)


@vjp("batch_norm")
def batch_norm_vjp(g, y, x, gamma, beta, running_mean, running_var, *, momentum, eps, training):
    # dL/dx = gamma/s * (g - mean(g) - xhat * mean(g * xhat)) (training; eval: g * gamma/s)
    axes = tuple(range(x.ndim - 1))
    if training:
        mean = np.mean(x, axis=axes)
        inv = 1 / np.sqrt(np.var(x, axis=axes) + eps)
    else:
        mean = running_mean
        inv = 1 / np.sqrt(running_var + eps)
    xhat = (x - mean) * inv
    gxhat = g * gamma
    if training:
        # The batch statistics depend on x too: project out their directions.
        gx = inv * (gxhat - np.mean(gxhat, axis=axes) - xhat * np.mean(gxhat * xhat, axis=axes))
    else:
        gx = gxhat * inv
    # dL/dgamma = sum(g * xhat) ; dL/dbeta = sum(g) ; running statistics take no gradient
    return gx, np.sum(g * xhat, axis=axes), np.sum(g, axis=axes), None, None


@kernel("layer_norm")
def layer_norm(x, gamma, beta, *, eps):
    mean = np.mean(x, axis=-1, keepdims=True)
    var = np.var(x, axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


@vjp("layer_norm")
def layer_norm_vjp(g, y, x, gamma, beta, *, eps):
    # dL/dx = gamma/s * (g - mean(g) - xhat * mean(g * xhat)) per row, with g scaled by gamma
    mean = np.mean(x, axis=-1, keepdims=True)
    inv = 1 / np.sqrt(np.var(x, axis=-1, keepdims=True) + eps)
    xhat = (x - mean) * inv
    gxhat = g * gamma
    gx = inv * (
        gxhat
        - np.mean(gxhat, axis=-1, keepdims=True)
        - xhat * np.mean(gxhat * xhat, axis=-1, keepdims=True)
    )
    lead = tuple(range(x.ndim - 1))
    # dL/dgamma = sum over rows of g * xhat ; dL/dbeta = sum over rows of g
    return gx, np.sum(g * xhat, axis=lead), np.sum(g, axis=lead)


@kernel("dropout")
def dropout(x, *, p, training, noise):
    if not training:
        return x
    return x * (noise >= p) / (1 - p)


@vjp("dropout")
def dropout_vjp(g, y, x, *, p, training, noise):
    # dL/dx = g * [noise >= p] / (1 - p)  (training; g in evaluation)
    if not training:
        return (g,)
    return (g * (noise >= p) / (1 - p),)
