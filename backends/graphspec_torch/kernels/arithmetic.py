"""Kernels for graphspec.ops.arithmetic (torch broadcasting and autograd match NumPy's)."""

import torch

from graphspec_torch.kernels import kernel


@kernel("add")
def add(*xs):
    y = xs[0]
    for x in xs[1:]:
        y = y + x
    return y


@kernel("sub")
def sub(a, b):
    return a - b


@kernel("mul")
def mul(a, b):
    return a * b


@kernel("div")
def div(a, b):
    return a / b


@kernel("maximum")
def maximum(a, b):
    return torch.maximum(a, b)


@kernel("minimum")
def minimum(a, b):
    return torch.minimum(a, b)


@kernel("neg")
def neg(x):
    return -x


@kernel("exp")
def exp(x):
    return torch.exp(x)


@kernel("log")
def log(x, *, eps):
    return torch.log(torch.clamp(x, min=eps))


@kernel("square")
def square(x):
    return x * x


@kernel("sqrt")
def sqrt(x):
    return torch.sqrt(x)


@kernel("pow")
def pow_(x, *, exponent):
    return torch.pow(x, exponent)


@kernel("abs")
def abs_(x):
    return torch.abs(x)


@kernel("clip")
def clip(x, *, min, max):
    return torch.clamp(x, min=min, max=max)


@kernel("scale")
def scale(x, *, factor):
    return factor * x


@kernel("stop_gradient")
def stop_gradient(x):
    return x.detach()


@kernel("constant")
def constant(value):
    # A fresh tensor: the value is a buffer of the module and must never be aliased.
    return value.clone()
