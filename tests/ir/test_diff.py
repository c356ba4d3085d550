"""graphspec.ir.diff: two built specs compared node by node, parameter by parameter."""

from __future__ import annotations

from pathlib import Path

from paths import SPEC_DIR, XOR

import graphspec as gs
from graphspec.ir.diff import ABSENT, FieldChange, NodeDiff, ParamDiff, diff_irs
from graphspec.ir.graph import IR
from graphspec.spec.variants import expand_variants


def xor_ir(*overrides: str) -> IR:
    return gs.build(gs.load(XOR, overrides))


def variant_ir(spec: str, variant: str) -> IR:
    return gs.build(expand_variants(SPEC_DIR / spec)[variant])


def ir_of_text(text: str) -> IR:
    return gs.build(gs.loads(text))


def test_a_spec_equals_itself() -> None:
    d = diff_irs(xor_ir(), xor_ir())
    assert d.equivalent
    assert (d.nodes, d.params, d.settings) == ([], [], [])
    assert d.summary() == "equivalent: 8 nodes, 33 parameters"


def test_a_wider_layer_changes_its_node_the_shapes_after_it_and_the_parameters() -> None:
    d = diff_irs(xor_ir(), xor_ir("graph.hidden.units=16"))
    assert d.nodes == [
        NodeDiff(
            "changed",
            "hidden",
            "graph",
            "linear",
            "[batch, 16]",
            fields=(
                FieldChange("units", 8, 16),
                FieldChange("shape", "[batch, 8]", "[batch, 16]"),
            ),
        ),
        NodeDiff(
            "changed",
            "act",
            "graph",
            "tanh",
            "[batch, 16]",
            fields=(FieldChange("shape", "[batch, 8]", "[batch, 16]"),),
        ),
    ]
    assert d.params == [
        ParamDiff(
            "changed",
            "hidden.weight",
            "[2, 16]",
            True,
            16,
            32,
            fields=(FieldChange("shape", "[2, 8]", "[2, 16]"),),
        ),  # fmt: skip
        ParamDiff(
            "changed",
            "hidden.bias",
            "[16]",
            True,
            8,
            16,
            fields=(FieldChange("shape", "[8]", "[16]"),),
        ),  # fmt: skip
        ParamDiff(
            "changed",
            "logit.weight",
            "[16, 1]",
            True,
            8,
            16,
            fields=(FieldChange("shape", "[8, 1]", "[16, 1]"),),
        ),  # fmt: skip
    ]
    assert d.param_count == (33, 65)
    assert d.settings == []
    assert d.summary() == (
        "2 nodes changed; 3 parameter tensors changed, 33 -> 65 parameters (+32, +97.0%)"
    )
    assert d.to_json()["parameter_count"] == {"a": 33, "b": 65, "change": 32, "percent": 97.0}


def test_settings_are_compared_key_by_key() -> None:
    d = diff_irs(xor_ir(), xor_ir("train.optimizer.lr=0.05", "seed=3", "train.epochs=300"))
    # epochs: 300 is what the spec says already: no difference.
    assert d.settings == [FieldChange("seed", 0, 3), FieldChange("train.optimizer.lr", 0.5, 0.05)]
    assert (d.nodes, d.params) == ([], [])
    assert d.summary() == "nodes unchanged; 33 parameters (unchanged); 2 settings changed"


def test_a_section_one_side_lacks_is_one_change_with_its_whole_value() -> None:
    d = diff_irs(xor_ir(), xor_ir("train.early_stopping=null"))
    stopping = {
        "monitor": "val_loss", "patience": 20, "min_delta": 0.0, "mode": "auto",
        "restore_best": True,
    }  # fmt: skip
    assert d.settings == [FieldChange("train.early_stopping", stopping, None)]


def test_variants_of_a_gallery_spec_differ_by_their_patch() -> None:
    none, l2 = variant_ir("regularization.yaml", "none"), variant_ir("regularization.yaml", "l2")
    d = diff_irs(none, l2)
    assert d.nodes == [NodeDiff("added", "penalty", "loss", "l2_penalty", "[]")]
    assert d.params == []
    assert d.settings == [
        FieldChange(
            "expect",
            ["val_fit - train_fit > 0.4"],
            ["val_fit - train_fit < 0.3", "val_binary_accuracy >= 0.8"],
        )
    ]
    back = diff_irs(l2, none)  # the other way round: the same term, removed
    assert back.nodes == [NodeDiff("removed", "penalty", "loss", "l2_penalty", "[]")]


def test_an_op_change_reports_the_attributes_of_both_ops() -> None:
    d = diff_irs(
        variant_ir("regularization.yaml", "none"), variant_ir("regularization.yaml", "dropout")
    )
    drop = (FieldChange("op", "identity", "dropout"), FieldChange("p", ABSENT, 0.875))
    assert [(n.change, n.id, n.fields) for n in d.nodes] == [
        ("changed", "drop1", drop),
        ("changed", "drop2", drop),
    ]
    assert d.to_json()["nodes"][0]["fields"] == {"op": ["identity", "dropout"], "p": [None, 0.875]}


