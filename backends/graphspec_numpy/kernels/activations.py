"""Kernels for graphspec.ops.activations."""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp
from graphspec_numpy.kernels._prelude import (
    erfc,
    log_softmax_along,
    softmax_along,
    stable_sigmoid,
    stable_softplus,
)


@kernel("identity")
def identity(x):
    return x


@vjp("identity", reads=())
def identity_vjp(g, y, x):
    # dL/dx = g
    return (g,)


# step has no VJP: its input is declared non-differentiable, so the driver never asks.
@kernel("step")
def step(x):
    return (x > 0).astype(x.dtype)


@kernel("sigmoid")
def sigmoid(x):
    return stable_sigmoid(x)


@vjp("sigmoid", reads=("y",), fresh=True, in_place=True)
def sigmoid_vjp(g, y, x, *, own=False):
    # dL/dx = g * y * (1 - y)  (owned: the same two products, into g)
    if own:
        g *= y
        g *= 1 - y
        return (g,)
    return (g * y * (1 - y),)


@kernel("tanh", fresh=True, in_place=True)
def tanh(x, *, own=False):
    return np.tanh(x, out=x if own else None)


@vjp("tanh", reads=("y",), fresh=True, in_place=True)
def tanh_vjp(g, y, x, *, own=False):
    # dL/dx = g * (1 - y^2)  (owned: the same product, into g)
    if own:
        g *= 1 - y * y
        return (g,)
    return (g * (1 - y * y),)


@kernel("relu", fresh=True, in_place=True)
def relu(x, *, own=False):
    return np.maximum(x, 0, out=x if own else None)


@vjp("relu", reads=("y",), fresh=True, in_place=True)
def relu_vjp(g, y, x, *, own=False):
    # dL/dx = g * [y > 0]  (y > 0 exactly where x > 0: the input need not be kept)
    if own:
        g *= y > 0
        return (g,)
    return (g * (y > 0),)


@kernel("leaky_relu")
def leaky_relu(x, *, slope):
    return np.where(x > 0, x, slope * x)


@vjp("leaky_relu", reads=("x",))
def leaky_relu_vjp(g, y, x, *, slope):
    # dL/dx = g * (1 if x > 0 else slope)
    return (np.where(x > 0, g, slope * g),)


@kernel("softplus")
def softplus(x, *, beta, threshold):
    bx = beta * x
    return np.where(bx > threshold, x, stable_softplus(bx) / beta)


@vjp("softplus", reads=("x",))
def softplus_vjp(g, y, x, *, beta, threshold):
    # dL/dx = g * sigmoid(beta x)  (g above the threshold, where y = x)
    bx = beta * x
    return (np.where(bx > threshold, g, g * stable_sigmoid(bx)),)


@kernel("elu")
def elu(x, *, alpha):
    # expm1 of min(x, 0) only: exp of a large positive x would overflow in the unused branch.
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


@vjp("elu", reads=("x",))
def elu_vjp(g, y, x, *, alpha):
    # dL/dx = g * (1 if x > 0 else alpha * exp(x))
    return (np.where(x > 0, g, g * alpha * np.exp(np.minimum(x, 0))),)


@kernel("gelu")
def gelu(x, *, approximate):
    if approximate == "tanh":
        u = 0.7978845608028654 * (x + 0.044715 * x**3)  # sqrt(2 / pi) (x + 0.044715 x^3)
        return 0.5 * x * (1 + np.tanh(u))
    # Phi(x) = erfc(-x / sqrt 2) / 2 keeps its relative accuracy in the far negative tail.
    return 0.5 * x * erfc(-0.7071067811865476 * x)


@vjp("gelu", reads=("x",))
def gelu_vjp(g, y, x, *, approximate):
    if approximate == "tanh":
        # dL/dx = g * (0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx)
        u = 0.7978845608028654 * (x + 0.044715 * x**3)
        t = np.tanh(u)
        du = 0.7978845608028654 * (1 + 3 * 0.044715 * x * x)
        return (g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du),)
    # dL/dx = g * (Phi(x) + x phi(x)),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
    cdf = 0.5 * erfc(-0.7071067811865476 * x)
    pdf = 0.3989422804014327 * np.exp(-0.5 * x * x)
    return (g * (cdf + x * pdf),)


@kernel("silu", residuals=True)
def silu(x, *, save=False):
    # Residual: sigmoid(x), which the VJP needs and would otherwise recompute.
    s = stable_sigmoid(x)
    y = x * s
    return (y, s) if save else y


@vjp("silu", reads=("x", "res"), input_shaped=True)
def silu_vjp(g, y, x, *, res):
    # dL/dx = g * s * (1 + x * (1 - s)),  s = sigmoid(x)
    return (g * res * (1 + x * (1 - res)),)


@kernel("softmax")
def softmax(x, *, axis):
    return softmax_along(x, axis)


@vjp("softmax", reads=("y",))
def softmax_vjp(g, y, x, *, axis):
    # dL/dx = y * (g - sum(g * y))
    return (y * (g - np.sum(g * y, axis=axis, keepdims=True)),)


@kernel("log_softmax")
def log_softmax(x, *, axis):
    return log_softmax_along(x, axis)


@vjp("log_softmax", reads=("y",))
def log_softmax_vjp(g, y, x, *, axis):
    # dL/dx = g - exp(y) * sum(g)
    return (g - np.exp(y) * np.sum(g, axis=axis, keepdims=True),)
