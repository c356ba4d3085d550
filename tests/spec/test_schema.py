"""``graphspec schema``: a JSON Schema that accepts every real spec and flags bad keys."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from paths import GALLERY

from graphspec.ops import REGISTRY
from graphspec.spec.schema import spec_schema

jsonschema = pytest.importorskip("jsonschema")

SCHEMA = spec_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def problems(doc: Any) -> list[str]:
    return [e.message for e in VALIDATOR.iter_errors(doc)]


def best(doc: Any) -> str:
    err = jsonschema.exceptions.best_match(VALIDATOR.iter_errors(doc))
    return "" if err is None else err.message


BASE = {
    "graphspec": 1,
    "name": "t",
    "inputs": {"x": ["batch", 2]},
    "graph": [{"id": "h", "op": "linear", "units": 4}],
}


def with_changes(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc.update(changes)
    return doc


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"].endswith("2020-12/schema")
    json.dumps(SCHEMA)  # serializable as is


@pytest.mark.parametrize("spec", GALLERY, ids=[s.stem for s in GALLERY])
def test_gallery_specs_validate(spec: Path) -> None:
    assert problems(yaml.safe_load(spec.read_text())) == []


def test_every_op_has_a_node_schema() -> None:
    for name, opdef in REGISTRY.items():
        assert f"op_{name}" in SCHEMA["$defs"]
        if opdef.category == "op":
            assert f"op_{name}_in_block" in SCHEMA["$defs"]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_op_samples_fit_the_op_schema(name: str) -> None:
    """The schema and the attribute models agree: every sample's attributes are accepted."""
    opdef = REGISTRY[name]
    schema = {"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/op_{name}"}
    for sample in opdef.attrs.samples(np.random.default_rng(0)):
        attrs = json.loads(json.dumps(sample.attrs, default=lambda v: np.asarray(v).tolist()))
        # (jsonschema.validate would re-check the whole schema each time: slow)
        jsonschema.Draft202012Validator(schema).validate({"op": name, **attrs})


def test_unknown_attribute_is_flagged() -> None:
    doc = with_changes(graph=[{"op": "linear", "units": 4, "unist": 4}])
    assert "'unist' was unexpected" in best(doc)
    found = problems(with_changes(graph=[{"op": "linear", "unist": 4}]))
    assert any("'unist' was unexpected" in p for p in found)


def test_unknown_op_is_flagged() -> None:
    doc = with_changes(graph=[{"op": "lineer", "units": 4}])
    assert "'lineer' is not one of" in best(doc)


def test_wrong_attribute_type_is_flagged() -> None:
    assert problems(with_changes(graph=[{"op": "linear", "units": "four"}]))
    assert problems(with_changes(graph=[{"op": "linear", "units": 0}]))


def test_missing_version_and_unknown_top_level_key() -> None:
    doc = copy.deepcopy(BASE)
    del doc["graphspec"]
    assert "'graphspec' is a required property" in problems(doc)
    assert any("'grahp'" in p for p in problems(with_changes(grahp=[])))


def test_loss_section_takes_only_losses() -> None:
    assert problems(with_changes(loss=[{"op": "relu"}]))
    assert problems(with_changes(loss=[{"op": "mse", "in": ["h", "x"], "weight": 0.5}])) == []


def test_weight_only_on_loss_terms() -> None:
    assert problems(with_changes(graph=[{"op": "linear", "units": 4, "weight": 0.5}]))


def test_block_parameters_stand_anywhere_inside_blocks() -> None:
    doc = with_changes(
        blocks={
            "unit": {
                "params": {"width": 4, "act": "relu", "n": 2},
                "graph": [
                    {"op": "linear", "units": "$width", "bias": "$bias_flag"},
                    {"op": "$act"},
                    {"id": "w", "op": "param", "shape": ["$n", 3]},
                    {"op": "add", "in": ["$in", "linear_0"]},
                    {"block": "other", "repeat": "$n"},
                ],
            }
        },
        graph=[{"block": "unit", "repeat": 3, "width": 8}],
    )
    assert problems(doc) == []


def test_block_parameters_not_outside_blocks() -> None:
    assert problems(with_changes(graph=[{"op": "linear", "units": "$width"}]))
    assert problems(with_changes(graph=[{"block": "b", "repeat": "$n"}]))


def test_repeat_must_be_positive() -> None:
    assert problems(with_changes(graph=[{"block": "b", "repeat": 0}]))


def test_metrics_by_name_or_node() -> None:
    train = {
        "data": {"source": "xor"},
        "metrics": ["binary_accuracy", {"op": "accuracy", "in": ["h", "x"]}],
    }
    assert problems(with_changes(train=train)) == []
    train["metrics"] = ["acuracy"]
    assert problems(with_changes(train=train))


def test_version_2_accepts_expressions_and_still_flags_bad_keys() -> None:
    graph = [{"op": "linear", "units": "$width * 2"}, {"block": "b", "repeat": "$depth"}]
    v2 = with_changes(graphspec=2, vars={"width": 4, "depth": 2}, graph=graph)
    v2["scales"] = {"m": {"width": 8}}
    v2["train"] = {"data": {"source": "xor"}, "optimizer": {"name": "sgd", "lr": "$lr"}}
    assert problems(v2) == []
    assert problems(with_changes(graph=graph))  # version 1: no expressions
    for key in ("vars", "scales", "include"):  # nor the keys of version 2
        assert any(f"'{key}' was unexpected" in p for p in problems(with_changes(**{key: {}})))
    v2["graph"] = [{"op": "linear", "unist": "$width"}]  # flagged as in version 1
    assert problems(v2) == problems(with_changes(graph=[{"op": "linear", "unist": 4}]))
    assert any("'unist' was unexpected" in p for p in problems(v2))
