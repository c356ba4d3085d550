"""Kernels for graphspec.ops.metrics."""

import torch

from graphspec_torch.kernels import kernel


@kernel("binary_accuracy")
def binary_accuracy(z, t, *, threshold):
    return ((z > threshold) == (t > 0.5)).to(z.dtype).mean()


@kernel("accuracy")
def accuracy(z, t):
    pred = z.argmax(dim=-1)
    if t.shape == z.shape:
        t = t.argmax(dim=-1)
    elif t.dim() == z.dim():
        t = t[..., 0]
    return (pred == t.to(pred.dtype)).to(z.dtype).mean()
