"""The IR: structure, types, checks, counts, and its serializations (JSON, DOT, text)."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import networkx as nx
import pytest
from paths import GALLERY, ROOT

import graphspec as gs
from graphspec.ir.build import build_expanded
from graphspec.ir.counts import check_param_budget, node_flops, node_params
from graphspec.ir.serialize import graph_from_json, ir_to_dot, ir_to_json, ir_to_text
from graphspec.ops import REGISTRY
from graphspec.spec.expand import expand

HEAD = "graphspec: 1\nname: t\ninputs:\n  x: [batch, 2]\n"


def build(body: str) -> gs.IR:
    return gs.build(gs.loads(HEAD + body, "t.yaml"))


def test_mul_of_a_value_with_itself_keeps_two_edges() -> None:
    ir = build("graph:\n  - {id: sq, op: mul, in: [x, x]}\n")
    assert ir.graph.number_of_edges("x", "sq") == 2
    assert sorted(k for _, _, k in ir.graph.in_edges("sq", keys=True)) == [0, 1]


def test_node_attributes() -> None:
    ir = build("graph:\n  - {id: h, op: linear, units: 3}\n")
    h = ir.op("h")
    assert h.kind == "op" and h.op == "linear" and h.role == "graph"
    assert h.inputs == ("x", "h.weight", "h.bias") and h.n_inputs == 1
    assert h.src is not None and (h.src.line, h.src.col) == (6, 5)
    w = ir.param("h.weight")
    assert w.kind == "param" and w.owner == "h" and w.init == "glorot_uniform"
    assert str(ir.type("h")) == "[batch, 3]"
    assert ir.order == list(nx.lexicographical_topological_sort(ir.graph))


def test_nodes_are_frozen() -> None:
    ir = build("graph:\n  - {id: h, op: linear, units: 3}\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ir.op("h").op = "tanh"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ir.param("h.weight").init = "zeros"  # type: ignore[misc]
    assert isinstance(ir.op("h").inputs, tuple)


def test_build_reads_the_expanded_spec_without_changing_it() -> None:
    # A block instance read by its name (an alias), an initializer written for an op's only
    # parameter, a penalty that finds its weights, and state buffers: each used to be
    # written back into the expanded nodes.
    text = HEAD + (
        "  y: [batch, 1]\n"
        "blocks:\n  cell:\n    graph:\n      - {id: h, op: linear, units: 2}\n"
        "      - {id: out, op: tanh}\n"
        "graph:\n  - {id: body, block: cell, in: x}\n  - {id: n, op: batch_norm, in: body}\n"
        "  - {id: w, op: param, shape: [2, 1], init: ones}\n"
        "  - {id: p, op: matmul, in: [n, w]}\n"
        "loss:\n  - {op: mse, in: [p, y]}\n  - {op: l2_penalty, weight: 0.1}\n"
    )
    spec = gs.loads(text, "t.yaml")
    ex = expand(spec)
    before = copy.deepcopy(ex)
    first = build_expanded(ex, spec)
    assert ex == before
    second = build_expanded(ex, spec)
    assert ex == before
    assert dict(first.graph.nodes(data=True)) == dict(second.graph.nodes(data=True))
    assert first.op("n").inputs[0] == "body.out"  # the alias, resolved in the IR only
    assert first.param("w.value").init == "ones"
    assert first.op("l2_penalty").inputs == ("w.value", "body.h.weight")  # creation order


def test_grad_flags_follow_the_op_declaration() -> None:
    ir = build(
        "  y: [batch, 3]\ngraph:\n  - {id: h, op: linear, in: x, units: 3}\n"
        "  - {id: n, op: batch_norm}\nloss:\n  - {op: mse, in: [n, y]}\n"
    )
    bn = ir.op("n")
    assert bn.state == ("running_mean", "running_var")
    assert bn.data_inputs == ("h",)
    assert bn.param_args == ("n.gamma", "n.beta")
    assert bn.state_args == ("n.running_mean", "n.running_var")
    # The input and both parameters take gradients; the running statistics never do.
    assert bn.grad_flags == [True, True, True, False, False]
    assert bn.grad_flags == REGISTRY["batch_norm"].differentiable(3, 1) + [False, False]
    # A loss's target is declared non-differentiable.
    mse = ir.op("mse")
    assert mse.inputs == ("n", "y")
    assert mse.grad_flags == [True, False] == REGISTRY["mse"].differentiable(2, 2)


def test_counts() -> None:
    ir = build("graph:\n  - {id: h, op: linear, units: 3}\n  - {op: tanh}\n")
    assert ir.param_count() == 2 * 3 + 3
    assert node_params(ir, "h") == 9
    assert node_flops(ir, "h") == 2 * 2 * 3
    assert node_flops(ir, "h", batch=10) == 10 * 2 * 2 * 3
    check_param_budget(ir, 9)
    with pytest.raises(gs.SpecError, match="9 parameters, more than the budget of 8"):
        check_param_budget(ir, 8)


def test_warnings_for_dead_nodes_and_params_that_never_train() -> None:
    body = (
        "  y: [batch, 1]\ngraph:\n  - {id: a, op: linear, in: x, units: 1}\n"
        "  - {id: b, op: linear, in: x, units: 1}\n  - {id: dead, op: tanh, in: x}\n"
        "outputs: [a, b]\nloss:\n  - {op: mse, in: [a, y]}\n"
    )
    ir = build(body)
    messages = [m for m, _ in ir.warnings]
    assert "node 'dead' (tanh) is never used" in messages
    assert "parameter 'b.weight' never reaches the loss: it will not train" in messages
    assert all(loc is not None and loc.line for _, loc in ir.warnings)


def test_absurd_parameter_is_refused_before_allocation() -> None:
    with pytest.raises(gs.SpecError, match="one parameter may hold at most"):
        build("graph:\n  - {op: linear, units: 5000000000}\n")


def test_shape_error_inside_a_block_names_the_use() -> None:
    head = HEAD.replace("inputs:\n", "inputs:\n  z: [batch, 3]\n") + (
        "blocks:\n  b:\n    graph:\n      - {id: s, op: add, in: [$in, z]}\n"
    )
    with pytest.raises(gs.SpecError) as info:
        gs.build(gs.loads(head + "graph:\n  - {block: b, in: x}\n", "t.yaml"))
    notes = [text for text, _ in info.value.notes]
    assert "in block 'b' used here" in notes


# ---- serializations ---------------------------------------------------------------------------


@pytest.mark.parametrize("spec", GALLERY, ids=[s.stem for s in GALLERY])
def test_json_round_trip_is_equal(spec: Path) -> None:
    ir = gs.build(gs.load(spec))
    data = json.loads(json.dumps(ir_to_json(ir)))  # through real JSON text
    g = graph_from_json(data)
    assert isinstance(g, nx.MultiDiGraph)
    # Equal nodes and edges (with attributes and keys); the IR's own facts (outputs,
    # losses...) travel in the graph attributes.
    assert g.adj == ir.graph.adj
    assert g.graph["outputs"] == ir.outputs
    for nid, attrs in ir.graph.nodes(data=True):
        assert g.nodes[nid] == attrs
    assert list(g.nodes) == list(ir.graph.nodes)
    assert data["graph"]["losses"] == [[lid, w] for lid, w in ir.losses]


def test_text_table_lists_nodes_in_reading_order() -> None:
    body = (
        "  y: [batch, 1]\ngraph:\n  - {id: h, op: linear, in: x, units: 1}\n"
        "loss:\n  - {op: mse, in: [h, y]}\n  - {op: l2_penalty, weight: 0.5}\n"
    )
    text = ir_to_text(build(body))
    ids = [line.split()[0] for line in text.splitlines()[3:7]]
    assert ids == ["x", "y", "h", "mse"] or ids[:3] == ["x", "y", "h"]
    assert "loss: mse + 0.5 * l2_penalty" in text
    assert "parameters: 3 trainable in 2 tensors" in text


def test_dot_is_accepted_by_graphviz() -> None:
    ir = gs.build(gs.load(ROOT / "specs" / "residual_mlp.yaml"))
    dot = ir_to_dot(ir)
    assert dot.count("subgraph") == 4
    assert '"body.0.h.weight"' in dot
    assert '"body.0.h.weight"' not in ir_to_dot(ir, show_params=False)
    if shutil.which("dot") is None:
        pytest.skip("Graphviz is not installed")
    done = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
