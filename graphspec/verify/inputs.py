"""What ``verify`` feeds every backend: one batch of inputs and the noise of every stochastic node.

The inputs come from the spec's ``train.data`` when the training driver can produce it (the
numbers a user trains on exercise the ranges that matter), else from random draws shaped by
the IR's input types with a fixed small batch.  Noise is drawn by the core, once, shaped like
the argument each stochastic op declares (``Attrs.noise()``), so every backend sees the same
numbers.
"""

from __future__ import annotations

import numpy as np

from graphspec.ir.graph import IR
from graphspec.ir.node import OpNode
from graphspec.ops.recurrent import Recurrent
from graphspec.train.data import input_roles, load_data

Arrays = dict[str, np.ndarray]
DEFAULT_BATCH = 8
MAX_BATCH = 32  # finite differences evaluate the loss many times: keep batches small
POOL_BATCHES = 4  # the pool the optimizer steps draw their batches from


def data_pool(ir: IR, rng: np.random.Generator) -> tuple[Arrays, str]:
    """Training arrays to draw batches from, and where they came from."""
    spec = ir.spec
    train = spec.train if spec is not None else None
    why = "the spec has no train.data"
    if spec is not None and train is not None:
        try:
            split = load_data(spec, ir, ir.seed).splits["train"]
            arrays = {k: np.asarray(v) for k, v in split.items() if k in ir.inputs}
            if set(arrays) == set(ir.inputs):
                return arrays, f"train.data ({train.data.source or train.data.path})"
            why = "train.data does not fill every input"
        except Exception as e:  # verification still checks gradients on random inputs
            why = f"train.data unavailable ({type(e).__name__}: {e})"
    n = DEFAULT_BATCH * POOL_BATCHES
    return random_inputs(ir, n, rng), f"random inputs (pool of {n}; {why})"


def batch_size(ir: IR, pool: Arrays) -> int:
    n = len(next(iter(pool.values()))) if pool else DEFAULT_BATCH
    train = ir.spec.train if ir.spec is not None else None
    want = train.batch_size if train is not None else DEFAULT_BATCH
    want = n if want == "full" else int(want)
    return max(1, min(want, n, MAX_BATCH))


def random_inputs(ir: IR, batch: int, rng: np.random.Generator) -> Arrays:
    """Inputs shaped by their types, every symbolic dimension taken as ``batch``.

    Integer inputs are drawn in the range their consumers accept; float inputs that only
    ever serve as a non-differentiable argument (targets) are drawn in [0, 1), so that
    probability-like targets are valid; other floats are standard normal."""

    targets = set(input_roles(ir)[1])
    out: Arrays = {}
    for nid in ir.inputs:
        t = ir.type(nid)
        shape = tuple(d if isinstance(d, int) else batch for d in t.shape)
        if t.dtype == "int":
            span = lengths_span(ir, nid, batch)
            lo, hi = span if span is not None else (0, int_range(ir, nid))
            out[nid] = rng.integers(lo, hi, size=shape)
        elif t.dtype == "bool":
            out[nid] = rng.random(shape) < 0.5
        elif nid in targets:
            out[nid] = rng.random(shape)
        else:
            out[nid] = rng.standard_normal(shape)
    return out


def _consumers(ir: IR, nid: str) -> list[tuple[OpNode, int]]:
    """(op node, argument position) for every read of ``nid``."""
    out = []
    for _, dst, data in ir.graph.out_edges(nid, data=True):
        node = ir.node(dst)
        if isinstance(node, OpNode):
            out.append((node, int(data.get("arg", 0))))
    return out


def int_range(ir: IR, nid: str) -> int:
    """An exclusive upper bound for the values of integer input ``nid``: the smallest of what
    its consumers allow (an embedding's vocabulary, a classifier's classes), else 2."""
    bounds: list[int] = []
    for node, pos in _consumers(ir, nid):
        attrs = node.attrs
        for key in ("classes", "num_classes", "vocab", "vocab_size", "depth", "num_embeddings"):
            v = getattr(attrs, key, None)
            if isinstance(v, int) and v > 0:
                bounds.append(v)
        args = node.inputs
        n_in = node.n_inputs
        if len(args) > n_in:  # an op with parameters indexes rows of its first one
            first = ir.type(args[n_in]).shape
            if first and isinstance(first[0], int):
                bounds.append(first[0])
                continue
        for i, a in enumerate(args[:n_in]):
            t = ir.type(a)
            if i != pos and t.dtype == "float" and t.rank >= 1 and isinstance(t.shape[-1], int):
                bounds.append(t.shape[-1])  # class labels index the last axis of the logits
    return max(1, min(bounds)) if bounds else 2


def lengths_span(ir: IR, nid: str, batch: int) -> tuple[int, int] | None:
    """``[lo, hi)`` for an input that recurrent ops read as sequence lengths: ``1..time``
    (a symbolic time taken as ``batch``, as the inputs are drawn), else None."""
    spans = []
    for node, pos in _consumers(ir, nid):
        if isinstance(node.attrs, Recurrent) and pos == node.attrs.lengths_position():
            time = ir.type(node.inputs[0]).shape[1]
            spans.append(time if isinstance(time, int) else batch)
    return (1, min(spans) + 1) if spans else None


def bind_dims(ir: IR, inputs: Arrays) -> dict[str, int]:
    """The value of each symbolic dimension (``batch``...) in this batch of inputs."""
    dims: dict[str, int] = {}
    for nid, value in inputs.items():
        if nid not in ir.graph:
            continue
        for d, n in zip(ir.type(nid).shape, np.shape(value)):
            if isinstance(d, str):
                dims.setdefault(d, int(n))
    return dims


def draw_noise(ir: IR, inputs: Arrays, rng: np.random.Generator) -> Arrays:
    """Noise for every stochastic node, keyed by node id, shaped like its declared argument."""
    dims = bind_dims(ir, inputs)
    fallback = next(iter(dims.values()), DEFAULT_BATCH)
    out: Arrays = {}
    for nid in ir.stochastic_nodes:
        node = ir.op(nid)
        nz = node.attrs.noise()
        if nz is None:
            continue
        like = node.inputs[nz.like]
        shape = tuple(
            d if isinstance(d, int) else dims.get(d, fallback) for d in ir.type(like).shape
        )
        out[nid] = rng.random(shape) if nz.kind == "uniform" else rng.standard_normal(shape)
    return out


def take(arrays: Arrays, index: np.ndarray) -> Arrays:
    return {k: np.asarray(v)[index] for k, v in arrays.items()}


def perturb(params: Arrays, dtype: str, rng: np.random.Generator, ulps: float = 1.0) -> Arrays:
    """``params`` moved by up to ``ulps`` units in the last place of ``dtype``, element by
    element: the size of the differences two backends' rounding makes."""
    eps = ulps * float(np.finfo(np.dtype(dtype)).eps)
    return {k: np.asarray(v) * (1.0 + eps * rng.uniform(-1.0, 1.0, np.shape(v)))
            for k, v in params.items()}
