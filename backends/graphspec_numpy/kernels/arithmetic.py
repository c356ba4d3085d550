"""Kernels for graphspec.ops.arithmetic.

Binary VJPs return gradients in the broadcast output's shape; the driver sums them down.
Masks multiply ``g`` (not a float literal) so float32 programs stay float32.
"""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp


@kernel("add")
def add(*xs):
    y = xs[0] + xs[1] if len(xs) > 1 else xs[0].copy()
    for x in xs[2:]:
        y = y + x
    return y


@vjp("add", reads=("xs",))
def add_vjp(g, y, *xs):
    # dL/dx_i = g
    return tuple(g for _ in xs)


@kernel("sub")
def sub(a, b):
    return a - b


@vjp("sub", reads=())
def sub_vjp(g, y, a, b):
    # dL/da = g ; dL/db = -g
    return g, -g


@kernel("mul")
def mul(a, b):
    return a * b


@vjp("mul", reads=("a", "b"))
def mul_vjp(g, y, a, b):
    # dL/da = g * b ; dL/db = g * a
    return g * b, g * a


@kernel("div")
def div(a, b):
    return a / b


@vjp("div", reads=("y", "b"))
def div_vjp(g, y, a, b):
    # dL/da = g / b ; dL/db = -g * a / b^2 = -(dL/da) * y
    ga = g / b
    return ga, -ga * y


@kernel("maximum")
def maximum(a, b):
    return np.maximum(a, b)


@vjp("maximum", reads=("a", "b"))
def maximum_vjp(g, y, a, b):
    # dL/da = g [a > b] + g/2 [a == b] ; dL/db = g - dL/da
    ga = g * (a > b) + 0.5 * g * (a == b)
    return ga, g - ga


@kernel("minimum")
def minimum(a, b):
    return np.minimum(a, b)


@vjp("minimum", reads=("a", "b"))
def minimum_vjp(g, y, a, b):
    # dL/da = g [a < b] + g/2 [a == b] ; dL/db = g - dL/da
    ga = g * (a < b) + 0.5 * g * (a == b)
    return ga, g - ga


@kernel("neg")
def neg(x):
    return -x


@vjp("neg", reads=())
def neg_vjp(g, y, x):
    # dL/dx = -g
    return (-g,)


@kernel("exp")
def exp(x):
    return np.exp(x)


@vjp("exp", reads=("y",))
def exp_vjp(g, y, x):
    # dL/dx = g * e^x = g * y
    return (g * y,)


@kernel("log")
def log(x, *, eps):
    return np.log(np.maximum(x, eps))


@vjp("log", reads=("x",))
def log_vjp(g, y, x, *, eps):
    # dL/dx = g / x where x >= eps, else 0 (the clamp is flat there): chosen by np.where,
    # as torch's clamp does, not by multiplying with the mask (inf * 0 is NaN when eps = 0)
    return (np.where(x >= eps, g / np.maximum(x, eps), 0),)


@kernel("square")
def square(x):
    return x * x


@vjp("square", reads=("x",))
def square_vjp(g, y, x):
    # dL/dx = 2 x g
    return (2 * x * g,)


@kernel("sqrt")
def sqrt(x):
    return np.sqrt(x)


@vjp("sqrt", reads=("y",))
def sqrt_vjp(g, y, x):
    # dL/dx = g / (2 sqrt(x))
    return (g / (2 * y),)


@kernel("pow")
def pow_(x, *, exponent):
    return np.power(x, exponent)


@vjp("pow", reads=("x",))
def pow_vjp(g, y, x, *, exponent):
    # dL/dx = g * p x^(p-1)  (0 for p = 0, where x^(p-1) may be infinite)
    if exponent == 0:
        return (np.zeros_like(x),)
    return (g * exponent * np.power(x, exponent - 1),)


@kernel("abs")
def abs_(x):
    return np.abs(x)


@vjp("abs", reads=("x",))
def abs_vjp(g, y, x):
    # dL/dx = g * sign(x)
    return (g * np.sign(x),)


@kernel("clip")
def clip(x, *, min, max):
    return np.clip(x, min, max)


@vjp("clip", reads=("x",))
def clip_vjp(g, y, x, *, min, max):
    # dL/dx = g [min <= x <= max]
    inside = np.ones(x.shape, dtype=bool)
    if min is not None:
        inside &= x >= min
    if max is not None:
        inside &= x <= max
    return (g * inside,)


@kernel("scale")
def scale(x, *, factor):
    return factor * x


@vjp("scale", reads=())
def scale_vjp(g, y, x, *, factor):
    # dL/dx = factor * g
    return (factor * g,)


@kernel("stop_gradient")
def stop_gradient(x):
    return x


@kernel("constant")
def constant(value):
    # A fresh array: the value is a buffer of the program and must never be aliased.
    return value.copy()
