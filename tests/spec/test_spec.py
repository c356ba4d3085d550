"""Loading, validation and expansion: the spec front end."""

from __future__ import annotations

from pathlib import Path

import pytest
from paths import GALLERY

import graphspec as gs
from graphspec.spec.expand import expand
from graphspec.spec.requirements import require_training
from graphspec.spec.source import MAX_DEPTH, parse_yaml

HEAD = "graphspec: 1\nname: t\ninputs:\n  x: [batch, 2]\n"


def load(body: str, head: str = HEAD) -> gs.IR:
    return gs.build(gs.loads(head + body, "t.yaml"))


def error(body: str, head: str = HEAD) -> gs.SpecError:
    with pytest.raises(gs.SpecError) as info:
        load(body, head)
    return info.value


@pytest.mark.parametrize("spec", GALLERY, ids=[s.stem for s in GALLERY])
def test_gallery_specs_load_and_build(spec: Path) -> None:
    ir = gs.build(gs.load(spec))
    assert ir.param_count() > 0
    assert not ir.warnings, ir.warnings
    require_training(ir.spec)  # every gallery spec can be trained


def test_gallery_has_the_first_entries() -> None:
    names = {s.stem for s in GALLERY}
    assert {"xor", "logistic_blobs", "residual_mlp"} <= names


# ---- source map ------------------------------------------------------------------------------


def test_source_map_keeps_value_and_key_locations() -> None:
    data, smap = parse_yaml(HEAD + "graph:\n  - {op: linear, units: 4}\n", "f.yaml")
    assert data["graph"][0]["units"] == 4
    value, key = smap.values[("graph", 0, "units")], smap.keys[("graph", 0, "units")]
    assert (value.line, value.col) == (6, 25)
    assert (key.line, key.col) == (6, 18)
    # A path without its own entry falls back to its nearest ancestor.
    assert smap.locate(("graph", 0, "nothing")).col == 5


def test_timestamps_stay_strings_and_keys_stay_as_written() -> None:
    data, _ = parse_yaml("doc: 2024-01-02\n1.5: a\nnull: b\n", "f.yaml")
    assert data == {"doc": "2024-01-02", "1.5": "a", "null": "b"}


def test_aliases_expand_within_limits() -> None:
    ir = load("graph:\n  - {op: linear, units: &w 4}\n  - {op: linear, units: *w}\n")
    assert str(ir.type("linear_1")) == "[batch, 4]"
    data, _ = parse_yaml("a: &a [1, 2]\nb: [*a, *a]\n", "f.yaml")
    assert data["b"] == [[1, 2], [1, 2]]


def test_nesting_limit_is_an_error_not_a_crash() -> None:
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(gs.SpecError, match="nests more than"):
        parse_yaml(f"a: {deep}\n", "f.yaml")
    parse_yaml("a: " + "[" * 50 + "]" * 50 + "\n", "f.yaml")


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(gs.SpecError, match="recursive alias|alias bomb"):
        parse_yaml("a: &a [1, *a]\n", "f.yaml")


def test_loads_errors_quote_the_string_source() -> None:
    with pytest.raises(gs.SpecError) as info:
        gs.build(gs.loads(HEAD + "graph:\n  - {op: lineer}\n", "inline.yaml"))
    text = info.value.render(HEAD + "graph:\n  - {op: lineer}\n")
    assert "inline.yaml:6:10: error: unknown op 'lineer'" in text
    assert "  - {op: lineer}" in text


# ---- expansion ---------------------------------------------------------------------------------


def test_sequential_shorthand_reads_the_previous_node() -> None:
    ir = load("graph:\n  - {op: linear, units: 3}\n  - {op: tanh}\n  - {op: linear, units: 1}\n")
    assert ir.node("linear_0").inputs[0] == "x"
    assert ir.node("tanh_0").inputs == ("linear_0",)
    assert ir.node("linear_1").inputs[0] == "tanh_0"
    assert ir.outputs == {"linear_1": "linear_1"}


