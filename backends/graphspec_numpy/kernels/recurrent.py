"""Kernels for graphspec.ops.recurrent: backpropagation through time, one VJP per sequence.

Inside, time is the leading axis (x is transposed once to ``[time, batch, features]``) so
that each step's slice is contiguous. The input projections of all steps are one GEMM before
the loop; each step does one ``[batch, units] x [units, gates * units]`` product each way;
the weight gradients and the input's gradient are one GEMM each after the loop, over the
gate gradients of all steps. The forward keeps, per direction and per step, the state it
started from and the gate activations (the residuals); the VJP recomputes none of them.

Padded sequences (``lengths``): a step past a sequence's length keeps its state (a mask per
step, ``[batch, 1]``) and outputs zeros, so the masked rows get no gradient, and the reverse
direction starts each sequence at its own last step, as torch's packed sequences do.
"""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp


def _sigmoid_(a):
    # In place, overflow-free: sigmoid(a) = (1 + tanh(a / 2)) / 2.
    a *= 0.5
    np.tanh(a, out=a)
    a += 1.0
    a *= 0.5
    return a


def _rnn_args(args, n_states, initial_state, lengths, directions):
    """(initial states, lengths or None, [(w_ih, w_hh, b_ih, b_hh)] per direction) from the
    positional arguments after x."""
    k = n_states if initial_state else 0
    lens = args[k] if lengths else None
    params = args[k + (1 if lengths else 0) :]
    return args[:k], lens, [tuple(params[4 * d : 4 * d + 4]) for d in range(directions)]


def _step_mask(lens, time):
    # [time, batch, 1]: whether step t lies within each sequence.
    if lens is None:
        return None
    return (np.arange(time)[:, None] < np.asarray(lens)[None, :])[:, :, None]


def _direction_forward(cell, xt, w_ih, w_hh, b_ih, b_hh, init, mask, reverse, nonlinearity):
    """One direction over time-major ``xt``: (outputs [time, batch, units], final states,
    residuals). Residuals are indexed by time step: the state each step started from and
    the step's gate activations."""
    time, n, f = xt.shape
    h, rows = w_hh.shape[1], w_hh.shape[0]
    if cell == "gru":
        # b_hn stays inside r * (W_hn h + b_hn); the r and z blocks of b_hh fold in here.
        bias = np.concatenate([b_ih[: 2 * h] + b_hh[: 2 * h], b_ih[2 * h :]])
    else:
        bias = b_ih + b_hh
    xp = (xt.reshape(time * n, f) @ w_ih.T).reshape(time, n, rows)
    xp += bias
    w_hh_t = np.ascontiguousarray(w_hh.T)
    hprev = np.empty((time, n, h), dtype=xt.dtype)
    cprev = np.empty((time, n, h), dtype=xt.dtype) if cell == "lstm" else None
    extra = np.empty((time, n, h), dtype=xt.dtype) if cell != "rnn" else None
    out = np.empty((time, n, h), dtype=xt.dtype)
    state = init[0]
    c = init[1] if cell == "lstm" else None
    for step in range(time - 1, -1, -1) if reverse else range(time):
        hprev[step] = state
        a = xp[step]  # becomes the step's gate activations, in place
        hp = state @ w_hh_t
        if cell == "lstm":
            cprev[step] = c
            a += hp
            _sigmoid_(a[:, : 2 * h])
            np.tanh(a[:, 2 * h : 3 * h], out=a[:, 2 * h : 3 * h])
            _sigmoid_(a[:, 3 * h :])
            c_new = a[:, h : 2 * h] * c + a[:, :h] * a[:, 2 * h : 3 * h]
            tc = np.tanh(c_new, out=extra[step])
            h_new = a[:, 3 * h :] * tc
        elif cell == "gru":
            a[:, : 2 * h] += hp[:, : 2 * h]
            _sigmoid_(a[:, : 2 * h])
            hl = np.add(hp[:, 2 * h :], b_hh[2 * h :], out=extra[step])
            nn = a[:, 2 * h :]
            nn += a[:, :h] * hl
            np.tanh(nn, out=nn)
            h_new = nn + a[:, h : 2 * h] * (state - nn)
        else:
            a += hp
            if nonlinearity == "relu":
                np.maximum(a, 0.0, out=a)
            else:
                np.tanh(a, out=a)
            h_new = a
        if mask is None:
            out[step] = h_new
            state = h_new
            if cell == "lstm":
                c = c_new
        else:
            m = mask[step]
            np.multiply(h_new, m, out=out[step])
            state = np.where(m, h_new, state)
            if cell == "lstm":
                c = np.where(m, c_new, c)
    return out, (state, c), (xp, hprev, cprev, extra)


