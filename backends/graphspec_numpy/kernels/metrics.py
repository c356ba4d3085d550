"""Kernels for graphspec.ops.metrics (no VJPs: metrics are never differentiated)."""

import numpy as np

from graphspec_numpy.kernels import kernel


@kernel("binary_accuracy")
def binary_accuracy(z, t, *, threshold):
    return np.mean((z > threshold) == (t.reshape(z.shape) > 0.5))


@kernel("accuracy")
def accuracy(z, t):
    if z.shape[-1] == 1:  # a single logit per row: a binary classifier
        return np.mean((z > 0) == (t.reshape(z.shape) > 0.5))
    pred = np.argmax(z, axis=-1)
    if t.shape == z.shape:  # one-hot or probability rows
        t = np.argmax(t, axis=-1)
    return np.mean(pred == t.reshape(pred.shape))
