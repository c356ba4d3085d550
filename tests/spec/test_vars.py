"""Vars (graphspec: 2): the expression grammar, substitution with locations, block
parameters beside vars, --set vars.x, warnings, variants, and version 1 left as it was."""

from __future__ import annotations

import pytest

import graphspec as gs
from graphspec.cli import main
from graphspec.errors import SpecError
from graphspec.spec import expr
from graphspec.spec.variants import expand_variants


def value(text: str, **env: object) -> object:
    tokens = expr.tokenize(text)
    assert tokens is not None, text
    return expr.evaluate(text, tokens, lambda n: env[n])


@pytest.mark.parametrize(
    "text, want",
    [
        ("$w * 2", 64),
        ("$w // 5", 6),
        ("$w / 4", 8),  # exact: an integer
        ("$w / 5", 6.4),
        ("$w % 5", 2),
        ("-$w + 1", -31),
        ("- -$w", 32),
        ("($w + 8) * 2 - 1", 79),
        ("$w + 8 * 2", 48),  # precedence
        ("$w - 8 - 4", 20),  # left to right
        ("min($w, 8) + max(1, 2, 3)", 11),
        ("$f * 10", 1.5),
        ("$w * 1e-3", 0.032),
        ("$w", 32),
    ],
)
def test_expression_values(text: str, want: object) -> None:
    got = value(text, w=32, f=0.15)
    assert got == pytest.approx(want)
    assert type(got) is type(want)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("$w / 0", "division by zero"),
        ("$w % ($w - $w)", "division by zero"),
        ("$w *", "ends where a value should follow"),
        ("($w", "expected ')'"),
        ("$w 2", "unexpected '2'"),
        ("$s * 2", "'$s' is 'relu', not a number"),
        ("$b + 1", "'$b' is True, not a number"),
        ("$w" + " + 1" * 60, "longer than 200 characters"),
        ("-" * 40 + "$w", "nests more than 32 deep"),
        ("(" * 40 + "$w" + ")" * 40, "nests more than 32 deep"),
        ("$w * 1e308 * 1e308", "not a finite number"),
        ("$w * 1000000000 * 1000000000", "larger than 10**18"),
    ],
)
def test_expression_errors(text: str, fragment: str) -> None:
    with pytest.raises(expr.ExprError, match="cannot compute") as e:
        value(text, w=32, s="relu", b=True)
    assert fragment in str(e.value)


@pytest.mark.parametrize(
    "text", ["costs $5", "data/$x.npz", "$x.__class__", "__import__('os')", "plain", "$"]
)
def test_prose_is_not_an_expression(text: str) -> None:
    assert expr.tokenize(text) is None


SPEC = """\
graphspec: 2
name: v
vars:
  width: 8
  half: $width // 2
  act: tanh
  shape: [batch, 3]
inputs:
  x: $shape
blocks:
  pair:
    params: {width: 2, k: 1}
    graph:
      - {id: a, op: linear, units: $width * 2}       # the parameter shadows the var
      - {id: b, op: linear, units: $width + $half}   # a parameter and a var
      - {id: c, op: linear, units: $k}
graph:
  - {id: h, op: linear, units: $width, doc: "$width stays as written"}
  - {id: act, op: $act}
  - {id: p, block: pair, width: $half, k: $half * 3, repeat: $half // 2}
"""


def test_substitution() -> None:
    spec = gs.loads(SPEC)
    assert spec.vars == {"width": 8, "half": 4, "act": "tanh", "shape": ["batch", 3]}
    assert spec.inputs["x"] == ["batch", 3]
    ir = gs.build(spec)
    units = {n: ir.type(n).shape[-1] for n in ("h", "p.0.a", "p.0.b", "p.0.c", "p.1.c")}
    assert units == {"h": 8, "p.0.a": 8, "p.0.b": 8, "p.0.c": 12, "p.1.c": 12}
    assert ir.node("act").op == "tanh"
    assert spec.graph[0].doc == "$width stays as written"
    assert not ir.warnings


def test_a_substituted_value_is_located_at_its_use() -> None:
    bad = SPEC.replace("half: $width // 2", "half: $width - 8")  # units 0, repeat 0
    with pytest.raises(SpecError) as e:
        gs.build(gs.loads(bad, "v.yaml"))
    assert str(e.value.location) == "v.yaml:20:62"  # repeat: $half // 2
    assert e.value.message == "graph[2].repeat: Input should be greater than 0 (got 0)"


def test_undefined_var_points_at_the_use_and_at_vars() -> None:
    with pytest.raises(SpecError) as e:
        gs.loads(SPEC.replace("units: $width, doc", "units: $widht, doc"), "v.yaml")
    err = e.value
    assert (str(err.location), err.message) == ("v.yaml:18:32", "undefined var '$widht'")
    assert err.hint == "did you mean 'width'?"
    assert [(t, str(loc)) for t, loc in err.notes] == [("vars are defined here", "v.yaml:3:1")]


@pytest.mark.parametrize(
    ("value", "col"),
    [("$width * $dept", 34), ('"max($width, $dept)"', 38), ("$dept", 25)],
)
def test_undefined_var_is_marked_at_its_name_inside_the_value(value: str, col: int) -> None:
    text = (
        "graphspec: 2\nname: t\nvars: {width: 8, depth: 2}\ninputs:\n  x: [batch, 4]\n"
        f"graph:\n  - {{op: linear, units: {value}}}\n"
    )
    with pytest.raises(SpecError) as e:
        gs.loads(text, "v.yaml")
    assert (str(e.value.location), e.value.message) == (f"v.yaml:7:{col}", "undefined var '$dept'")
    line = text.splitlines()[6]
    assert line[col - 1 :].startswith("$dept")


