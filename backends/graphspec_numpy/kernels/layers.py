"""Kernels for graphspec.ops.layers."""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp
from graphspec_numpy.kernels._prelude import stable_sigmoid


@kernel("linear")
def linear(x, weight, bias=None):
    y = x @ weight
    if bias is not None:
        y += bias
    return y


@vjp("linear")
def linear_vjp(g, y, x, weight, bias=None):
    # dL/dx = g W^T ; dL/dW = x^T g (summed over leading axes) ; dL/db = sum(g)
    gx = g @ weight.T
    x2 = x.reshape(-1, x.shape[-1])
    g2 = g.reshape(-1, g.shape[-1])
    gw = x2.T @ g2
    if bias is None:
        return gx, gw
    return gx, gw, g2.sum(axis=0)
