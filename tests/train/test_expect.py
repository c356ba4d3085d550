"""``expect:`` claims: parsed when the spec loads, checked against a finished run."""

from __future__ import annotations

import json

import pytest

import graphspec as gs
from graphspec.errors import SpecError
from graphspec.train.expect import ClaimError, check_run, evaluate, names, parse, quantities

VALUES = {
    "val_accuracy": 0.5,
    "train_accuracy": 1.0,
    "robustness.accuracy": [0.9, 0.4],
    "grad_norms.first": 1e-9,
    "grad_norms.last": 1e-2,
}


@pytest.mark.parametrize(
    ("claim", "held"),
    [
        ("val_accuracy >= 0.5", True),
        ("val_accuracy > 0.5", False),
        ("0.35 <= val_accuracy <= 0.65", True),
        ("0.35 <= val_accuracy <= 0.45", False),
        ("train_accuracy - val_accuracy >= 0.5", True),
        ("robustness.accuracy[1] < 0.5", True),
        ("robustness.accuracy[0] < 0.5", False),
        ("grad_norms.first < 1e-6 * grad_norms.last", True),
        ("log10(grad_norms.last / grad_norms.first) > 6", True),
        ("abs(val_accuracy - 0.5) < 1e-12", True),
        ("max(val_accuracy, train_accuracy) == 1", True),
        ("-val_accuracy < 0", True),
    ],
)
def test_claims_evaluate(claim: str, held: bool) -> None:
    assert evaluate(claim, VALUES).held is held


def test_outcome_reports_the_numbers_read() -> None:
    o = evaluate("train_accuracy - val_accuracy >= 0.5", VALUES)
    assert o.values == {"train_accuracy": 1.0, "val_accuracy": 0.5}
    assert o.render().startswith("ok ")
    assert evaluate("robustness.accuracy[1] < 0.5", VALUES).values == {
        "robustness.accuracy[1]": 0.4
    }
    assert names("grad_norms.first < 1e-6 * grad_norms.last") == [
        "grad_norms.first",
        "grad_norms.last",
    ]


@pytest.mark.parametrize(
    "claim",
    [
        "val_accuracy",  # not a comparison
        "val_accuracy >=",  # not an expression
        "val_accuracy in [1, 2]",  # unsupported comparison
        "__import__('os') == 1",  # calls only to the few functions
        "robustness.accuracy[val_accuracy] > 0",  # an index is a number
        "val_accuracy is None",
        "'a' == 'a'",
    ],
)
def test_bad_claims_are_refused(claim: str) -> None:
    with pytest.raises(ClaimError):
        parse(claim)


def test_unknown_name_fails_the_claim_and_suggests_the_closest() -> None:
    o = evaluate("val_acuracy > 0.5", VALUES)
    assert not o.held and o.error is not None and "did you mean 'val_accuracy'" in o.error
    assert o.render().startswith("FAIL val_acuracy > 0.5   (cannot be computed: the run has")


def test_a_bad_claim_is_a_located_spec_error() -> None:
    text = """\
graphspec: 1
name: t
inputs: {x: [batch, 2]}
graph:
  - {op: tanh}
expect:
  - val_loss < 1
  - val_loss <
"""
    with pytest.raises(SpecError) as e:
        gs.loads(text, "t.yaml")
    assert e.value.location is not None and e.value.location.line == 8


def test_quantities_of_a_run_directory(tmp_path) -> None:
    (tmp_path / "summary.json").write_text(
        json.dumps(
            {
                "final": {"train_loss": 0.1, "val_loss": 0.2},
                "epochs": 7,
                "best": {"monitor": "val_loss", "value": 0.2, "epoch": 5},
            }
        )
    )
    (tmp_path / "analysis.json").write_text(
        json.dumps({"entries": [{"name": "robustness", "summary": {"accuracy": [1.0, 0.5]}}]})
    )
    q = quantities(tmp_path)
    assert q["epochs"] == 7 and q["best_epoch"] == 5 and q["val_loss"] == 0.2
    assert q["robustness.accuracy"] == [1.0, 0.5]
    outcomes = check_run(["val_loss - train_loss < 0.2", "robustness.accuracy[1] >= 0.5"], tmp_path)
    assert all(o.held for o in outcomes)
