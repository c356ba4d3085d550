"""Kernels for graphspec.ops.normalization (batch_norm: features on ``axis``; layer_norm:
the trailing ``axes``)."""

import torch
import torch.nn.functional as F

from graphspec_torch.kernels import kernel


@kernel("batch_norm")
def batch_norm(x, gamma, beta, running_mean, running_var, *, momentum, eps, axis=-1, training,
               group=None):
    axis %= x.dim()
    if training and group is not None:  # data-parallel training: statistics over all ranks
        # (features last there: move them, and the result back)
        y, new = synced_batch_norm(
            x.movedim(axis, -1), gamma, beta, running_mean, running_var, momentum, eps, group
        )
        return y.movedim(-1, axis), new
    # F.batch_norm wants features on axis 1 and updates the running statistics in place:
    # move the feature axis there, and hand it copies so the caller's buffers stay as they
    # were.
    xt = x if axis == 1 else x.movedim(axis, 1)
    new_mean, new_var = running_mean.clone(), running_var.clone()
    y = F.batch_norm(xt, new_mean, new_var, gamma, beta, training, momentum, eps)
    return (y if axis == 1 else y.movedim(1, axis)), (new_mean, new_var)


def synced_batch_norm(x, gamma, beta, running_mean, running_var, momentum, eps, group):
    """Batch norm in training with the statistics of the global batch: every rank's rows
    (SyncBatchNorm semantics), so N processes normalize as one process would.

    Two all-reduces of (1 + features) and (features) numbers: the count and the sum give the
    mean, then the sum of squared deviations from it gives the variance (two passes, as
    accurate as the one-process variance; one pass of sum and sum of squares would cancel
    badly when the mean is large against the spread).  torch's functional all-reduce is
    differentiable: its backward all-reduces the gradients, so each rank's rows receive the
    gradient of every rank's loss through the shared statistics.
    A rank with no rows (a batch smaller than the number of ranks) contributes zeros."""
    from torch.distributed import _functional_collectives as funcol

    def summed(t):  # over ranks; differentiable (its backward sums the gradients)
        return funcol.wait_tensor(funcol.all_reduce(t, "sum", group))

    axes = tuple(range(x.dim() - 1))
    rows = x.new_full((1,), float(x.numel() // max(x.shape[-1], 1)))
    total = summed(torch.cat([rows, x.sum(axes)]))
    n = total[0]
    mean = total[1:] / n
    centered = x - mean
    var = summed(centered.square().sum(axes)) / n
    y = centered / torch.sqrt(var + eps) * gamma + beta
    with torch.no_grad():  # the running update uses the unbiased variance, as F.batch_norm
        new_mean = (1 - momentum) * running_mean + momentum * mean
        new_var = (1 - momentum) * running_var + momentum * var * (n / (n - 1))
    return y, (new_mean, new_var)


@kernel("layer_norm")
def layer_norm(x, gamma, beta, *, eps, axes=(-1,)):
    # the axes are the trailing ones (checked at build), as torch's normalized_shape
    return F.layer_norm(x, x.shape[x.dim() - len(axes) :], gamma, beta, eps)


@kernel("dropout")
def dropout(x, *, p, training, noise=None):
    if not training:
        return x
    if noise is None:  # training without injected noise: draw on the tensor's device
        noise = torch.rand_like(x)
    return x * (noise >= p).to(x.dtype) / (1 - p)
