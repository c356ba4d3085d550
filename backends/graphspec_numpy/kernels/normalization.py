"""Kernels for graphspec.ops.normalization (features on the last axis)."""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp


@kernel("batch_norm", residuals=True)
def batch_norm(x, gamma, beta, running_mean, running_var, *, momentum, eps, training, save=False):
    # Residuals: the normalized input and 1/s, which the VJP would otherwise recompute.
    if not training:
        sd = np.sqrt(running_var + eps)
        xhat = (x - running_mean) / sd
        out = xhat * gamma + beta, (running_mean, running_var)
        return (out, (xhat, 1 / sd)) if save else out
    axes = tuple(range(x.ndim - 1))
    n = x.size // x.shape[-1]
    if n < 2:
        raise ValueError("batch_norm in training needs more than one value per feature")
    mean = np.mean(x, axis=axes)
    var = np.var(x, axis=axes)
    sd = np.sqrt(var + eps)
    xhat = (x - mean) / sd
    # torch's rule: the running variance moves towards the unbiased batch variance.
    new_mean = (1 - momentum) * running_mean + momentum * mean
    new_var = (1 - momentum) * running_var + momentum * var * (n / (n - 1))
    out = xhat * gamma + beta, (new_mean, new_var)
    return (out, (xhat, 1 / sd)) if save else out


@vjp("batch_norm", reads=("gamma", "res"), input_shaped=True)
def batch_norm_vjp(
    g, y, x, gamma, beta, running_mean, running_var, *, momentum, eps, training, res
):
    # dL/dx = gamma/s * (g - mean(g) - xhat * mean(g * xhat)) (training; eval: g * gamma/s)
    xhat, inv = res
    axes = tuple(range(xhat.ndim - 1))
    gxhat = g * gamma
    if training:
        # The batch statistics depend on x too: project out their directions.
        gx = inv * (gxhat - np.mean(gxhat, axis=axes) - xhat * np.mean(gxhat * xhat, axis=axes))
    else:
        gx = gxhat * inv
    # dL/dgamma = sum(g * xhat) ; dL/dbeta = sum(g) ; running statistics take no gradient
    return gx, np.sum(g * xhat, axis=axes), np.sum(g, axis=axes), None, None


@kernel("layer_norm", residuals=True)
def layer_norm(x, gamma, beta, *, eps, save=False):
    # Residuals: the normalized input and 1/s per row.
    mean = np.mean(x, axis=-1, keepdims=True)
    sd = np.sqrt(np.var(x, axis=-1, keepdims=True) + eps)
    xhat = (x - mean) / sd
    y = xhat * gamma + beta
    return (y, (xhat, 1 / sd)) if save else y


@vjp("layer_norm", reads=("gamma", "res"), input_shaped=True)
def layer_norm_vjp(g, y, x, gamma, beta, *, eps, res):
    # dL/dx = gamma/s * (g - mean(g) - xhat * mean(g * xhat)) per row, with g scaled by gamma
    xhat, inv = res
    gxhat = g * gamma
    gx = inv * (
        gxhat
        - np.mean(gxhat, axis=-1, keepdims=True)
        - xhat * np.mean(gxhat * xhat, axis=-1, keepdims=True)
    )
    lead = tuple(range(xhat.ndim - 1))
    # dL/dgamma = sum over rows of g * xhat ; dL/dbeta = sum over rows of g
    return gx, np.sum(g * xhat, axis=lead), np.sum(g, axis=lead)


@kernel("dropout")
def dropout(x, *, p, training, noise):
    if not training:
        return x
    return x * (noise >= p) / (1 - p)


@vjp("dropout", reads=())
def dropout_vjp(g, y, x, *, p, training, noise):
    # dL/dx = g * [noise >= p] / (1 - p)  (training; g in evaluation)
    if not training:
        return (g,)
    return (g * (noise >= p) / (1 - p),)
