"""Kernels for graphspec.ops.embedding: a row lookup, and its VJP scattered to the rows used.

The scatter is one ``np.bincount`` over flat (row, column) positions. Measured against
``np.add.at`` and a sort + ``np.add.reduceat`` (numpy 2.4, one thread, float64): vocab 100
x dim 32 with 3,200 ids, 0.24 ms against 1.2 ms and 0.32 ms; vocab 10,000 x dim 128 with
3,200 ids, 1.7 ms against 5.6 ms and 6.0 ms; vocab 50,000 x dim 256 with 4,096 ids,
16 ms against 26 ms and 27 ms (there, writing the zeros of the table dominates).
"""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp


def _check_token_ids(ids, vocab):
    # np.take would raise a bare IndexError past the end and wrap negative ids silently.
    if ids.size and (ids.min() < 0 or ids.max() >= vocab):
        bad = ids[(ids < 0) | (ids >= vocab)].reshape(-1)[0]
        raise ValueError(
            f"embedding: token id {bad} is outside the vocabulary of {vocab} (ids 0..{vocab - 1})"
        )


@kernel("embedding")
def embedding(ids, weight, *, padding_idx):
    _check_token_ids(ids, weight.shape[0])
    return np.take(weight, ids, axis=0)


@vjp("embedding", reads=("ids", "weight"), input_shaped=True)
def embedding_vjp(g, y, ids, weight, *, padding_idx):
    # dL/dweight[v] = sum of g over the positions whose id is v; none to padding_idx's row
    vocab, dim = weight.shape
    flat = (ids.reshape(-1, 1).astype(np.intp) * dim + np.arange(dim)).reshape(-1)
    gw = np.bincount(flat, weights=g.reshape(-1), minlength=vocab * dim)
    gw = gw.reshape(vocab, dim).astype(weight.dtype, copy=False)
    if padding_idx is not None:
        gw[padding_idx] = 0
    return None, gw