def test_blocks_repeat_params_and_skip_input() -> None:
    head = HEAD + (
        "blocks:\n  res:\n    params: {width: 2, act: relu}\n    graph:\n"
        "      - {id: h, op: linear, units: $width}\n      - {id: a, op: $act}\n"
        "      - {id: out, op: add, in: [$in, a]}\n"
    )
    ir = load(
        "graph:\n  - {id: body, block: res, repeat: 3, act: tanh}\n"
        "  - {op: linear, in: body, units: 1}\n",
        head,
    )
    assert ir.node("body.0.h").inputs[0] == "x"
    assert ir.node("body.0.a").op == "tanh"
    assert ir.node("body.0.out").inputs == ("x", "body.0.a")
    assert ir.node("body.2.out").inputs == ("body.1.out", "body.2.a")
    assert ir.node("linear_0").inputs[0] == "body.2.out"  # the instance id is its last node
    assert ir.node("body.1.h").block == ("res",)
    assert ir.node("body.1.h").cluster == ("body.1",)
    assert ir.node("body.1.h.weight").cluster == ("body.1",)


def test_single_block_instance_prefix_and_nested_clusters() -> None:
    head = HEAD + (
        "blocks:\n  inner:\n    graph:\n      - {id: t, op: tanh}\n"
        "  outer:\n    graph:\n      - {id: i, block: inner, repeat: 2}\n"
        "      - {id: s, op: sigmoid}\n"
    )
    ir = load("graph:\n  - {id: o, block: outer}\n", head)
    assert ir.node("o.i.1.t").cluster == ("o", "o.i.1")
    assert ir.node("o.s").inputs == ("o.i.1.t",)


def test_sharing_a_parameter_adds_no_parameter() -> None:
    body = (
        "graph:\n  - {id: a, op: linear, in: x, units: 2}\n"
        "  - {id: b, op: linear, in: a, units: 2, params: {weight: a.weight}}\n"
    )
    ir = load(body)
    assert ir.params == ["a.weight", "a.bias", "b.bias"]
    assert ir.node("b").inputs == ("a", "a.weight", "b.bias")


def test_param_node_is_read_by_its_id() -> None:
    body = (
        "graph:\n  - {id: w, op: param, shape: [2, 3], init: {value: zeros}}\n"
        "  - {id: p, op: matmul, in: [x, w]}\n"
    )
    ir = load(body)
    assert ir.params == ["w.value"]
    assert ir.param("w.value").init == "zeros"
    assert str(ir.type("p")) == "[batch, 3]"


def test_loss_terms_and_weights() -> None:
    body = (
        "graph:\n  - {id: h, op: linear, in: x, units: 2}\n"
        "loss:\n  - {op: mse, in: [h, x]}\n  - {op: l2_penalty, weight: 0.01}\n"
    )
    ir = load(body)
    assert ir.losses == [("mse", 1.0), ("l2_penalty", 0.01)]
    assert ir.node("l2_penalty").inputs == ("h.weight",)  # weights, never biases


def test_weight_outside_the_loss_is_an_error() -> None:
    e = error("graph:\n  - {op: tanh, weight: 2}\n")
    assert "'weight' scales loss terms" in e.message
    assert (e.location.line, e.location.col) == (6, 16)


def test_expand_gives_every_node_an_id_and_inputs() -> None:
    spec = gs.loads(HEAD + "graph:\n  - {op: tanh}\n  - {op: tanh}\n", "t.yaml")
    ex = expand(spec)
    assert [(n.id, n.inputs) for n in ex.nodes] == [("tanh_0", ["x"]), ("tanh_1", ["tanh_0"])]


def test_unknown_key_error_located_at_the_key() -> None:
    e = error("graph:\n  - {op: linear, unist: 3}\n")
    assert e.message == "unknown key 'unist' for op 'linear'"
    assert (e.location.line, e.location.col) == (6, 18)
    assert e.hint == "did you mean 'units'?"


def test_union_members_get_their_own_did_you_mean() -> None:
    body = (
        "graph:\n  - {op: tanh}\n"
        "train:\n  data: {source: xor}\n  optimizer: {name: adam, momentun: 0.9}\n"
    )
    e = error(body)
    assert e.message == "unknown key 'momentun' in train.optimizer"
    assert e.hint is not None and "momentum" not in e.hint  # adam has no momentum
    body = body.replace("adam", "sgd")
    assert error(body).hint == "did you mean 'momentum'?"


# ---- requirements --------------------------------------------------------------------------------


def test_require_training() -> None:
    spec = gs.loads(HEAD + "graph:\n  - {op: tanh}\n", "t.yaml")
    with pytest.raises(gs.SpecError, match="training needs a loss"):
        require_training(spec)
    spec = gs.loads(
        HEAD + "  y: [batch, 2]\ngraph:\n  - {op: tanh, in: x}\n"
        "loss:\n  - {op: mse, in: [tanh_0, y]}\n",
        "t.yaml",
    )
    with pytest.raises(gs.SpecError, match="'train' section"):
        require_training(spec)
