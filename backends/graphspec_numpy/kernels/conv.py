"""Kernels for graphspec.ops.conv: im2col on BLAS, one GEMM per sample and group each way.

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
    """The strided windows of the zero-padded ``x`` [n, c, h, w] as columns
    [n, groups, c/groups * kh * kw, oh * ow]: one strided copy per kernel offset (kh * kw of
    them, never a loop over pixels), each moving whole rows of the input. Positions last, so
    a GEMM ``W @ cols`` comes out channels-first with no transposing copy. ``out_hw`` keeps
    only the first output rows and columns (a transposed convolution's output padding can
    leave more windows than its input has pixels). Returns the columns, (oh, ow) and the
    padded input's shape."""
    (kh, kw), (sh, sw), (dh, dw) = kernel_hw, stride, dilation
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(pads))
    n, c, hp, wp = xp.shape
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    if out_hw is not None:
        oh, ow = min(oh, out_hw[0]), min(ow, out_hw[1])
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            r, q = i * dh, j * dw
            cols[:, :, i, j] = xp[
                :, :, r : r + sh * (oh - 1) + 1 : sh, q : q + sw * (ow - 1) + 1 : sw
            ]
    return cols.reshape(n, groups, c // groups * kh * kw, oh * ow), (oh, ow), xp.shape


def _col2im(dcols, xp_shape, pads, kernel_hw, stride, dilation, out_hw):
    """The adjoint of :func:`_im2col`: [n, groups, c/groups * kh * kw, oh * ow] columns
    summed back into the padded input's positions, the padding cropped off."""
    (kh, kw), (sh, sw), (dh, dw) = kernel_hw, stride, dilation
    (oh, ow), (n, c, h, w) = out_hw, xp_shape
    dcols = dcols.reshape(n, c, kh, kw, oh, ow)  # each offset's [n, c, oh, ow] is contiguous
    dxp = np.zeros(xp_shape, dtype=dcols.dtype)
    # One strided add per kernel offset; the windows of one offset never overlap each other.
    for i in range(kh):
        for j in range(kw):
            r, q = i * dh, j * dw
            dxp[:, :, r : r + sh * (oh - 1) + 1 : sh, q : q + sw * (ow - 1) + 1 : sw] += dcols[
                :, :, i, j
            ]
    (top, bottom), (left, right) = pads
    return dxp[:, :, top : h - bottom, left : w - right]


def _batch_sum_gemm(a, b):
    """sum over the batch of a[n] @ b[n]^T: [n, groups, p, k] x [n, groups, q, k] ->
    [groups, p, q] (a weight gradient, summed over the samples)."""
    return np.matmul(a, b.swapaxes(-1, -2)).sum(axis=0)


def _conv_forward(x, weight, bias, stride, padding, dilation, groups, save):
    # im2col, then one GEMM per sample and group: [out/groups, K] @ [K, positions].
    o, cg, kh, kw = weight.shape
    pads = _conv_pads(padding, (kh, kw), dilation)
    cols, out_hw, xp_shape = _im2col(x, (kh, kw), stride, pads, dilation, groups)
    wg = weight.reshape(groups, o // groups, cg * kh * kw)
    y = np.matmul(wg, cols).reshape((x.shape[0], o) + out_hw)
    if bias is not None:
        y += bias[:, None, None]
    # Residual: the columns (dW = g cols^T) and the padded input's shape (dx's col2im).
    return (y, (cols, xp_shape, pads)) if save else y


def _conv_backward(g, weight, bias, stride, dilation, groups, res, needs):
    # dL/dW = sum_n g_n cols_n^T per group ; dL/dcols = W^T g_n, scattered back (col2im) ;
    # dL/db = sum(g)
    cols, xp_shape, pads = res
    o, cg, kh, kw = weight.shape
    n, _, oh, ow = g.shape
    g4 = g.reshape(n, groups, o // groups, oh * ow)
    gw = gx = gb = None
    if needs is None or needs[1]:
        gw = _batch_sum_gemm(g4, cols).reshape(weight.shape)
    if needs is None or needs[0]:
        wg = weight.reshape(groups, o // groups, cg * kh * kw)
        dcols = np.matmul(wg.swapaxes(-1, -2), g4)
        gx = _col2im(dcols, xp_shape, pads, (kh, kw), stride, dilation, (oh, ow))
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
    x4 = x.reshape(n, groups, cin // groups, h * w)
    wg = weight.reshape(groups, cin // groups, og * kh * kw)
    y = _col2im(
        np.matmul(wg.swapaxes(-1, -2), x4),
        (n, og * groups) + full,
        ((ph, ph), (pw, pw)),
        (kh, kw),
        (sh, sw),
        (dh, dw),
        (h, w),
    )
    if bias is not None:
        y = y + bias[:, None, None]
    return y


@vjp("conv_transpose2d", reads=("x", "weight", "bias"), input_shaped=True)
def conv_transpose2d_vjp(
    g, y, x, weight, bias=None, *, stride, padding, output_padding, dilation, groups, needs=None
):
    # dL/dx = conv2d(g, W) ; dL/dW = sum_n x_n im2col(g)_n^T per group ; dL/db = sum(g)
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
    n, _, h, w = x.shape
    gx = gw = gb = None
    if needs is None or needs[0]:
        wg = weight.reshape(groups, cin // groups, og * kh * kw)
        gx = np.matmul(wg, cols).reshape(x.shape)
    if needs is None or needs[1]:
        x4 = x.reshape(n, groups, cin // groups, h * w)
        gw = _batch_sum_gemm(x4, cols).reshape(weight.shape)
    if bias is None:
        return gx, gw
    if needs is None or needs[2]:
        gb = np.add.reduce(g, axis=(0, 2, 3))
    return gx, gw, gb
