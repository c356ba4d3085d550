"""Kernels for graphspec.ops.metrics (no VJPs: metrics are never differentiated)."""

import numpy as np

from graphspec_numpy.kernels import kernel


@kernel("binary_accuracy")
def binary_accuracy(z, t, *, threshold):
    return np.mean((z > threshold) == (t.reshape(z.shape) > 0.5))


@kernel("accuracy")
def accuracy(z, t, *, axis=-1, ignore_index=None):
    if z.shape[axis] == 1:  # a single logit per position: a binary classifier
        right = (z > 0) == (t.reshape(z.shape) > 0.5)
        labels = t.reshape(z.shape)
    else:
        pred = np.argmax(z, axis=axis)
        if t.shape == z.shape:  # one-hot or probability rows
            t = np.argmax(t, axis=axis)
        labels = t.reshape(pred.shape)
        right = pred == labels
    if ignore_index is None:
        return np.mean(right)
    counted = labels != ignore_index
    return np.sum(right & counted) / np.sum(counted)  # nan when no position counts, as the loss
