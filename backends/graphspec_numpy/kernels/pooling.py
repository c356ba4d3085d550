"""Kernels for graphspec.ops.pooling (channels-first: ``[batch, channels, *spatial]``).

The windowed pools are rank-generic (one or two spatial axes) and work kernel offset by
kernel offset on the padded input (never a loop over pixels): max pooling takes the
elementwise maximum of the offsets' strided slices, average pooling sums the windows viewed
in place with ``sliding_window_view`` (``[batch, channels, *out, *kernel]``), and the VJPs
put window gradients back with one strided write or add per offset.
"""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp


def _out_size(size, k, s, p, ceil_mode):
    # The shape rule of graphspec.ops.pooling (pool_out_size), which kernels cannot import.
    span = size + 2 * p - k
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _padded(x, kernel, stride, padding, ceil_mode, fill):
    """``x`` padded with ``fill`` and the output size per axis."""
    outs = [
        _out_size(d, k, s, p, ceil_mode) for d, k, s, p in zip(x.shape[2:], kernel, stride, padding)
    ]
    # Right padding reaches the end of the last window, which ceil_mode may run past the
    # declared padding (those values are never the max nor counted in a mean).
    pads = [
        (p, max(0, (o - 1) * s + k - d - p))
        for d, k, s, p, o in zip(x.shape[2:], kernel, stride, padding, outs)
    ]
    if any(p != (0, 0) for p in pads):
        x = np.pad(x, [(0, 0), (0, 0)] + pads, constant_values=fill)
    return x, outs


def _offsets(kernel, stride, outs):
    """Per kernel offset (flat index ``q`` within the window, row-major): the strided slice
    of the padded input that offset reads in every window, ``[batch, channels, *out]``."""
    for q, offset in enumerate(np.ndindex(*kernel)):
        at = tuple(slice(i, i + (o - 1) * s + 1, s) for i, o, s in zip(offset, outs, stride))
        yield q, (slice(None), slice(None)) + at


def _windows(x, kernel, stride, padding, ceil_mode, fill):
    """Windows ``[batch, channels, *out, *kernel]`` of ``x`` padded with ``fill``, the
    padded shape, and the output size per axis."""
    xp, outs = _padded(x, kernel, stride, padding, ceil_mode, fill)
    win = np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=tuple(range(2, xp.ndim)))
    win = win[
        (slice(None), slice(None))
        + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(outs, stride))
    ]
    return win, xp.shape, outs


def _fold(parts, shape, padding, stride, outs, x_shape):
    """The input gradient: each window's ``parts`` ``[batch, channels, *out, *kernel]``
    added back where the window read, the padding cut off."""
    gxp = np.zeros(shape, dtype=parts.dtype)
    kernel = parts.shape[-len(outs) :]
    flat = parts.reshape(parts.shape[: -len(outs)] + (-1,))
    for q, at in _offsets(kernel, stride, outs):  # one strided add per kernel offset
        gxp[at] += flat[..., q]
    return _crop(gxp, padding, x_shape)


def _crop(gxp, padding, x_shape):
    crop = tuple(slice(p, p + d) for p, d in zip(padding, x_shape[2:]))
    return gxp[(slice(None), slice(None)) + crop]


def _max_pool(x, kernel, stride, padding, ceil_mode, save):
    # The max over the kernel's strided slices (k * k elementwise maxima over the whole
    # batch, no window view). Residual: each window's argmax (flat within the window), so
    # the VJP routes g there, and the padded and input shapes the VJP folds into.
    xp, outs = _padded(x, kernel, stride, padding, ceil_mode, -np.inf)
    offsets = list(_offsets(kernel, stride, outs))
    y = xp[offsets[0][1]].copy()
    for _, at in offsets[1:]:
        np.maximum(y, xp[at], out=y)
    if not save:
        return y
    # The first offset holding the maximum, as torch on a tie: offsets last to first, each
    # one that holds it lowering arg to its own index (arithmetic on small integers, much
    # faster than a masked copy).
    last = len(offsets) - 1
    arg = np.full(y.shape, last, dtype=np.min_scalar_type(last))
    for q, at in reversed(offsets[:-1]):
        arg -= (xp[at] == y) * (arg - q)  # arg > q here: later offsets wrote it
    # A window holding NaN has the maximum NaN (np.maximum propagates it), which equals
    # nothing; torch takes a NaN as the maximum and a later NaN over an earlier one, so
    # its gradient goes to the window's last NaN.
    nan = np.isnan(y)
    if nan.any():
        for q, at in offsets:
            arg[nan & np.isnan(xp[at])] = q
    return y, (arg, xp.shape, x.shape)


def _max_pool_vjp(g, kernel, stride, padding, res):
    # dL/dx[i] = sum of g over the windows whose maximum is x[i]
    arg, shape, x_shape = res
    gxp = np.zeros(shape, dtype=g.dtype)
    # Windows that do not overlap (stride >= kernel) each own their slice: written, not added.
    disjoint = all(s >= k for s, k in zip(stride, kernel))
    for q, at in _offsets(kernel, stride, g.shape[2:]):
        if disjoint:
            np.multiply(g, arg == q, out=gxp[at])
        else:
            gxp[at] += g * (arg == q)
    return _crop(gxp, padding, x_shape)


