"""Kernels for graphspec.ops.normalization (features on the last axis)."""

import torch
import torch.nn.functional as F

from graphspec_torch.kernels import kernel


@kernel("batch_norm")
def batch_norm(x, gamma, beta, running_mean, running_var, *, momentum, eps, training):
    # F.batch_norm wants features on axis 1 and updates the running statistics in place:
    # move the last axis there, and hand it copies so the caller's buffers stay as they were.
    xt = x if x.dim() == 2 else x.movedim(-1, 1)
    new_mean, new_var = running_mean.clone(), running_var.clone()
    y = F.batch_norm(xt, new_mean, new_var, gamma, beta, training, momentum, eps)
    return (y if x.dim() == 2 else y.movedim(1, -1)), (new_mean, new_var)


@kernel("layer_norm")
def layer_norm(x, gamma, beta, *, eps):
    return F.layer_norm(x, x.shape[-1:], gamma, beta, eps)


@kernel("dropout")
def dropout(x, *, p, training, noise=None):
    if not training:
        return x
    if noise is None:  # training without injected noise: draw on the tensor's device
        noise = torch.rand_like(x)
    return x * (noise >= p).to(x.dtype) / (1 - p)
