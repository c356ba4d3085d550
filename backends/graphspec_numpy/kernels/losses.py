"""Kernels for graphspec.ops.losses."""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp
from graphspec_numpy.kernels._prelude import stable_sigmoid, stable_softplus


@kernel("bce_with_logits")
def bce_with_logits(z, t):
    return np.mean(stable_softplus(z) - t * z)


@vjp("bce_with_logits")
def bce_with_logits_vjp(g, y, z, t):
    # dL/dz = g * (sigmoid(z) - t) / n
    return g * (stable_sigmoid(z) - t) / z.size, None


@kernel("l2_penalty")
def l2_penalty(*params):
    return 0.5 * sum(np.vdot(p, p) for p in params)


@vjp("l2_penalty")
def l2_penalty_vjp(g, y, *params):
    # dL/dp = g * p
    return tuple(g * p for p in params)
