"""Kernels for graphspec.ops.conv: im2col on BLAS, one matmul per group each way.

conv1d is conv2d over a unit height; conv_transpose2d is conv2d's VJP with respect to its
input (forward: GEMM then col2im) and conv2d itself (backward: im2col then GEMMs). All
three call the same helpers.
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


def _im2col(x, kernel_hw, stride, pads, dilation, groups, out_hw=None):
    """The strided windows of the zero-padded ``x`` [n, c, h, w], gathered once into a
    [groups, n * oh * ow, c/groups * kh * kw] matrix (one view, one copy; no loop over
    pixels). ``out_hw`` keeps only the first output rows and columns (a transposed
    convolution's output padding can leave more windows than its input has pixels).
    Returns the columns, (oh, ow) and the padded input's shape."""
    (kh, kw), (sh, sw), (dh, dw) = kernel_hw, stride, dilation
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(pads))
    n, c = x.shape[:2]
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    win = np.lib.stride_tricks.sliding_window_view(xp, span, axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]  # [n, c, oh, ow, kh, kw]
    if out_hw is not None:
        win = win[:, :, : out_hw[0], : out_hw[1]]
    oh, ow = win.shape[2], win.shape[3]
    cols = (
        win.reshape(n, groups, c // groups, oh, ow, kh, kw)
        .transpose(1, 0, 3, 4, 2, 5, 6)
        .reshape(groups, n * oh * ow, c // groups * kh * kw)
    )
    return cols, (oh, ow), xp.shape


def _col2im(dcols, xp_shape, pads, kernel_hw, stride, dilation, groups, out_hw):
    """The adjoint of :func:`_im2col`: [groups, n * oh * ow, c/groups * kh * kw] columns
    summed back into the padded input's positions, the padding cropped off."""
    (kh, kw), (sh, sw), (dh, dw) = kernel_hw, stride, dilation
    (oh, ow), n, c = out_hw, xp_shape[0], xp_shape[1]
    cg = c // groups
    dcols = dcols.reshape(groups, n, oh, ow, cg, kh, kw).transpose(1, 0, 4, 5, 6, 2, 3)
    dxp = np.zeros((n, groups, cg) + tuple(xp_shape[2:]), dtype=dcols.dtype)
    # One strided scatter-add per kernel offset (kh * kw of them, not per pixel); the
    # windows of one offset never overlap each other.
    for i in range(kh):
        for j in range(kw):
            r, q = i * dh, j * dw
            dxp[..., r : r + sh * (oh - 1) + 1 : sh, q : q + sw * (ow - 1) + 1 : sw] += dcols[
                :, :, :, i, j
            ]
    (top, bottom), (left, right) = pads
    h, w = xp_shape[2], xp_shape[3]
    return dxp.reshape(xp_shape)[:, :, top : h - bottom, left : w - right]


def _rows(t, groups):
    """[n, c, h, w] -> [groups, n * h * w, c/groups]: one row per pixel, per group."""
    n, c, h, w = t.shape
    return (
        t.reshape(n, groups, c // groups, h, w)
        .transpose(1, 0, 3, 4, 2)
        .reshape(groups, -1, c // groups)
    )


def _unrows(t, n, hw):
    """The inverse of :func:`_rows`: [groups, n * h * w, c/groups] -> [n, c, h, w]."""
    groups, _, cg = t.shape
    return (
        t.reshape(groups, n, hw[0], hw[1], cg)
        .transpose(1, 0, 4, 2, 3)
        .reshape(n, groups * cg, hw[0], hw[1])
    )


def _conv_forward(x, weight, bias, stride, padding, dilation, groups, save):
    # im2col, then one matmul per group.
    o, cg, kh, kw = weight.shape
    pads = _conv_pads(padding, (kh, kw), dilation)
    cols, out_hw, xp_shape = _im2col(x, (kh, kw), stride, pads, dilation, groups)
    wg = weight.reshape(groups, o // groups, cg * kh * kw)
    y = _unrows(cols @ wg.transpose(0, 2, 1), x.shape[0], out_hw)
    if bias is not None:
        y += bias[:, None, None]
    # Residual: the columns (dW = g^T cols) and the padded input's shape (dx's col2im).
    return (y, (cols, xp_shape, pads)) if save else y


def _conv_backward(g, weight, bias, stride, dilation, groups, res, needs):
    # dL/dW = g^T cols per group ; dL/dcols = g W, scattered back (col2im) ; dL/db = sum(g)
    cols, xp_shape, pads = res
    o, cg, kh, kw = weight.shape
    gg = _rows(g, groups)
    gw = gx = gb = None
    if needs is None or needs[1]:
        gw = (gg.transpose(0, 2, 1) @ cols).reshape(weight.shape)
    if needs is None or needs[0]:
        dcols = gg @ weight.reshape(groups, o // groups, cg * kh * kw)
        gx = _col2im(dcols, xp_shape, pads, (kh, kw), stride, dilation, groups, g.shape[2:])
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


@kernel("conv_transpose2d")
def conv_transpose2d(x, weight, bias=None, *, stride, padding, output_padding, dilation, groups):
    # conv2d's input gradient (GEMM, then col2im): x plays the gradient of a conv2d whose
    # input has this op's output size plus the padding it crops.
    cin, og, kh, kw = weight.shape
    (sh, sw), (ph, pw) = _conv_pair(stride), _conv_pair(padding)
    (oph, opw), (dh, dw) = _conv_pair(output_padding), _conv_pair(dilation)
    n, _, h, w = x.shape
    full = ((h - 1) * sh + dh * (kh - 1) + 1 + oph, (w - 1) * sw + dw * (kw - 1) + 1 + opw)
    dcols = _rows(x, groups) @ weight.reshape(groups, cin // groups, og * kh * kw)
    y = _col2im(
        dcols,
        (n, og * groups) + full,
        ((ph, ph), (pw, pw)),
        (kh, kw),
        (sh, sw),
        (dh, dw),
        groups,
        (h, w),
    )
    if bias is not None:
        y = y + bias[:, None, None]
    return y


@vjp("conv_transpose2d", reads=("x", "weight", "bias"), input_shaped=True)
def conv_transpose2d_vjp(
    g, y, x, weight, bias=None, *, stride, padding, output_padding, dilation, groups, needs=None
):
    # dL/dx = conv2d(g, W) ; dL/dW = x^T im2col(g) per group ; dL/db = sum(g)
    cin, og, kh, kw = weight.shape
    ph, pw = _conv_pair(padding)
    cols, _, _ = _im2col(
        g,
        (kh, kw),
        _conv_pair(stride),
        ((ph, ph), (pw, pw)),
        _conv_pair(dilation),
        groups,
        out_hw=x.shape[2:],
    )
    gx = gw = gb = None
    if needs is None or needs[0]:
        wg = weight.reshape(groups, cin // groups, og * kh * kw)
        gx = _unrows(cols @ wg.transpose(0, 2, 1), x.shape[0], x.shape[2:])
    if needs is None or needs[1]:
        gw = (_rows(x, groups).transpose(0, 2, 1) @ cols).reshape(weight.shape)
    if bias is None:
        return gx, gw
    if needs is None or needs[2]:
        gb = np.add.reduce(g, axis=(0, 2, 3))
    return gx, gw, gb