def _direction_vjp(cell, g_seq, g_last, xt, w_hh, res, mask, reverse, nonlinearity):
    """Backpropagation through time of one direction: (gradients of the gate
    pre-activations through the input projection [time, batch, rows], the same through the
    recurrent one (the same array but for gru), gradient of the initial h, of the initial c).
    ``g_seq``: cotangent of the outputs (time-major) or None; ``g_last``: of the final h."""
    acts, hprev, cprev, extra = res
    time, n, h = hprev.shape
    dgx = np.empty_like(acts)
    dgh = np.empty_like(acts) if cell == "gru" else dgx
    dh = np.zeros((n, h), dtype=acts.dtype) if g_last is None else g_last.copy()
    dc = np.zeros((n, h), dtype=acts.dtype) if cell == "lstm" else None
    for step in range(time) if reverse else range(time - 1, -1, -1):
        # h after the step = m * h_new + (1 - m) * h_before; its output = m * h_new.
        dhn = dh if g_seq is None else dh + g_seq[step]
        keep = None
        if mask is not None:
            m = mask[step]
            keep = np.where(m, 0.0, dh)
            dhn = np.where(m, dhn, 0.0)
        a, da = acts[step], dgx[step]
        if cell == "lstm":
            i, f, gg, o = a[:, :h], a[:, h : 2 * h], a[:, 2 * h : 3 * h], a[:, 3 * h :]
            tc = extra[step]
            # h_new = o * tanh(c_new), c_new = f * c + i * g
            dcn = dc if mask is None else np.where(m, dc, 0.0)
            dcn = dcn + dhn * o * (1.0 - tc * tc)
            np.multiply(dhn * tc, o * (1.0 - o), out=da[:, 3 * h :])
            np.multiply(dcn * gg, i * (1.0 - i), out=da[:, :h])
            np.multiply(dcn * cprev[step], f * (1.0 - f), out=da[:, h : 2 * h])
            np.multiply(dcn * i, 1.0 - gg * gg, out=da[:, 2 * h : 3 * h])
            dc_keep = None if mask is None else np.where(m, 0.0, dc)
            dc = dcn * f if dc_keep is None else dcn * f + dc_keep
            dh = da @ w_hh
        elif cell == "gru":
            r, z, nn = a[:, :h], a[:, h : 2 * h], a[:, 2 * h :]
            # h_new = n + z (h - n), n = tanh(xn + r * hl), hl = W_hn h + b_hn
            dan = np.multiply(dhn * (1.0 - z), 1.0 - nn * nn, out=da[:, 2 * h :])
            np.multiply(dan * extra[step], r * (1.0 - r), out=da[:, :h])
            np.multiply(dhn * (hprev[step] - nn), z * (1.0 - z), out=da[:, h : 2 * h])
            dgh[step, :, : 2 * h] = da[:, : 2 * h]
            np.multiply(dan, r, out=dgh[step, :, 2 * h :])
            dh = dgh[step] @ w_hh
            dh += dhn * z
        else:
            # h_new = act(a): tanh' = 1 - h_new^2, relu' = [h_new > 0]
            if nonlinearity == "relu":
                np.multiply(dhn, a > 0, out=da)
            else:
                np.multiply(dhn, 1.0 - a * a, out=da)
            dh = da @ w_hh
        if keep is not None:
            dh += keep
    return dgx, dgh, dh, dc


def _recurrent(cell, x, args, returns, bidirectional, initial_state, lengths, nonlinearity, save):
    n_states = 2 if cell == "lstm" else 1
    dirs = 2 if bidirectional else 1
    states, lens, params = _rnn_args(args, n_states, initial_state, lengths, dirs)
    n, time, _ = x.shape
    h = params[0][1].shape[1]
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))
    mask = _step_mask(lens, time)
    outs, finals, res = [], [], []
    for d in range(dirs):
        init = [s[:, d * h : (d + 1) * h] for s in states]
        if not init:
            init = [np.zeros((n, h), dtype=x.dtype)] * n_states
        out, final, r = _direction_forward(cell, xt, *params[d], init, mask, d == 1, nonlinearity)
        outs.append(out)
        finals.append(final[0])
        res.append(r)
    if returns == "last":
        y = np.concatenate(finals, axis=1) if dirs == 2 else finals[0]
    else:
        y = (np.concatenate(outs, axis=2) if dirs == 2 else outs[0]).transpose(1, 0, 2)
    return (y, (xt, mask, res)) if save else y


