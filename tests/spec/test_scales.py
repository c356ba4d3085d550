"""Scales (graphspec: 2): --scale picks a set of var values; inspect --scales tabulates
each scale's size, and its numbers are those of building each scale on its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from paths import SPEC_DIR

import graphspec as gs
from graphspec.cli import main
from graphspec.errors import SpecError
from graphspec.ir.counts import flop_count
from graphspec.train.runspec import effective_text

RESIDUAL = SPEC_DIR / "residual_mlp.yaml"

SPEC = """\
graphspec: 2
name: sc
vars:
  width: 8
  double: $width * 2
  depth: 1
scales:
  n: {width: 4}
  m: {width: 16, depth: 3}
inputs:
  x: [batch, 4]
blocks:
  layer:
    graph: [{op: linear, units: $double}, {op: relu}]
graph:
  - {block: layer, repeat: $depth}
  - {id: out, op: linear, units: 1}
"""


def test_without_scale_the_vars_keep_their_values() -> None:
    spec = gs.loads(SPEC)
    assert (spec.scale, spec.vars) == (None, {"width": 8, "double": 16, "depth": 1})
    assert spec.resolved is None  # the file's text is the spec


def test_a_scale_sets_vars_and_those_computed_from_them_follow() -> None:
    spec = gs.loads(SPEC, scale="m")
    assert (spec.scale, spec.vars) == ("m", {"width": 16, "double": 32, "depth": 3})
    assert gs.build(spec).param_count() == 4 * 32 + 32 + 2 * (32 * 32 + 32) + 33


def test_set_applies_on_top_of_a_scale() -> None:
    spec = gs.loads(SPEC, scale="m", overrides=["vars.depth=2"])
    assert spec.vars == {"width": 16, "double": 32, "depth": 2}


def test_a_scaled_spec_records_itself() -> None:
    spec = gs.loads(SPEC, scale="n")
    text = effective_text(spec)
    assert "#   --scale n\n" in text
    again = gs.loads(text)  # a run's spec.yaml loads to the same spec without --scale
    assert again.vars == spec.vars
    assert gs.build(again).param_count() == gs.build(spec).param_count()


def test_unknown_scale_is_located_at_the_argument() -> None:
    with pytest.raises(SpecError) as e:
        gs.loads(SPEC, "sc.yaml", scale="mm")
    err = e.value
    assert (str(err.location), err.message, err.hint) == (
        "--scale mm",
        "no scale 'mm'",
        "did you mean 'm'?",
    )
    assert [(t, str(loc)) for t, loc in err.notes] == [("scales are defined here", "sc.yaml:7:1")]


def test_scale_of_a_spec_without_scales() -> None:
    with pytest.raises(SpecError, match="the spec has no 'scales:' to choose from"):
        gs.loads(
            SPEC.replace("scales:\n  n: {width: 4}\n  m: {width: 16, depth: 3}\n", ""), scale="n"
        )


def test_a_scale_setting_an_undefined_var_is_an_error_even_unchosen() -> None:
    with pytest.raises(SpecError) as e:
        gs.loads(SPEC.replace("m: {width: 16,", "m: {widht: 16,"), "sc.yaml")
    err = e.value
    assert str(err.location) == "sc.yaml:9:7"
    assert err.message == "scale 'm' sets 'widht', which is not a var of this spec"
    assert [(t, str(loc)) for t, loc in err.notes] == [("vars are defined here", "sc.yaml:3:1")]


def test_a_bad_value_in_a_scale_is_located_in_the_scale() -> None:
    with pytest.raises(SpecError) as e:
        gs.build(gs.loads(SPEC.replace("n: {width: 4}", "n: {width: -4}"), "sc.yaml", scale="n"))
    assert str(e.value.location) == "sc.yaml:14:33"  # units: $double, the use
    with pytest.raises(SpecError) as e:
        gs.loads(SPEC.replace("n: {width: 4}", "n: {width: $nope}"), "sc.yaml", scale="n")
    assert str(e.value.location) == "sc.yaml:8:14"  # in the scale, where it was written


def test_cli_scale_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "sc.yaml"
    path.write_text(SPEC)
    assert main(["validate", "--scale", "m", str(path)]) == 0
    assert "2,305 parameters" in capsys.readouterr().out
    assert main(["inspect", "--scale", "x", str(path)]) == 1
    assert capsys.readouterr().err.startswith("--scale x: error: no scale 'x'")


def _table(capsys: pytest.CaptureFixture[str], path: Path) -> list[list[str]]:
    assert main(["inspect", "--scales", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    return [line.split() for line in lines]


def test_inspect_scales_matches_building_each_scale(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _table(capsys, RESIDUAL)
    assert rows[0] == ["scale", "width", "depth", "params", "FLOPs"]
    body = {r[0]: r[1:] for r in rows[2:]}
    assert list(body) == ["(vars)", "n", "s", "m"]
    for name in ["n", "s", "m"]:
        spec = gs.load(RESIDUAL, scale=name)
        ir = gs.build(spec)
        want = [
            f"{spec.vars['width']:,}",
            f"{spec.vars['depth']:,}",
            f"{ir.param_count():,}",
            f"{flop_count(ir):,}",
        ]
        assert body[name] == want, name
    assert body["(vars)"] == body["s"]
    assert len({tuple(v) for v in body.values()}) == 3  # the scales differ


def test_inspect_scales_of_a_spec_without_scales(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--scales", str(SPEC_DIR / "xor.yaml")]) == 1
    assert "the spec has no 'scales:' to tabulate" in capsys.readouterr().err
    assert main(["inspect", "--scales", "--scale", "n", str(RESIDUAL)]) == 2
