"""Kernels for graphspec.ops.metrics."""

from graphspec_torch.kernels import kernel


@kernel("binary_accuracy")
def binary_accuracy(z, t, *, threshold):
    return ((z > threshold) == (t.reshape(z.shape) > 0.5)).to(z.dtype).mean()


@kernel("accuracy")
def accuracy(z, t, *, axis=-1, ignore_index=None):
    if z.shape[axis] == 1:  # a single logit per position: a binary classifier
        labels = t.reshape(z.shape)
        right = (z > 0) == (labels > 0.5)
    else:
        pred = z.argmax(dim=axis)
        if t.shape == z.shape:  # one-hot or probability rows
            t = t.argmax(dim=axis)
        labels = t.reshape(pred.shape).to(pred.dtype)
        right = pred == labels
    if ignore_index is None:
        return right.to(z.dtype).mean()
    counted = labels != ignore_index
    return (right & counted).sum().to(z.dtype) / counted.sum().to(z.dtype)
