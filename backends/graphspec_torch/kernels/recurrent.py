"""Kernels for graphspec.ops.recurrent: torch's fused recurrent ops (``torch.lstm``,
``torch.gru``, ``torch.rnn_tanh``, ``torch.rnn_relu``), called as ``nn.LSTM`` calls them
(cuDNN on a GPU), over parameters already in their layout.

``lengths`` go through ``pack_padded_sequence``, which wants them on the CPU: one small
copy per call (a synchronization on a GPU), as with ``nn.LSTM`` on packed sequences. They
are clamped to ``1..time``: the training data check refuses others before they get here,
and a kernel never raises torch's own error for them.
"""

import torch
from torch import nn

from graphspec_torch.kernels import kernel


def _fused_recurrent(fn, x, args, n_states, returns, bidirectional, initial_state, lengths):
    k = n_states if initial_state else 0
    lens = args[k] if lengths else None
    params = list(args[k + (1 if lengths else 0) :])
    dirs = 2 if bidirectional else 1
    n, time = x.shape[0], x.shape[1]
    h = params[1].shape[1]
    if initial_state:
        # [batch, directions * units] -> torch's [directions, batch, units]
        hx = [s.reshape(n, dirs, h).transpose(0, 1).contiguous() for s in args[:k]]
    else:
        hx = [x.new_zeros(dirs, n, h)] * n_states
    # train=True: cuDNN keeps what its backward needs only in training mode (no dropout here).
    if lens is None:
        out = fn(
            x,
            tuple(hx) if n_states == 2 else hx[0],
            params,
            True,
            1,
            0.0,
            True,
            bidirectional,
            True,
        )
        seq, h_n = out[0], out[1]
    else:
        packed = nn.utils.rnn.pack_padded_sequence(
            x,
            lens.to("cpu", torch.int64).clamp(1, time),
            batch_first=True,
            enforce_sorted=False,
        )
        hx = [s.index_select(1, packed.sorted_indices) for s in hx]
        out = fn(
            packed.data,
            packed.batch_sizes,
            tuple(hx) if n_states == 2 else hx[0],
            params,
            True,
            1,
            0.0,
            True,
            bidirectional,
        )
        h_n = out[1].index_select(1, packed.unsorted_indices)
        seq = None
        if returns == "sequences":
            seq = nn.utils.rnn.pad_packed_sequence(
                nn.utils.rnn.PackedSequence(
                    out[0], packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
                ),
                batch_first=True,
                total_length=time,
            )[0]
    if returns == "last":
        return h_n.transpose(0, 1).reshape(n, dirs * h)
    return seq


@kernel("lstm")
def lstm(x, *args, returns, bidirectional, initial_state, lengths):
    return _fused_recurrent(torch.lstm, x, args, 2, returns, bidirectional, initial_state, lengths)


@kernel("gru")
def gru(x, *args, returns, bidirectional, initial_state, lengths):
    return _fused_recurrent(torch.gru, x, args, 1, returns, bidirectional, initial_state, lengths)


@kernel("rnn")
def rnn(x, *args, returns, bidirectional, initial_state, lengths, nonlinearity):
    fn = torch.rnn_relu if nonlinearity == "relu" else torch.rnn_tanh
    return _fused_recurrent(fn, x, args, 1, returns, bidirectional, initial_state, lengths)
