"""Kernels for graphspec.ops.pooling (channels-first: ``[batch, channels, *spatial]``)."""

import torch.nn.functional as F

from graphspec_torch.kernels import kernel


@kernel("max_pool2d")
def max_pool2d(x, *, kernel, stride, padding, ceil_mode):
    return F.max_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode)


@kernel("max_pool1d")
def max_pool1d(x, *, kernel, stride, padding, ceil_mode):
    return F.max_pool1d(x, kernel, stride, padding, ceil_mode=ceil_mode)


@kernel("avg_pool2d")
def avg_pool2d(x, *, kernel, stride, padding, ceil_mode, count_include_pad):
    return F.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad)


@kernel("avg_pool1d")
def avg_pool1d(x, *, kernel, stride, padding, ceil_mode, count_include_pad):
    return F.avg_pool1d(x, kernel, stride, padding, ceil_mode, count_include_pad)


@kernel("global_avg_pool")
def global_avg_pool(x):
    return x.mean(dim=tuple(range(2, x.dim())))


@kernel("global_max_pool")
def global_max_pool(x):
    return x.amax(dim=tuple(range(2, x.dim())))