def _recurrent_vjp(
    cell, g, args, returns, bidirectional, initial_state, lengths, nonlinearity, res, needs
):
    # BPTT per direction, then dW_ih = dG^T x, dW_hh = dG_h^T h_prev, dx = dG W_ih, each one
    # GEMM over all steps.
    xt, mask, per_dir = res
    n_states = 2 if cell == "lstm" else 1
    dirs = 2 if bidirectional else 1
    _, lens, params = _rnn_args(args, n_states, initial_state, lengths, dirs)
    time, n, f = xt.shape
    h = params[0][1].shape[1]
    gt = g.transpose(1, 0, 2) if returns == "sequences" else None
    x_rows = xt.reshape(time * n, f)
    dx = None
    d_states, d_params = [[] for _ in range(n_states)], []
    for d in range(dirs):
        w_ih, w_hh = params[d][0], params[d][1]
        cols = slice(d * h, (d + 1) * h)
        g_seq = gt[:, :, cols] if gt is not None else None
        g_last = g[:, cols] if gt is None else None
        dgx, dgh, dh0, dc0 = _direction_vjp(
            cell, g_seq, g_last, xt, w_hh, per_dir[d], mask, d == 1, nonlinearity
        )
        d_states[0].append(dh0)
        if cell == "lstm":
            d_states[1].append(dc0)
        rows = dgx.shape[2]
        gx_rows = dgx.reshape(time * n, rows)
        gh_rows = dgh.reshape(time * n, rows)
        hprev = per_dir[d][1]
        d_params += [
            gx_rows.T @ x_rows,
            gh_rows.T @ hprev.reshape(time * n, h),
            gx_rows.sum(axis=0),
            gh_rows.sum(axis=0),
        ]
        if needs is None or needs[0]:
            part = gx_rows @ w_ih
            dx = part if dx is None else dx + part
    grads = [dx.reshape(time, n, f).transpose(1, 0, 2) if dx is not None else None]
    if initial_state:
        grads += [np.concatenate(s, axis=1) if dirs == 2 else s[0] for s in d_states]
    if lengths:
        grads.append(None)
    return tuple(grads + d_params)


@kernel("lstm", residuals=True)
def lstm(x, *args, returns, bidirectional, initial_state, lengths, save=False):
    return _recurrent("lstm", x, args, returns, bidirectional, initial_state, lengths, "tanh", save)


@vjp("lstm", reads=("args", "res"), input_shaped=True)
def lstm_vjp(g, y, x, *args, returns, bidirectional, initial_state, lengths, res, needs=None):
    # BPTT: dc_{t-1} = dc_t f, dh_{t-1} = dgates_t W_hh; weight gradients over all steps
    return _recurrent_vjp(
        "lstm", g, args, returns, bidirectional, initial_state, lengths, "tanh", res, needs
    )


@kernel("gru", residuals=True)
def gru(x, *args, returns, bidirectional, initial_state, lengths, save=False):
    return _recurrent("gru", x, args, returns, bidirectional, initial_state, lengths, "tanh", save)


@vjp("gru", reads=("args", "res"), input_shaped=True)
def gru_vjp(g, y, x, *args, returns, bidirectional, initial_state, lengths, res, needs=None):
    # BPTT: dh_{t-1} = dgates_h,t W_hh + dh_t z_t; weight gradients over all steps
    return _recurrent_vjp(
        "gru", g, args, returns, bidirectional, initial_state, lengths, "tanh", res, needs
    )


@kernel("rnn", residuals=True)
def rnn(x, *args, returns, bidirectional, initial_state, lengths, nonlinearity, save=False):
    return _recurrent(
        "rnn", x, args, returns, bidirectional, initial_state, lengths, nonlinearity, save
    )


@vjp("rnn", reads=("args", "res"), input_shaped=True)
def rnn_vjp(
    g, y, x, *args, returns, bidirectional, initial_state, lengths, nonlinearity, res, needs=None
):
    # BPTT: dh_{t-1} = (dh_t act'(a_t)) W_hh; weight gradients over all steps
    return _recurrent_vjp(
        "rnn", g, args, returns, bidirectional, initial_state, lengths, nonlinearity, res, needs
    )
