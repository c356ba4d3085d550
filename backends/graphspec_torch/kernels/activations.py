"""Kernels for graphspec.ops.activations."""

import torch
import torch.nn.functional as F

from graphspec_torch.kernels import kernel


@kernel("identity")
def identity(x):
    return x


@kernel("step")
def step(x):
    return (x > 0).to(x.dtype)


@kernel("sigmoid")
def sigmoid(x):
    return torch.sigmoid(x)


@kernel("tanh")
def tanh(x):
    return torch.tanh(x)


@kernel("relu")
def relu(x):
    return torch.relu(x)


@kernel("leaky_relu")
def leaky_relu(x, *, slope):
    return F.leaky_relu(x, slope)


@kernel("softplus")
def softplus(x, *, beta, threshold):
    return F.softplus(x, beta=beta, threshold=threshold)


@kernel("elu")
def elu(x, *, alpha):
    return F.elu(x, alpha=alpha)


@kernel("gelu")
def gelu(x, *, approximate):
    return F.gelu(x, approximate=approximate)


@kernel("silu")
def silu(x):
    return F.silu(x)


@kernel("softmax")
def softmax(x, *, axis):
    return torch.softmax(x, dim=axis)


@kernel("log_softmax")
def log_softmax(x, *, axis):
    return torch.log_softmax(x, dim=axis)
