"""Kernels for graphspec.ops.tensor (a kernel and its VJP share their index helpers)."""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp
from graphspec_numpy.kernels._prelude import reduced_axes


@kernel("sum")
def sum_(x, *, axis, keepdims):
    return np.sum(x, axis=tuple(axis) if isinstance(axis, list) else axis, keepdims=keepdims)


@vjp("sum", reads=("x",))
def sum_vjp(g, y, x, *, axis, keepdims):
    # dL/dx = g broadcast back over the summed axes
    axes = reduced_axes(axis, x.ndim)
    if not keepdims:
        g = np.expand_dims(g, axes)
    return (np.broadcast_to(g, x.shape).copy(),)


@kernel("mean")
def mean(x, *, axis, keepdims):
    return np.mean(x, axis=tuple(axis) if isinstance(axis, list) else axis, keepdims=keepdims)


@vjp("mean", reads=("x",))
def mean_vjp(g, y, x, *, axis, keepdims):
    # dL/dx = g / n broadcast back over the n averaged elements
    axes = reduced_axes(axis, x.ndim)
    if not keepdims:
        g = np.expand_dims(g, axes)
    n = int(np.prod([x.shape[a] for a in axes]))
    return (np.broadcast_to(g / n, x.shape).copy(),)


@kernel("concat")
def concat(*xs, axis):
    return np.concatenate(xs, axis=axis)


@vjp("concat", reads=("xs",))
def concat_vjp(g, y, *xs, axis):
    # dL/dx_i = the slice of g that x_i filled
    ends = np.cumsum([x.shape[axis] for x in xs])
    return tuple(np.split(g, ends[:-1], axis=axis))


@kernel("slice")
def slice_(x, *, axis, start, stop, step):
    index = (slice(None),) * (axis % x.ndim) + (slice(start, stop, step),)
    return x[index]


@vjp("slice", reads=("x",))
def slice_vjp(g, y, x, *, axis, start, stop, step):
    # dL/dx = g at the sliced positions, 0 elsewhere
    index = (slice(None),) * (axis % x.ndim) + (slice(start, stop, step),)
    gx = np.zeros_like(x)
    gx[index] = g
    return (gx,)


def _part(shape, sections, index, axis):
    """The index tuple of part ``index`` of ``sections`` (a count or sizes) along ``axis``."""
    n = shape[axis]
    sizes = [n // sections] * sections if isinstance(sections, int) else sections
    i = index % len(sizes)
    start = int(np.sum(sizes[:i]))
    return (slice(None),) * (axis % len(shape)) + (slice(start, start + sizes[i]),)


@kernel("split")
def split(x, *, sections, index, axis):
    return x[_part(x.shape, sections, index, axis)]


@vjp("split", reads=("x",))
def split_vjp(g, y, x, *, sections, index, axis):
    # dL/dx = g at this part's positions, 0 in the other parts
    cut = _part(x.shape, sections, index, axis)
    gx = np.zeros_like(x)
    gx[cut] = g
    return (gx,)


@kernel("reshape")
def reshape(x, *, shape):
    # A symbolic name keeps the input's size at that position (e.g. the batch).
    return x.reshape([x.shape[i] if isinstance(d, str) else d for i, d in enumerate(shape)])


@vjp("reshape", reads=("x",))
def reshape_vjp(g, y, x, *, shape):
    # dL/dx = g reshaped to x's shape
    return (g.reshape(x.shape),)


@kernel("flatten")
def flatten(x, *, start_axis, end_axis):
    s, e = start_axis % x.ndim, end_axis % x.ndim
    merged = int(np.prod(x.shape[s : e + 1]))
    return x.reshape(x.shape[:s] + (merged,) + x.shape[e + 1 :])


@vjp("flatten", reads=("x",))
def flatten_vjp(g, y, x, *, start_axis, end_axis):
    # dL/dx = g reshaped to x's shape
    return (g.reshape(x.shape),)


@kernel("transpose")
def transpose(x, *, axes):
    return np.transpose(x, axes)


@vjp("transpose", reads=("x",))
def transpose_vjp(g, y, x, *, axes):
    # dL/dx = g transposed by the inverse permutation
    perm = range(x.ndim)[::-1] if axes is None else [a % x.ndim for a in axes]
    return (np.transpose(g, np.argsort(perm)),)


@kernel("gather")
def gather(x, indices, *, axis):
    return np.take(x, indices, axis=axis)


@vjp("gather", reads=("x", "indices"))
def gather_vjp(g, y, x, indices, *, axis):
    # dL/dx[.., k, ..] = sum of g over the positions whose index is k (np.add.at)
    ax = axis % x.ndim
    g = g.reshape(x.shape[:ax] + (indices.size,) + x.shape[ax + 1 :])
    gx = np.zeros_like(x)
    np.add.at(gx, (slice(None),) * ax + (indices.reshape(-1),), g)
    return gx, None


def _monomials(n, degree, include_linear):
    """Index tuples i <= j <= ... of each degree, in lexicographic order (scikit-learn's)."""
    terms, level = [], [()]
    for k in range(1, degree + 1):
        level = [t + (j,) for t in level for j in range(t[-1] if t else 0, n)]
        if k > 1 or include_linear:
            terms += level
    return terms


@kernel("polynomial_features")
def polynomial_features(x, *, degree, include_linear, include_bias):
    terms = _monomials(x.shape[-1], degree, include_linear)
    cols = [np.ones_like(x[..., 0])] if include_bias else []
    cols += [np.prod(x[..., list(t)], axis=-1) for t in terms]
    return np.stack(cols, axis=-1)


@vjp("polynomial_features", reads=("x",))
def polynomial_features_vjp(g, y, x, *, degree, include_linear, include_bias):
    # dL/dx_j = sum over monomials m, each factor x_j of m: g_m * (m without that factor)
    terms = _monomials(x.shape[-1], degree, include_linear)
    gx = np.zeros_like(x)
    for col, t in enumerate(terms, start=int(include_bias)):
        for p in range(len(t)):
            rest = list(t[:p] + t[p + 1 :])
            gx[..., t[p]] += g[..., col] * np.prod(x[..., rest], axis=-1)
    return (gx,)
