"""Kernels for graphspec.ops.selection."""

import torch
import torch.nn.functional as F

from graphspec_torch.kernels import kernel


@kernel("where")
def where(cond, a, b):
    return torch.where(cond != 0, a, b)


@kernel("pad")
def pad(x, *, pads, mode, value):
    # F.pad lists the last axis first.
    flat = [p for pair in reversed(pads) for p in pair]
    if mode == "constant":
        return F.pad(x, flat, mode="constant", value=value)
    # Non-constant F.pad wants a batch axis before the k padded ones: fold the leading
    # axes into one.
    k = len(pads)
    lead = x.shape[: x.ndim - k]
    y = F.pad(x.reshape((-1,) + tuple(x.shape[x.ndim - k :])), flat, mode=mode)
    return y.reshape(tuple(lead) + tuple(y.shape[1:]))


@kernel("einsum")
def einsum(*xs, equation):
    return torch.einsum(equation.replace(" ", ""), *xs)