def test_block_parameters_reach_every_instance_and_the_initializers() -> None:
    d = diff_irs(
        variant_ir("vanishing_gradients.yaml", "sigmoid"),
        variant_ir("vanishing_gradients.yaml", "relu"),
    )
    assert [(n.id, n.fields) for n in d.nodes] == [
        (f"body.{i}.h", (FieldChange("op", "sigmoid", "relu"),)) for i in range(20)
    ]
    assert [(p.name, p.fields) for p in d.params] == [
        (f"body.{i}.s.weight", (FieldChange("init", "glorot_uniform", "he_normal"),))
        for i in range(20)
    ]
    assert d.param_count == ((2 * 32 + 32) + 19 * (32 * 32 + 32) + (32 + 1),) * 2


def test_renamed_nodes_are_paired_with_their_parameters(tmp_path: Path) -> None:
    renamed = XOR.read_text().replace("id: hidden,", "id: h1,").replace("id: act,", "id: act2,")
    d = diff_irs(xor_ir(), ir_of_text(renamed))
    assert d.nodes == [
        NodeDiff("renamed", "h1", "graph", "linear", "[batch, 8]", was="hidden"),
        NodeDiff("renamed", "act2", "graph", "tanh", "[batch, 8]", was="act"),
    ]
    assert [(p.change, p.was, p.name) for p in d.params] == [
        ("renamed", "hidden.weight", "h1.weight"),
        ("renamed", "hidden.bias", "h1.bias"),
    ]
    # The penalty reads h1.weight now, logit reads act2: through the renames, the same wiring.
    assert d.settings == []
    assert d.summary() == (
        "2 nodes renamed; 2 parameter tensors renamed, 33 parameters (unchanged)"
    )


def test_a_renamed_node_with_another_change_is_removed_and_added() -> None:
    renamed = XOR.read_text().replace("id: act, op: tanh", "id: act2, op: relu")
    d = diff_irs(xor_ir(), ir_of_text(renamed))
    assert [(n.change, n.id) for n in d.nodes] == [
        ("removed", "act"),
        ("added", "act2"),
        ("changed", "logit"),  # it reads another node now
    ]
    assert d.nodes[-1].fields == (FieldChange("inputs", ["act"], ["act2"]),)


TWINS = """\
graphspec: 1
name: twins
inputs:
  x: [batch, 2]
graph:
  - {{id: {0}, op: tanh, in: x}}
  - {{id: {1}, op: tanh, in: x}}
  - {{id: out, op: add, in: [{0}, {1}]}}
outputs: [out]
"""


def test_renames_that_could_be_either_way_are_not_guessed() -> None:
    d = diff_irs(ir_of_text(TWINS.format("t1", "t2")), ir_of_text(TWINS.format("u1", "u2")))
    assert [(n.change, n.id) for n in d.nodes] == [
        ("removed", "t1"),
        ("removed", "t2"),
        ("added", "u1"),
        ("added", "u2"),
        ("changed", "out"),
    ]
    assert d.nodes[-1].fields == (FieldChange("inputs", ["t1", "t2"], ["u1", "u2"]),)


def test_outputs_follow_renames_and_report_what_each_names() -> None:
    renamed = (
        XOR.read_text().replace("logit", "score").replace("bce_with_scores", "bce_with_logits")
    )
    d = diff_irs(xor_ir(), ir_of_text(renamed))
    assert [(n.change, n.was, n.id) for n in d.nodes if n.group == "graph"] == [
        ("renamed", "logit", "score")
    ]
    assert d.settings == [
        FieldChange("outputs.logit", "logit", ABSENT),
        FieldChange("outputs.score", ABSENT, "score"),
    ]
    assert d.to_json()["settings"][0] == {"key": "outputs.logit", "a": "logit", "b": None}


def test_no_percentage_from_zero_parameters() -> None:
    free = TWINS.format("t1", "t2")
    d = diff_irs(
        ir_of_text(free),
        ir_of_text(free.replace("op: tanh, in: x}", "op: linear, in: x, units: 2}")),
    )
    assert d.param_count == (0, 12)
    assert d.to_json()["parameter_count"]["percent"] is None
    assert d.summary().endswith("; 4 parameter tensors added, 0 -> 12 parameters (+12)")