def _divisor(x_shape, kernel, stride, padding, outs, count_include_pad, dtype):
    """Each window's divisor, ``[*out]``: torch's rule, per axis then multiplied. The window
    is clipped to the padded input (a ceil_mode overhang never counts) and, without
    count_include_pad, to the input itself."""
    div = np.ones((), dtype=dtype)
    for d, k, s, p, o in zip(x_shape[2:], kernel, stride, padding, outs):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, d + p)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, d)
        div = np.multiply.outer(div, (end - start).astype(dtype))
    return div


def _avg_pool(x, kernel, stride, padding, ceil_mode, count_include_pad, save):
    # Residual: the divisors and the padded and input shapes the VJP folds into.
    win, shape, outs = _windows(x, kernel, stride, padding, ceil_mode, 0.0)
    div = _divisor(x.shape, kernel, stride, padding, outs, count_include_pad, x.dtype)
    y = np.sum(win, axis=tuple(range(-len(kernel), 0))) / div
    return (y, (div, shape, x.shape)) if save else y


def _avg_pool_vjp(g, kernel, stride, padding, res):
    # dL/dx[i] = sum of g / divisor over the windows that read x[i]
    div, shape, x_shape = res
    per = (g / div).reshape(g.shape + (1,) * len(kernel))
    parts = np.broadcast_to(per, g.shape + tuple(kernel))
    return _fold(parts, shape, padding, stride, g.shape[2:], x_shape)


@kernel("max_pool2d", residuals=True)
def max_pool2d(x, *, kernel, stride, padding, ceil_mode, save=False):
    return _max_pool(x, kernel, stride, padding, ceil_mode, save)


@vjp("max_pool2d", reads=("res",), input_shaped=True)
def max_pool2d_vjp(g, y, x, *, kernel, stride, padding, ceil_mode, res):
    # dL/dx = g routed to each window's argmax
    return (_max_pool_vjp(g, kernel, stride, padding, res),)


@kernel("max_pool1d", residuals=True)
def max_pool1d(x, *, kernel, stride, padding, ceil_mode, save=False):
    return _max_pool(x, kernel, stride, padding, ceil_mode, save)


@vjp("max_pool1d", reads=("res",), input_shaped=True)
def max_pool1d_vjp(g, y, x, *, kernel, stride, padding, ceil_mode, res):
    # dL/dx = g routed to each window's argmax
    return (_max_pool_vjp(g, kernel, stride, padding, res),)


@kernel("avg_pool2d", residuals=True)
def avg_pool2d(x, *, kernel, stride, padding, ceil_mode, count_include_pad, save=False):
    return _avg_pool(x, kernel, stride, padding, ceil_mode, count_include_pad, save)


@vjp("avg_pool2d", reads=("res",), input_shaped=True)
def avg_pool2d_vjp(g, y, x, *, kernel, stride, padding, ceil_mode, count_include_pad, res):
    # dL/dx = g / count spread over each window
    return (_avg_pool_vjp(g, kernel, stride, padding, res),)


@kernel("avg_pool1d", residuals=True)
def avg_pool1d(x, *, kernel, stride, padding, ceil_mode, count_include_pad, save=False):
    return _avg_pool(x, kernel, stride, padding, ceil_mode, count_include_pad, save)


@vjp("avg_pool1d", reads=("res",), input_shaped=True)
def avg_pool1d_vjp(g, y, x, *, kernel, stride, padding, ceil_mode, count_include_pad, res):
    # dL/dx = g / count spread over each window
    return (_avg_pool_vjp(g, kernel, stride, padding, res),)


def _spatial(x):
    return tuple(range(2, x.ndim))


@kernel("global_avg_pool", residuals=True)
def global_avg_pool(x, *, save=False):
    # Residual: the input's shape, all the VJP needs.
    y = np.mean(x, axis=_spatial(x))
    return (y, x.shape) if save else y


@vjp("global_avg_pool", reads=("res",), input_shaped=True)
def global_avg_pool_vjp(g, y, x, *, res):
    # dL/dx = g / (number of spatial positions), at every position
    n = int(np.prod(res[2:]))  # a Python int keeps float32 gradients float32
    per = (g / n).reshape(g.shape + (1,) * (len(res) - 2))
    return (np.broadcast_to(per, res).copy(),)


@kernel("global_max_pool")
def global_max_pool(x):
    return np.max(x, axis=_spatial(x))


@vjp("global_max_pool", reads=("x", "y"), input_shaped=True)
def global_max_pool_vjp(g, y, x):
    # dL/dx = g shared equally by the positions equal to the maximum (torch's amax)
    axes = _spatial(x)
    at = x == np.expand_dims(y, axes)
    return (at * np.expand_dims(g / np.sum(at, axis=axes, dtype=g.dtype), axes),)
