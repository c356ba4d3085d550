"""Kernels for graphspec.ops.layers."""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp
from graphspec_numpy.kernels._prelude import activation_with_slope, stable_sigmoid, unbroadcast


@kernel("linear", fresh=True)
def linear(x, weight, bias=None):
    y = x @ weight
    if bias is not None:
        y += bias
    return y


@vjp("linear", reads=("x", "weight", "bias"), input_shaped=True, fresh=True)
def linear_vjp(g, y, x, weight, bias=None, *, needs=None):
    # dL/dx = g W^T ; dL/dW = x^T g (summed over leading axes) ; dL/db = sum(g)
    # `needs` skips what nobody reads: a first layer's g W^T is a third of its backward pass.
    gx = g @ weight.T if needs is None or needs[0] else None
    g2 = g.reshape(-1, g.shape[-1])
    gw = x.reshape(-1, x.shape[-1]).T @ g2 if needs is None or needs[1] else None
    if bias is None:
        return gx, gw
    return gx, gw, np.add.reduce(g2, axis=0) if needs is None or needs[2] else None


@kernel("matmul")
def matmul(a, b):
    return np.matmul(a, b)


@vjp("matmul", reads=("a", "b"), input_shaped=True)
def matmul_vjp(g, y, a, b, *, needs=None):
    # dL/da = g b^T ; dL/db = a^T g  (each summed over the batch axes it was broadcast along)
    # A vector operand is promoted to a matrix (a: a row, b: a column), as matmul does, and
    # the cotangent gets the axis the product dropped.
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = np.expand_dims(g2, -2 if b.ndim > 1 else 0)
    if b.ndim == 1:
        g2 = np.expand_dims(g2, -1)
    ga = gb = None
    if needs is None or needs[0]:
        ga = unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
    if needs is None or needs[1]:
        gb = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
    return ga, gb


@kernel("param")
def param(value):
    return value


@vjp("param", reads=())
def param_vjp(g, y, value):
    # dL/dvalue = g
    return (g,)


@kernel("highway", residuals=True)
def highway(x, weight, bias, gate_weight, gate_bias, *, activation, save=False):
    # Residuals: the transform h, its slope f'(a) and the gate t.
    h, slope = activation_with_slope(x @ weight + bias, activation)
    t = stable_sigmoid(x @ gate_weight + gate_bias)
    y = t * h + (1 - t) * x
    return (y, (h, slope, t)) if save else y


@vjp("highway", reads=("x", "weight", "gate_weight", "res"), input_shaped=True)
def highway_vjp(g, y, x, weight, bias, gate_weight, gate_bias, *, activation, res):
    # dL/dx = g (1 - t) + (g t f'(a)) W^T + (g (h - x) t (1 - t)) Wt^T ; dL/dW = x^T (g t f'(a))
    h, slope, t = res
    ga = g * t * slope  # cotangent of the pre-activation a = x W + b
    gz = g * (h - x) * t * (1 - t)  # cotangent of the gate's pre-activation
    gx = g * (1 - t) + ga @ weight.T + gz @ gate_weight.T
    x2 = x.reshape(-1, x.shape[-1])
    ga2 = ga.reshape(x2.shape)
    gz2 = gz.reshape(x2.shape)
    return gx, x2.T @ ga2, ga2.sum(axis=0), x2.T @ gz2, gz2.sum(axis=0)
