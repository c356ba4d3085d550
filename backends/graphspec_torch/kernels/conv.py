"""Kernels for graphspec.ops.conv (torch's padding semantics: 'valid' and 'same' pass through)."""

import torch.nn.functional as F

from graphspec_torch.kernels import kernel


@kernel("conv2d")
def conv2d(x, weight, bias=None, *, stride, padding, dilation, groups):
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


@kernel("conv1d")
def conv1d(x, weight, bias=None, *, stride, padding, dilation, groups):
    return F.conv1d(x, weight, bias, stride, padding, dilation, groups)


@kernel("conv_transpose2d")
def conv_transpose2d(x, weight, bias=None, *, stride, padding, output_padding, dilation, groups):
    return F.conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation)