def test_render_groups_changes_by_kind() -> None:
    d = diff_irs(variant_ir("regularization.yaml", "none"), variant_ir("regularization.yaml", "l2"))
    d.labels = ("a.yaml", "b.yaml")
    assert d.render() == (
        "--- a.yaml\n"
        "+++ b.yaml\n"
        "loss:\n"
        "  + penalty (l2_penalty) []\n"
        "settings:\n"
        "  ~ expect: [val_fit - train_fit > 0.4] -> "
        "[val_fit - train_fit < 0.3, val_binary_accuracy >= 0.8]\n"
        "1 node added; 17,025 parameters (unchanged); 1 setting changed\n"
    )


def test_what_the_ir_does_not_keep_is_no_difference() -> None:
    same = (
        XOR.read_text()
        .replace("graphspec: 1", "graphspec: 2")
        .replace("Two tanh layers", "Two layers of tanh")  # the doc
        .replace("# in: defaults to the previous node", "")  # a comment
        .replace("units: 8,", "units: 8, bias: true,")  # a default written out
    )
    assert same != XOR.read_text()
    assert diff_irs(xor_ir(), ir_of_text(same)).equivalent


def test_inputs_and_metrics_are_their_own_groups() -> None:
    d = diff_irs(xor_ir(), xor_ir("inputs.x=[batch, 3]", "train.metrics=[]"))
    assert d.nodes == [
        NodeDiff(
            "changed",
            "x",
            "input",
            None,
            "[batch, 3]",
            fields=(FieldChange("shape", "[batch, 2]", "[batch, 3]"),),
        ),
        NodeDiff("removed", "binary_accuracy", "metric", "binary_accuracy", "[]"),
    ]
    assert [(p.name, p.count_a, p.count_b) for p in d.params] == [("hidden.weight", 16, 24)]
    assert d.settings == [FieldChange("train.metrics", ["binary_accuracy"], [])]
    assert d.render().splitlines()[2:6] == [
        "inputs:",
        "  ~ x: shape [batch, 2] -> [batch, 3]",
        "metrics:",
        "  - binary_accuracy (binary_accuracy) []",
    ]


RESHAPE = """\
graphspec: 1
name: reshaped
inputs:
  x: [batch, 4]
graph:
  - {{id: r, op: reshape, in: x, shape: {0}}}
outputs: [r]
"""


def test_an_attribute_named_like_a_node_field_is_told_apart() -> None:
    d = diff_irs(
        ir_of_text(RESHAPE.format("[batch, 2, 2]")), ir_of_text(RESHAPE.format("[batch, 4, 1]"))
    )
    assert [n.fields for n in d.nodes] == [
        (
            FieldChange("attrs.shape", ["batch", 2, 2], ["batch", 4, 1]),
            FieldChange("shape", "[batch, 2, 2]", "[batch, 4, 1]"),
        )
    ]


def test_a_value_given_through_a_var_is_no_difference() -> None:
    with_vars = (
        XOR.read_text()
        .replace("graphspec: 1", "graphspec: 2\nvars: {width: 4}")
        .replace("units: 8,", "units: $width * 2,")
    )
    assert diff_irs(xor_ir(), ir_of_text(with_vars)).equivalent


def _residual(act: str, depth: int = 4) -> IR:
    return ir_of_text(
        "graphspec: 2\nname: r\ninputs: {x: [batch, 2]}\n"
        "blocks:\n  res:\n    params: {act: tanh}\n    graph:\n"
        "      - {id: h, op: linear, units: 8}\n      - {id: a, op: $act}\n"
        "      - {id: out, op: add, in: [$in, a]}\n"
        "graph:\n  - {id: stem, op: linear, in: x, units: 8}\n"
        f"  - {{id: body, block: res, repeat: {depth}, act: {act}}}\n"
        "outputs: [body]\n"
    )


def test_a_change_inside_a_repeated_block_is_one_line() -> None:
    d = diff_irs(_residual("tanh"), _residual("relu"))
    assert len(d.nodes) == 4  # the data keeps every instance (and --json lists them)
    lines = d.render().splitlines()
    assert lines[2:] == [
        "nodes:",
        "  ~ body.{0..3}.a (relu): op tanh -> relu  (each of 4)",
        "4 nodes changed; 312 parameters (unchanged)",
    ]


def test_fewer_repeats_fold_the_removed_instances() -> None:
    text = diff_irs(_residual("tanh", 5), _residual("tanh", 2)).render()
    assert "  - body.{2..4}.h (linear) [batch, 8]  (each of 3)" in text
    assert "  - body.{2..4}.h.weight [8, 8] (-64)  (each of 3)" in text
    assert "body.2." not in text and "body.3." not in text


def test_folded_indices_with_gaps() -> None:
    from graphspec.ir.diff import _folded

    lines = ["~ b.0.a: x", "~ b.1.a: x", "~ b.3.a: x", "~ c: y", "~ b.5.a: z"]
    assert _folded(lines) == ["~ b.{0..1,3}.a: x  (each of 3)", "~ c: y", "~ b.5.a: z"]
