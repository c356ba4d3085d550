"""Kernels for graphspec.ops.layers."""

import torch
import torch.nn.functional as F

from graphspec_torch.kernels import kernel


@kernel("linear")
def linear(x, weight, bias=None):
    # weight is [in, units] (graphspec's layout); F.linear wants [units, in].
    return F.linear(x, weight.t(), bias)
