"""Kernels for graphspec.ops.activations."""

import torch

from graphspec_torch.kernels import kernel


@kernel("tanh")
def tanh(x):
    return torch.tanh(x)