def test_undefined_var_without_vars() -> None:
    text = "graphspec: 2\nname: t\ninputs: {x: [2]}\ngraph: [{op: linear, units: $w}]\n"
    with pytest.raises(SpecError) as e:
        gs.loads(text)
    assert e.value.message == "undefined var '$w'"
    assert e.value.hint == "define it under a top-level 'vars:'"


def test_unused_var_is_a_warning(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    path = tmp_path / "u.yaml"
    path.write_text(SPEC.replace("  act: tanh\n", "  act: tanh\n  spare: 1\n"))
    ir = gs.build(gs.load(path))
    assert [(m, str(loc)) for m, loc in ir.warnings] == [
        ("var 'spare' is never used", f"{path}:7:3")
    ]
    assert main(["validate", str(path)]) == 0
    assert main(["validate", "-W", str(path)]) == 1
    assert f"{path}:7:3: warning: var 'spare' is never used" in capsys.readouterr().err


def test_set_changes_a_var_before_it_is_read() -> None:
    spec = gs.loads(SPEC, overrides=["vars.width=16"])
    assert spec.vars["half"] == 8
    assert gs.build(spec).type("h").shape[-1] == 16
    assert spec.overrides == ("vars.width=16",)
    assert spec.resolved["vars"]["width"] == 16  # what a run records, before substitution
    assert spec.resolved["graph"][0]["units"] == "$width"


def test_an_override_may_use_vars() -> None:
    spec = gs.loads(SPEC, overrides=["graph.h.units=$half * 5"])
    assert gs.build(spec).type("h").shape[-1] == 20


@pytest.mark.parametrize(
    "arg, message",
    [
        ("vars.widht=3", "'widht' is not a var of this spec"),
        ("vars.nope.deeper=3", "'nope' is not a var of this spec"),
    ],
)
def test_set_of_an_unknown_var(arg: str, message: str) -> None:
    with pytest.raises(SpecError) as e:
        gs.loads(SPEC, overrides=[arg])
    assert (str(e.value.location), e.value.message) == (f"--set {arg}", message)


def test_set_of_a_var_in_a_spec_without_vars() -> None:
    text = "graphspec: 1\nname: t\ninputs: {x: [2]}\ngraph: [{op: linear, units: 2}]\n"
    with pytest.raises(SpecError, match="the spec has no 'vars:' to override"):
        gs.loads(text, overrides=["vars.width=3"])


def test_set_of_a_bad_var_value_is_located_at_the_argument() -> None:
    with pytest.raises(SpecError) as e:
        gs.loads(SPEC, overrides=["vars.width=0"])
    # width 0: 'half' is 0, and the first use of it to fail is reported, at its use
    assert str(e.value.location).startswith("<string>:")
    with pytest.raises(SpecError) as e:
        gs.loads(SPEC, overrides=["vars.width={a: 1}"])
    assert str(e.value.location) == "--set vars.width={a: 1}"


def test_variants_may_change_vars() -> None:
    text = SPEC + "variants:\n  narrow: {}\n  wide: {vars: {width: 32}}\n"
    variants = expand_variants(gs.loads(text))
    widths = {k: gs.build(v).type("h").shape[-1] for k, v in variants.items()}
    assert widths == {"narrow": 8, "wide": 32}
    assert variants["wide"].vars["half"] == 16


def test_a_var_used_only_by_a_variant_is_used() -> None:
    text = SPEC.replace("  act: tanh\n", "  act: tanh\n  other: sigmoid\n") + (
        "variants:\n  a: {}\n  b: {graph: {act: {op: $other}}}\n"
    )
    spec = gs.loads(text)
    assert not gs.build(spec).warnings
    assert gs.build(expand_variants(spec)["b"]).node("act").op == "sigmoid"


def test_version_1_does_not_compute_expressions() -> None:
    text = """\
graphspec: 1
name: t
inputs: {x: [batch, 2]}
blocks:
  b:
    params: {w: 2}
    graph: [{op: linear, units: $w * 2}]
graph: [{block: b}]
"""
    with pytest.raises(SpecError, match=r"unknown block parameter '\$w \* 2'"):
        gs.build(gs.loads(text))
    assert gs.build(gs.loads(text.replace("graphspec: 1", "graphspec: 2"))).param_count() == 12


def test_block_expression_errors_are_located_inside_the_block() -> None:
    text = """\
graphspec: 2
name: t
inputs: {x: [batch, 2]}
blocks:
  b:
    params: {w: 2, z: 0}
    graph: [{op: linear, units: $w // $z}]
graph: [{block: b}]
"""
    with pytest.raises(SpecError) as e:
        gs.build(gs.loads(text, "b.yaml"))
    assert str(e.value.location) == "b.yaml:7:33"
    assert e.value.message == "cannot compute '$w // $z': division by zero"
    assert [n for n, _ in e.value.notes] == ["in block 'b' used here"]


def test_in_is_never_a_var() -> None:
    text = "graphspec: 2\nname: t\nvars: {in: 3}\ninputs: {x: [2]}\ngraph: [{op: relu}]\n"
    with pytest.raises(SpecError, match="'in' cannot be a var name"):
        gs.loads(text)


def test_a_var_cannot_use_itself_and_docs_are_prose() -> None:
    text = "graphspec: 2\nname: t\ndoc: $a\nvars: {a: $a}\ninputs: {x: [2]}\ngraph: [{op: relu}]\n"
    with pytest.raises(SpecError, match="var 'a' uses itself"):
        gs.loads(text)
    spec = gs.loads(text.replace("{a: $a}", "{a: 1}"))
    assert spec.doc == "$a"
