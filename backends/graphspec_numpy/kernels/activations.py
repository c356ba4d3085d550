"""Kernels for graphspec.ops.activations."""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp


@kernel("tanh")
def tanh(x):
    return np.tanh(x)


@vjp("tanh")
def tanh_vjp(g, y, x):
    # dL/dx = g * (1 - y^2)
    return (g * (1 - y * y),)
