"""Kernels for graphspec.ops.normalization (batch_norm: features on ``axis``; layer_norm:
the trailing ``axes``)."""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp


def _feature_view(v, ndim, axis):
    """A per-feature vector [features] shaped to broadcast along ``axis`` of a rank-``ndim``
    tensor (unchanged for the last axis, where it broadcasts as it is)."""
    axis %= ndim
    return v if axis == ndim - 1 else v.reshape((-1,) + (1,) * (ndim - 1 - axis))


def _other_axes(ndim, axis):
    """Every axis but the feature axis: the ones batch statistics run over."""
    axis %= ndim
    return tuple(a for a in range(ndim) if a != axis)


@kernel("batch_norm", residuals=True)
def batch_norm(
    x, gamma, beta, running_mean, running_var, *, momentum, eps, axis=-1, training, save=False
):
    # Residuals: the normalized input and 1/s, which the VJP would otherwise recompute.
    def per_feature(v):
        return _feature_view(v, x.ndim, axis)

    if not training:
        sd = np.sqrt(running_var + eps)
        xhat = (x - per_feature(running_mean)) / per_feature(sd)
        out = xhat * per_feature(gamma) + per_feature(beta), (running_mean, running_var)
        return (out, (xhat, per_feature(1 / sd))) if save else out
    axes = _other_axes(x.ndim, axis)
    n = x.size // x.shape[axis]
    if n < 2:
        raise ValueError("batch_norm in training needs more than one value per feature")
    mean = np.mean(x, axis=axes)
    var = np.var(x, axis=axes)
    sd = np.sqrt(var + eps)
    xhat = (x - per_feature(mean)) / per_feature(sd)
    # torch's rule: the running variance moves towards the unbiased batch variance.
    new_mean = (1 - momentum) * running_mean + momentum * mean
    new_var = (1 - momentum) * running_var + momentum * var * (n / (n - 1))
    out = xhat * per_feature(gamma) + per_feature(beta), (new_mean, new_var)
    return (out, (xhat, per_feature(1 / sd))) if save else out


@vjp("batch_norm", reads=("gamma", "res"), input_shaped=True)
def batch_norm_vjp(
    g, y, x, gamma, beta, running_mean, running_var, *, momentum, eps, axis=-1, training, res
):
    # dL/dx = gamma/s * (g - mean(g) - xhat * mean(g * xhat)) (training; eval: g * gamma/s)
    xhat, inv = res
    axes = _other_axes(xhat.ndim, axis)
    gxhat = g * _feature_view(gamma, xhat.ndim, axis)
    if training:
        # The batch statistics depend on x too: project out their directions.
        gx = inv * (
            gxhat
            - np.mean(gxhat, axis=axes, keepdims=True)
            - xhat * np.mean(gxhat * xhat, axis=axes, keepdims=True)
        )
    else:
        gx = gxhat * inv
    # dL/dgamma = sum(g * xhat) ; dL/dbeta = sum(g) ; running statistics take no gradient
    return gx, np.sum(g * xhat, axis=axes), np.sum(g, axis=axes), None, None


@kernel("layer_norm", residuals=True)
def layer_norm(x, gamma, beta, *, eps, axes=(-1,), save=False):
    # Residuals: the normalized input and 1/s per normalized slice.
    norm = tuple(range(x.ndim - len(axes), x.ndim))  # the trailing axes (checked at build)
    mean = np.mean(x, axis=norm, keepdims=True)
    sd = np.sqrt(np.var(x, axis=norm, keepdims=True) + eps)
    xhat = (x - mean) / sd
    y = xhat * gamma + beta
    return (y, (xhat, 1 / sd)) if save else y


@vjp("layer_norm", reads=("gamma", "res"), input_shaped=True)
def layer_norm_vjp(g, y, x, gamma, beta, *, eps, axes=(-1,), res):
    # dL/dx = gamma/s * (g - mean(g) - xhat * mean(g * xhat)) per slice, g scaled by gamma
    xhat, inv = res
    norm = tuple(range(xhat.ndim - len(axes), xhat.ndim))
    gxhat = g * gamma
    gx = inv * (
        gxhat
        - np.mean(gxhat, axis=norm, keepdims=True)
        - xhat * np.mean(gxhat * xhat, axis=norm, keepdims=True)
    )
    lead = tuple(range(xhat.ndim - len(axes)))
    # dL/dgamma = sum over slices of g * xhat ; dL/dbeta = sum over slices of g
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
