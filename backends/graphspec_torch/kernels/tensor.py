"""Kernels for graphspec.ops.tensor.

Kernels are copied into generated modules one by one, so each computes its own offsets
instead of sharing helpers. Function names that are Python builtins get a trailing
underscore (``sum_``): generated modules share one namespace.
"""

import torch

from graphspec_torch.kernels import kernel


@kernel("sum")
def sum_(x, *, axis, keepdims):
    dims = tuple(range(x.ndim)) if axis is None else axis
    # dim=() would reduce every axis in torch, which is what axis=None means here.
    return torch.sum(x, dim=dims, keepdim=keepdims)


@kernel("mean")
def mean(x, *, axis, keepdims):
    dims = tuple(range(x.ndim)) if axis is None else axis
    return torch.mean(x, dim=dims, keepdim=keepdims)


@kernel("concat")
def concat(*xs, axis):
    return torch.cat(xs, dim=axis)


@kernel("slice")
def slice_(x, *, axis, start, stop, step):
    ax = axis % x.ndim
    r = range(x.shape[ax])[start:stop:step]
    if r.step > 0:
        return x[(slice(None),) * ax + (slice(r.start, r.stop, r.step),)]
    # torch has no negative-step slicing: select the same indices NumPy would.
    return x.index_select(ax, torch.arange(r.start, r.stop, r.step, device=x.device))


@kernel("split")
def split(x, *, sections, index, axis):
    n = x.shape[axis]
    sizes = [n // sections] * sections if isinstance(sections, int) else sections
    i = index % len(sizes)
    return x.narrow(axis, sum(sizes[:i]), sizes[i])


@kernel("reshape")
def reshape(x, *, shape):
    # A symbolic name keeps the input's size at that position (e.g. the batch).
    return x.reshape([x.shape[i] if isinstance(d, str) else d for i, d in enumerate(shape)])


@kernel("flatten")
def flatten(x, *, start_axis, end_axis):
    return torch.flatten(x, start_axis, end_axis)


@kernel("transpose")
def transpose(x, *, axes):
    return x.permute(tuple(reversed(range(x.ndim))) if axes is None else axes)


@kernel("gather")
def gather(x, indices, *, axis):
    ax = axis % x.ndim
    # index_select wants indices in [0, n): map NumPy's negative ones first.
    idx = torch.where(indices < 0, indices + x.shape[ax], indices).reshape(-1)
    out = torch.index_select(x, ax, idx)
    return out.reshape(tuple(x.shape[:ax]) + tuple(indices.shape) + tuple(x.shape[ax + 1 :]))


@kernel("polynomial_features")
def polynomial_features(x, *, degree, include_linear, include_bias):
    # Index tuples i <= j <= ... of each degree, in lexicographic order (scikit-learn's).
    n, terms, level = x.shape[-1], [], [()]
    for k in range(1, degree + 1):
        level = [t + (j,) for t in level for j in range(t[-1] if t else 0, n)]
        if k > 1 or include_linear:
            terms += level
    cols = [torch.ones_like(x[..., 0])] if include_bias else []
    cols += [x[..., list(t)].prod(dim=-1) for t in terms]
    return torch.stack(cols, dim=-1)
