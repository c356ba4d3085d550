"""Kernels for graphspec.ops.metrics (no VJPs: metrics are never differentiated)."""

import numpy as np

from graphspec_numpy.kernels import kernel


@kernel("binary_accuracy")
def binary_accuracy(z, t, *, threshold):
    return np.mean((z > threshold) == (t > 0.5))


@kernel("accuracy")
def accuracy(z, t):
    pred = np.argmax(z, axis=-1)
    if t.shape == z.shape:
        t = np.argmax(t, axis=-1)
    elif t.ndim == z.ndim:
        t = t[..., 0]
    return np.mean(pred == t)
