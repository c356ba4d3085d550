"""Kernels for graphspec.ops.conv: im2col on BLAS, one matmul per group each way.

conv1d is conv2d over a unit height: both kernels call the same helpers.
"""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp


def _conv_pads(padding, kernel_hw, dilation):
    """((top, bottom), (left, right)) zero padding; 'same' puts an odd extra at the end, as
    torch does."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel_hw, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    ph, pw = padding
    return ((ph, ph), (pw, pw))


def _conv_forward(x, weight, bias, stride, padding, dilation, groups, save):
    # im2col: the strided windows of the padded input, gathered once into a
    # [groups, positions, in/groups * kh * kw] matrix that one matmul per group multiplies.
    o, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    pads = _conv_pads(padding, (kh, kw), dilation)
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    n = x.shape[0]
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    win = np.lib.stride_tricks.sliding_window_view(xp, span, axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]  # [n, c, oh, ow, kh, kw]
    oh, ow = win.shape[2], win.shape[3]
    cols = (
        win.reshape(n, groups, cg, oh, ow, kh, kw)
        .transpose(1, 0, 3, 4, 2, 5, 6)
        .reshape(groups, n * oh * ow, cg * kh * kw)
    )
    wg = weight.reshape(groups, o // groups, cg * kh * kw)
    y = cols @ wg.transpose(0, 2, 1)  # [groups, positions, out/groups]
    y = y.reshape(groups, n, oh, ow, o // groups).transpose(1, 0, 4, 2, 3).reshape(n, o, oh, ow)
    if bias is not None:
        y += bias[:, None, None]
    # Residual: the columns (dW = g^T cols) and the padded input's shape (dx's col2im).
    return (y, (cols, xp.shape, pads)) if save else y


def _conv_backward(g, weight, bias, stride, dilation, groups, res, needs):
    # dL/dW = g^T cols per group ; dL/dcols = g W, scattered back (col2im) ; dL/db = sum(g)
    cols, xp_shape, pads = res
    o, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    n, _, oh, ow = g.shape
    og = o // groups
    gg = g.reshape(n, groups, og, oh, ow).transpose(1, 0, 3, 4, 2).reshape(groups, -1, og)
    gw = gx = gb = None
    if needs is None or needs[1]:
        gw = (gg.transpose(0, 2, 1) @ cols).reshape(weight.shape)
    if needs is None or needs[0]:
        dcols = (gg @ weight.reshape(groups, og, cg * kh * kw)).reshape(
            groups, n, oh, ow, cg, kh, kw
        )
        dcols = dcols.transpose(1, 0, 4, 5, 6, 2, 3)  # [n, groups, cg, kh, kw, oh, ow]
        dxp = np.zeros((n, groups, cg) + tuple(xp_shape[2:]), dtype=g.dtype)
        # col2im: one strided scatter-add per kernel offset (kh * kw of them, not per pixel);
        # the windows of one offset never overlap each other.
        for i in range(kh):
            for j in range(kw):
                r, c = i * dh, j * dw
                dxp[..., r : r + sh * (oh - 1) + 1 : sh, c : c + sw * (ow - 1) + 1 : sw] += dcols[
                    :, :, :, i, j
                ]
        (top, bottom), (left, right) = pads
        h, w = xp_shape[2], xp_shape[3]
        gx = dxp.reshape(xp_shape)[:, :, top : h - bottom, left : w - right]
    if bias is not None and (needs is None or needs[2]):
        gb = np.add.reduce(g, axis=(0, 2, 3))
    return gx, gw, gb


def _conv_pair(value):
    # An [h, w] pair may come back from a serialized IR as a list.
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


@kernel("conv2d", residuals=True)
def conv2d(x, weight, bias=None, *, stride, padding, dilation, groups, save=False):
    if padding not in ("valid", "same"):
        padding = _conv_pair(padding)
    return _conv_forward(
        x, weight, bias, _conv_pair(stride), padding, _conv_pair(dilation), groups, save
    )


@vjp("conv2d", reads=("weight", "bias", "res"), input_shaped=True)
def conv2d_vjp(g, y, x, weight, bias=None, *, stride, padding, dilation, groups, res, needs=None):
    # dL/dW = g^T im2col(x) ; dL/dx = col2im(g W) ; dL/db = sum(g) over batch and pixels
    grads = _conv_backward(
        g, weight, bias, _conv_pair(stride), _conv_pair(dilation), groups, res, needs
    )
    return grads if bias is not None else grads[:2]


@kernel("conv1d", residuals=True)
def conv1d(x, weight, bias=None, *, stride, padding, dilation, groups, save=False):
    # conv2d over a unit height: [n, c, L] -> [n, c, 1, L]
    if padding not in ("valid", "same"):
        padding = (0, padding)
    out = _conv_forward(
        x[:, :, None, :],
        weight[:, :, None, :],
        bias,
        (1, stride),
        padding,
        (1, dilation),
        groups,
        save,
    )
    if save:
        return out[0][:, :, 0, :], out[1]
    return out[:, :, 0, :]


@vjp("conv1d", reads=("weight", "bias", "res"), input_shaped=True)
def conv1d_vjp(g, y, x, weight, bias=None, *, stride, padding, dilation, groups, res, needs=None):
    # dL/dW = g^T im2col(x) ; dL/dx = col2im(g W) ; dL/db = sum(g), as conv2d at unit height
    gx, gw, gb = _conv_backward(
        g[:, :, None, :],
        weight[:, :, None, :],
        bias,
        (1, stride),
        (1, dilation),
        groups,
        res,
        needs,
    )
    gx = gx[:, :, 0, :] if gx is not None else None
    gw = gw[:, :, 0, :] if gw is not None else None
    return (gx, gw, gb) if bias is not None else (gx, gw)
