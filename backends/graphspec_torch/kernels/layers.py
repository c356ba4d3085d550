"""Kernels for graphspec.ops.layers."""

import torch
import torch.nn.functional as F

from graphspec_torch.kernels import kernel


@kernel("linear")
def linear(x, weight, bias=None):
    # weight is [in, units] (graphspec's layout); F.linear wants [units, in].  A batch of
    # rows with a bias is the addmm F.linear runs for it, called directly: the same kernel
    # and gradients, bit for bit, without two transposes and their autograd nodes a step.
    if bias is not None and x.dim() == 2:
        return torch.addmm(bias, x, weight)
    return F.linear(x, weight.t(), bias)


@kernel("matmul")
def matmul(a, b):
    return torch.matmul(a, b)


@kernel("param")
def param(value):
    return value


@kernel("highway")
def highway(x, weight, bias, gate_weight, gate_bias, *, activation):
    a = x @ weight + bias
    if activation == "relu":
        h = torch.relu(a)
    elif activation == "tanh":
        h = torch.tanh(a)
    elif activation == "sigmoid":
        h = torch.sigmoid(a)
    else:
        h = a
    t = torch.sigmoid(x @ gate_weight + gate_bias)
    return t * h + (1 - t) * x
