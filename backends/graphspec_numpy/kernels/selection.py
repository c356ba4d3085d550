"""Kernels for graphspec.ops.selection.

``where``'s VJP returns gradients in the broadcast output's shape; the driver sums them down.
"""

import numpy as np

from graphspec_numpy.kernels import kernel, vjp


@kernel("where")
def where(cond, a, b):
    return np.where(cond != 0, a, b)


@vjp("where", reads=("cond",))
def where_vjp(g, y, cond, a, b):
    # dL/da = g [cond] ; dL/db = g [not cond] ; cond takes none
    taken = cond != 0
    return None, np.where(taken, g, 0), np.where(taken, 0, g)


def _pad_index(n, before, after, mode):
    """For each position of an axis of size ``n`` padded by ``before``/``after`` in mode
    reflect or replicate, the input position it copies."""
    i = np.arange(-before, n + after)
    if mode == "reflect":
        return np.abs(n - 1 - np.abs(i - (n - 1)))  # mirror at 0 and at n - 1
    return np.clip(i, 0, n - 1)


@kernel("pad")
def pad(x, *, pads, mode, value):
    lead = x.ndim - len(pads)
    if mode == "constant":
        widths = [(0, 0)] * lead + [tuple(p) for p in pads]
        return np.pad(x, widths, mode="constant", constant_values=value)
    y = x
    for ax, (before, after) in enumerate(pads, start=lead):
        y = np.take(y, _pad_index(y.shape[ax], before, after, mode), axis=ax)
    return y


@vjp("pad", reads=("x",), input_shaped=True)
def pad_vjp(g, y, x, *, pads, mode, value):
    # dL/dx[j] = sum of g over the output positions that copy x[j] (the interior for
    # constant; np.add.at along each padded axis, last first, for reflect/replicate)
    lead = x.ndim - len(pads)
    if mode == "constant":
        inner = tuple(slice(b, b + n) for (b, _), n in zip(pads, x.shape[lead:]))
        return (g[(slice(None),) * lead + inner].copy(),)
    for ax in reversed(range(lead, x.ndim)):
        before, after = pads[ax - lead]
        shape = list(g.shape)
        shape[ax] = x.shape[ax]
        gx = np.zeros(shape, dtype=g.dtype)
        index = (slice(None),) * ax + (_pad_index(x.shape[ax], before, after, mode),)
        np.add.at(gx, index, g)
        g = gx
    return (g,)


def _einsum_terms(equation):
    """(each operand's letters, the output's letters) of a validated explicit equation."""
    lhs, out = equation.replace(" ", "").split("->")
    return lhs.split(","), out


@kernel("einsum")
def einsum(*xs, equation):
    # optimize: pairs of operands go through BLAS (tensordot) where the letters allow it.
    return np.einsum(equation.replace(" ", ""), *xs, optimize=len(xs) > 1)


@vjp("einsum", reads=("xs",), input_shaped=True)
def einsum_vjp(g, y, *xs, equation, needs=None):
    # dL/dx_i = einsum(g, the other operands -> x_i's letters), broadcast along the letters
    # only x_i has (summed in the forward, so each of their positions gets the same value)
    terms, out = _einsum_terms(equation)
    grads = []
    for i, (term, x) in enumerate(zip(terms, xs)):
        if needs is not None and not needs[i]:
            grads.append(None)
            continue
        others = terms[:i] + terms[i + 1 :]
        kept = "".join(c for c in term if c in out or any(c in t for t in others))
        operands = [g] + [xs[j] for j in range(len(xs)) if j != i]
        gk = np.einsum(
            ",".join([out] + others) + "->" + kept, *operands, optimize=len(operands) > 1
        )
        shape = [d if c in kept else 1 for c, d in zip(term, x.shape)]
        grads.append(np.broadcast_to(gk.reshape(shape), x.shape).copy())
    return tuple(grads)
