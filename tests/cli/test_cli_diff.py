"""``graphspec diff A B``: exit statuses as diff(1)'s, text and JSON, overrides and variants
per side, bad input, and the documented example's output."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from paths import ROOT, SPEC_DIR, XOR

from graphspec.cli import main

REGULARIZATION = str(SPEC_DIR / "regularization.yaml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["diff", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_equivalent_specs_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, str(XOR), str(XOR))
    assert status == 0, err
    assert out == f"--- {XOR}\n+++ {XOR}\nequivalent: 8 nodes, 33 parameters\n"


def test_a_default_written_out_is_no_difference(capsys: pytest.CaptureFixture[str]) -> None:
    # nesterov false is sgd's default, bias true is linear's: the same spec, spelled out.
    status, out, _ = run(
        capsys,
        str(XOR),
        str(XOR),
        "--set-b",
        "train.optimizer.nesterov=false",
        "--set-b",
        "graph.hidden.bias=true",
    )
    assert status == 0, out


def test_different_specs_exit_1_and_say_what_changed(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, str(XOR), str(XOR), "--set-b", "graph.logit.bias=false")
    assert status == 1
    assert out.splitlines()[1:] == [
        f"+++ {XOR} --set graph.logit.bias=false",
        "nodes:",
        "  ~ logit (linear): bias true -> false; "
        "params [logit.weight, logit.bias] -> [logit.weight]",
        "parameters:",
        "  - logit.bias [1] (-1)",
        "1 node changed; 1 parameter tensor removed, 33 -> 32 parameters (-1, -3.0%)",
    ]


def test_variants_per_side(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys, REGULARIZATION, REGULARIZATION, "--variant-a", "none", "--variant-b", "dropout"
    )
    assert status == 1
    assert out.splitlines()[:5] == [
        f"--- {REGULARIZATION} [variant none]",
        f"+++ {REGULARIZATION} [variant dropout]",
        "nodes:",
        "  ~ drop1 (dropout): op identity -> dropout; p (none) -> 0.875",
        "  ~ drop2 (dropout): op identity -> dropout; p (none) -> 0.875",
    ]


def test_a_variant_for_both_sides(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, REGULARIZATION, REGULARIZATION, "--variant", "l2")
    assert status == 0
    assert out.splitlines()[-1] == "equivalent: 12 nodes, 17,025 parameters"


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys, str(XOR), str(XOR), "--json", "--set-a", "graph.hidden.units=4", "--set", "seed=5"
    )
    assert status == 1
    data = json.loads(out)
    assert data["equivalent"] is False
    assert data["a"] == f"{XOR} --set seed=5 --set graph.hidden.units=4"
    assert data["nodes"][0] == {
        "change": "changed",
        "id": "hidden",
        "group": "graph",
        "op": "linear",
        "shape": "[batch, 8]",
        "fields": {"units": [4, 8], "shape": ["[batch, 4]", "[batch, 8]"]},
    }
    assert data["parameter_count"] == {"a": 17, "b": 33, "change": 16, "percent": 94.1}
    assert data["settings"] == []  # seed=5 on both sides


def test_unknown_variant_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, REGULARIZATION, REGULARIZATION, "--variant-b", "l3")
    assert status == 2
    assert "no variant 'l3'" in err and "Traceback" not in err


def test_a_missing_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    status, out, err = run(capsys, str(XOR), str(missing))
    assert (status, out) == (2, "")
    assert err == f"{missing}: error: no such file: {missing}\n"


def test_a_bad_spec_exits_2_with_its_location(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(XOR.read_text().replace("units: 8", "unist: 8"))
    status, out, err = run(capsys, str(bad), str(XOR))
    assert (status, out) == (2, "")
    assert err.startswith(f"{bad}:11:37: error: unknown key 'unist' for op 'linear'\n")
    assert "Traceback" not in err


def test_a_bad_override_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, str(XOR), str(XOR), "--set-b", "graph.hidden.units=-1")
    assert status == 2
    assert err.startswith("--set graph.hidden.units=-1: error:")


def test_the_documented_example_prints_what_the_docs_show(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
    m = re.search(r"^```console\n\$ (graphspec diff .*?)\n(.*?)^```", text, re.S | re.M)
    assert m is not None, "docs/spec.md has no 'graphspec diff' example"
    monkeypatch.chdir(ROOT)  # the example's paths are relative to the repository
    status, out, _ = run(capsys, *shlex.split(m[1])[2:])
    assert status == 1
    assert out == m[2]


def test_scales_per_side(capsys: pytest.CaptureFixture[str]) -> None:
    residual = str(SPEC_DIR / "residual_mlp.yaml")
    status, out, _ = run(capsys, residual, residual, "--scale-a", "n", "--scale-b", "s")
    assert status == 1
    lines = out.splitlines()
    assert lines[:2] == [f"--- {residual} --scale n", f"+++ {residual} --scale s"]
    assert lines[-1] == (
        "11 nodes changed, 8 added; 11 parameter tensors changed, 8 added, "
        "1,153 -> 8,577 parameters (+7,424, +643.9%)"
    )
    status, out, _ = run(capsys, residual, residual, "--scale", "s")
    assert status == 0, out
