"""Element kinds at validation: each op input declares the dtype it takes (float by default,
int for indices, any for ops that only move values and for targets), and the IR refuses an
argument of another kind, located at its reference, before any kernel sees it."""

from __future__ import annotations

import numpy as np
import pytest

import graphspec as gs
from graphspec.ops import REGISTRY
from graphspec.ops.registry import iter_samples

HEAD = (
    "graphspec: 1\nname: t\ninputs:\n"
    "  x: [batch, 3]\n"
    "  ids: {shape: [batch, 3], dtype: int}\n"
    "  img: {shape: [batch, 1, 4, 4], dtype: int}\n"
    "  t: {shape: [batch], dtype: int}\n"
    "graph:\n"
)


def build(graph: str, outputs: str = "[y]") -> gs.IR:
    return gs.build(gs.loads(HEAD + graph + f"outputs: {outputs}\n", "t.yaml"))


@pytest.mark.parametrize(
    ("node", "message", "ref"),
    [
        (
            "{id: y, op: linear, in: ids, units: 2}",
            "'y' (linear) takes a float tensor as its input 'x', but 'ids' is [batch, 3] int",
            "ids",
        ),
        (
            "{id: y, op: matmul, in: [x, ids]}",
            "'y' (matmul) takes a float tensor as its input 'b', but 'ids' is [batch, 3] int",
            "ids",
        ),
        (
            "{id: y, op: conv2d, in: img, channels: 2, kernel: 3}",
            "'y' (conv2d) takes a float tensor as its input 'x', but 'img' is [batch, 1, 4, 4] int",
            "img",
        ),
        (
            "{id: y, op: relu, in: ids}",
            "'y' (relu) takes a float tensor as its input 'x', but 'ids' is [batch, 3] int",
            "ids",
        ),
        (  # the third of a variadic input
            "{id: y, op: add, in: [x, x, ids]}",
            "'y' (add) takes a float tensor as its input 'x', but 'ids' is [batch, 3] int",
            "ids",
        ),
        (  # an integer-only input given floats
            "{id: y, op: gather, in: [x, x]}",
            "'y' (gather) takes an int tensor as its input 'indices', but 'x' is [batch, 3]",
            "x",
        ),
    ],
)
def test_a_tensor_of_the_wrong_kind_is_a_located_error(node: str, message: str, ref: str) -> None:
    line = f"  - {node}"
    with pytest.raises(gs.SpecError) as info:
        build(line + "\n")
    assert message in str(info.value)
    loc = info.value.location
    # at the offending reference: the last one written in 'in'
    assert loc is not None and (loc.line, loc.col) == (9, line.rindex(ref) + 1)


def test_ops_that_move_values_and_targets_take_integers() -> None:
    # ids reshaped, sliced, concatenated and gathered; integer class targets for the loss
    ir = build(
        "  - {id: table, op: param, shape: [10, 2]}\n"
        "  - {id: flat, op: reshape, in: ids, shape: [batch, 3, 1]}\n"
        "  - {id: two, op: slice, in: ids, start: 1}\n"
        "  - {id: both, op: concat, in: [ids, two]}\n"
        "  - {id: emb, op: gather, in: [table, both]}\n"
        "  - {id: y, op: flatten, in: emb}\n"
        "  - {id: logits, op: linear, in: y, units: 3}\n",
        "[y, flat]\nloss:\n  - {op: cross_entropy, in: [logits, t]}",
    )
    assert ir.type("flat").dtype == "int" and ir.type("y").dtype == "float"
    assert ir.type("both").shape == ("batch", 5)


def test_every_input_a_sample_feeds_integers_declares_it() -> None:
    """The registry's declarations match the samples conformance runs: an input given an
    integer or boolean array declares dtype int or any (a new op that takes ids, such as an
    embedding, must say so, or its own spec would be refused)."""
    for name, opdef in REGISTRY.items():
        for sample in iter_samples(opdef.attrs):
            for inp in opdef.inputs:
                values = sample.inputs.get(inp.name)
                if values is None:
                    continue
                arrays = values if inp.variadic else [values]
                if any(np.asarray(a).dtype.kind in "iub" for a in arrays):
                    assert inp.dtype in ("int", "any"), f"{name}'s input {inp.name}"
