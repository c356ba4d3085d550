"""Kernels for graphspec.ops.metrics."""

from graphspec_torch.kernels import kernel


@kernel("binary_accuracy")
def binary_accuracy(z, t, *, threshold):
    return ((z > threshold) == (t.reshape(z.shape) > 0.5)).to(z.dtype).mean()


@kernel("accuracy")
def accuracy(z, t):
    if z.shape[-1] == 1:  # a single logit per row: a binary classifier
        return ((z > 0) == (t.reshape(z.shape) > 0.5)).to(z.dtype).mean()
    pred = z.argmax(dim=-1)
    if t.shape == z.shape:  # one-hot or probability rows
        t = t.argmax(dim=-1)
    return (pred == t.reshape(pred.shape).to(pred.dtype)).to(z.dtype).mean()
