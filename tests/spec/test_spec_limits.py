"""Spec-level bounds: claims, names that are paths, memory, oversized documents, long
integers.  Each refusal is located, names the limit it hit, and happens before the work
(or the allocation) it prevents; none ends in an internal error.

The bad-spec corpus (tests/spec/bad_specs/claim_*, name_dot*, variant_name_dot_dot,
seed_too_many_digits, repeat_total_too_large, block_chain_too_deep, *_beyond_memory)
holds the command-line cases; this file holds what needs a program around it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from paths import ROOT, XOR

import graphspec as gs
from graphspec.cli import main
from graphspec.errors import SpecError, UsageError
from graphspec.ir import memory
from graphspec.spec import source
from graphspec.train.expect import ClaimError, evaluate, parse
from graphspec.train.rundir import run_dir_for

TINY = """\
graphspec: 1
name: tiny
inputs: {x: [batch, 2], y: [batch, 1]}
graph:
  - {id: logit, op: linear, in: x, units: 1}
loss:
  - {op: bce_with_logits, in: [logit, y]}
train:
  data: {source: blobs, samples: 64}
  epochs: 2
  metrics: [binary_accuracy]
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    return rc, out, err


# ---- expect: claims -------------------------------------------------------------------------

VALUES: dict[str, Any] = {
    "val_loss": 0.25,
    "epochs": 3,
    "acc": [0.5, 0.75],
    "label": "text",
    "huge": 10**400,
}


@pytest.mark.parametrize(
    ("claim", "fragment"),
    [
        ("10**10**10 > 1", "10 ** 10 ** 10: the result is too large for a float"),
        ("10.0**400 > 1", "the result is too large for a float"),
        ("log10(0) < 1", "log10 needs a positive number, got 0"),
        ("1 / 0 > 1", "division by zero"),
        ("val_loss / 0 > 1", "val_loss / 0: division by zero"),
        ("(-8) ** (1 / 3) > 0", "undefined"),
        ("abs(1, 2) > 0", "abs takes 1 argument, got 2"),
        ("log10() > 0", "log10 takes 1 argument, got 0"),
        ("min(1) > 0", "min of one argument takes a list"),
        ("max(x=1) > 0", "max takes plain arguments"),
        ("lg10(val_loss) > 1", "unknown function 'lg10'; did you mean 'log10'?"),
        ("+".join(["1"] * 1000) + " > 1", "2,003 characters, more than the limit of 1,000"),
        ("max(" + ", ".join(["1"] * 250) + ") > 0", "more than 200 terms and operations"),
        ("-" * 40 + "val_loss < 0", "nests more than 32 levels deep"),
        ("9" * 400 + " > 1", "is too large"),
        ("val_loss > 1\x00", "not an expression"),
    ],
)
def test_claims_that_can_never_be_computed_are_refused_at_load(claim: str, fragment: str) -> None:
    with pytest.raises(ClaimError) as e:
        parse(claim)
    assert fragment in str(e.value)
    assert len(str(e.value)) < 300  # the message quotes a bounded part of the claim


@pytest.mark.parametrize(
    ("claim", "fragment"),
    [
        ("val_loss / (epochs - 3) > 1", "val_loss / (epochs - 3): division by zero"),
        ("log10(val_loss - val_loss) < 1", "log10 needs a positive number, got 0"),
        ("10.0 ** (400 * epochs) > 1", "the result is too large for a float"),
        # As Python integers this tower has more digits than atoms in the universe: it used
        # to run for ever (and ignore Ctrl-C). In floats it overflows at once.
        ("epochs ** epochs ** epochs ** epochs ** epochs > 1", "too large for a float"),
        ("10 ** 10 ** epochs > 1", "too large for a float"),
        ("(-val_loss) ** 0.5 > 0", "undefined"),
        ("acc > 0", "acc is a list, not a number"),
        ("acc[5] > 0", "'acc[5]': no element 5 (the list has 2)"),
        ("min(epochs) > 0", "'epochs' is not a list"),
        ("label > 0", "label is str, not a number"),
        ("huge > 1", "huge is too large"),
        ("val_los < 1", "did you mean 'val_loss'?"),
    ],
)
def test_claims_that_cannot_be_computed_for_a_run_fail_with_the_reason(
    claim: str, fragment: str
) -> None:
    o = evaluate(claim, VALUES)
    assert o.held is False
    assert o.error is not None and fragment in o.error
    line = o.render()
    assert line.startswith(f"FAIL {claim}") and f"cannot be computed: {o.error}" in line


def test_min_and_max_of_a_list_or_of_numbers() -> None:
    assert evaluate("max(acc) == 0.75", VALUES).held
    assert evaluate("min(acc[0], epochs, val_loss) == 0.25", VALUES).held
    assert evaluate("1e400 > 1", VALUES).held  # an infinite literal compares as in Python


def test_a_claim_refused_at_validate_is_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    claims = ["val_binary_accuracy >= 0", "abs(val_loss, 2) < 1"]
    path = write(tmp_path, TINY + "expect:\n" + "".join(f"  - {json.dumps(c)}\n" for c in claims))
    rc, _, err = cli(capsys, "validate", path)
    assert rc == 1
    assert err.startswith(f"{path}:14:5: error: expect[1]: abs takes 1 argument, got 2")


def test_train_prints_why_a_claim_failed_and_never_crashes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    claim = "log10(val_binary_accuracy - val_binary_accuracy) < 1"
    path = write(tmp_path, TINY + f"expect:\n  - epochs == 2\n  - {json.dumps(claim)}\n")
    rc, out, _ = cli(capsys, "train", path, "--out", tmp_path / "run")
    assert rc == 0
    assert "ok   epochs == 2" in out
    assert f"FAIL {claim}" in out and "log10 needs a positive number, got 0" in out
    rc, out, _ = cli(capsys, "train", path, "--out", tmp_path / "run2", "--check")
    assert rc == 1 and f"FAIL {claim}" in out


# ---- names that are paths -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", ".", ".hidden"])
def test_a_spec_name_cannot_leave_the_run_root(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, TINY.replace("name: tiny", f"name: {json.dumps(name)}"))
    rc, _, err = cli(capsys, "train", path)  # the default run directory: runs/<name>
    assert rc == 1
    assert err.startswith(f"{path}:2:7: error: name: may not start with '.'")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "/etc", "a\\b", "x\x00", "tab\t", ".git"])
def test_run_dir_for_refuses_names_that_are_not_one_folder(name: str) -> None:
    with pytest.raises(SpecError, match="may not"):
        run_dir_for(name, "runs")


def test_run_dir_for_keeps_plain_names_below_the_root(tmp_path: Path) -> None:
    assert run_dir_for("xor-mlp") == Path("runs") / "xor-mlp"
    assert run_dir_for("v1.2_b", tmp_path) == tmp_path / "v1.2_b"


def test_a_spec_changed_after_loading_still_cannot_leave_the_run_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The models refuse '..' when a spec loads; the driver checks the path it builds,
    so a Spec edited afterwards (no validation on assignment) cannot escape either."""
    monkeypatch.chdir(tmp_path)
    spec = gs.loads(TINY, "tiny.yaml")
    spec.name = ".."
    with pytest.raises(SpecError, match="may not start with '.'"):
        gs.train(spec, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_variant_run_directories_stay_below_the_spec_run_directory(tmp_path: Path) -> None:
    from graphspec.spec.variants import expand_variants
    from graphspec.train.rundir import variant_dir

    spec = gs.loads(TINY + "variants:\n  small: {train: {epochs: 1}}\n", "t.yaml")
    v = expand_variants(spec)["small"]
    assert variant_dir(tmp_path, v) == tmp_path / "small"
    v._variant = ".."  # as a Spec made by hand could be
    with pytest.raises(SpecError, match="may not start with '.'"):
        variant_dir(tmp_path, v)


# ---- long integers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("units: 1}", "units: " + "1" * 4400 + "}", (5, 43)),
        ("epochs: 2", "epochs: 2\n  ? " + "3" * 5000 + "\n  : 1", (11, 5)),  # a key
    ],
)
def test_an_integer_past_pythons_digit_limit_is_a_located_error(
    old: str,
    new: str,
    where: tuple[int, int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write(tmp_path, TINY.replace(old, new))
    rc, _, err = cli(capsys, "validate", path)
    assert rc == 1
    assert err.startswith(f"{path}:{where[0]}:{where[1]}: error: the integer has ")
    assert "integers are limited to 4,300 digits" in err.splitlines()[0]


# ---- memory ----------------------------------------------------------------------------------

SMALL = """\
graphspec: 1
name: small
inputs: {x: [batch, 2], y: [batch, 1]}
graph:
  - {id: h, op: linear, in: x, units: 3}
  - {id: a, op: tanh}
  - {id: out, op: linear, units: 1}
loss:
  - {op: mse, in: [out, y]}
train:
  data: {source: linear, samples: 10, val_split: 0.2}
  optimizer: {name: adam, lr: 0.01}
  batch_size: 4
"""


@pytest.fixture
def no_budget_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(memory.ENV, raising=False)


def test_the_estimate_matches_a_hand_count() -> None:
    ir = gs.build(gs.loads(SMALL, "small.yaml"))
    # Parameters: h 2x3 + 3, out 3x1 + 1 = 13, all trainable; op nodes h, a, out, mse.
    assert ir.param_count() == 13 and len(ir.op_nodes()) == 4
    est = memory.estimate(ir, "train", "float64")
    # 10 samples, val_split 0.2: 8 training rows; batches of 4; evaluation in one chunk of 8.
    # Activations per row: h 3 + a 3 + out 1, plus the scalar loss once.
    # A step: 2 x (4 * 7 + 1) = 58 values (forward and backward); evaluation 8 * 7 + 1 = 57.
    assert est.rows == 4
    assert est.parts == {
        "parameters": 13 * (8 + 8),  # float64 initial values and the trainer's copy
        "gradients": 13 * 8,
        "optimizer state": 13 * 8 * 2,  # Adam: two moments
        "activations": 58 * 8,
        "data": 10 * (3 * 16 + memory.INDEX_BYTES_PER_SAMPLE),  # x 2 + y 1 per row
        "program": 4 * memory.PROGRAM_BYTES_PER_NODE,
    }
    est32 = memory.estimate(ir, "train", "float32")
    assert est32.parts["parameters"] == 13 * (8 + 4)
    assert est32.parts["activations"] == 58 * 4
    assert est.total == sum(est.parts.values())


@pytest.mark.parametrize(
    ("optimizer", "buffers"),
    [
        ("{name: sgd}", 0),
        ("{name: sgd, momentum: 0.9}", 1),
        ("{name: adam, amsgrad: true}", 3),
        ("{name: adamw}", 2),
        ("{name: rmsprop, momentum: 0.9, centered: true}", 3),
        ("{name: adagrad}", 1),
    ],
)
def test_optimizer_state_by_optimizer(optimizer: str, buffers: int) -> None:
    text = SMALL.replace("{name: adam, lr: 0.01}", optimizer)
    est = memory.estimate(gs.build(gs.loads(text, "small.yaml")))
    assert est.parts["optimizer state"] == 13 * 8 * buffers


def test_evaluation_chunks_count_when_they_are_larger() -> None:
    text = SMALL.replace("samples: 10,", "samples: 100000,")
    est = memory.estimate(gs.build(gs.loads(text, "small.yaml")))
    assert est.rows == memory.EVAL_ROWS  # forward at 8,192 rows beats a step at 4
    assert est.parts["activations"] == (memory.EVAL_ROWS * 7 + 1) * 8


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("123", 123),
        ("512M", 512 * 2**20),
        ("16G", 16 * 2**30),
        ("1.5T", int(1.5 * 2**40)),
        ("64KiB", 64 * 1024),
        ("8gb", 8 * 2**30),
        ("lots", None),
        ("-1G", None),
        ("", None),
    ],
)
def test_parse_size(text: str, size: int | None) -> None:
    assert memory.parse_size(text) == size


def test_the_budget_can_be_set_or_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(memory.ENV, "2G")
    assert memory.budget() == (2 * 2**30, f"allowed by {memory.ENV}")
    monkeypatch.setenv(memory.ENV, "off")
    assert memory.budget()[0] is None
    monkeypatch.setenv(memory.ENV, "plenty")
    with pytest.raises(UsageError, match="is not a size"):
        memory.budget()


@pytest.mark.skipif(not Path("/proc/meminfo").is_file(), reason="needs /proc/meminfo")
def test_the_budget_is_what_the_system_has_available(no_budget_override: None) -> None:
    limit, where = memory.budget()
    assert limit is not None and limit > 0
    assert "available" in where or "cgroup" in where


WIDE = TINY.replace(  # the units: 40000000
    "  - {id: logit, op: linear, in: x, units: 1}\n",
    "  - {id: h, op: linear, in: x, units: 40000000}\n  - {id: logit, op: linear, units: 1}\n",
)


def test_train_refuses_before_allocating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(memory.ENV, "1G")
    path = write(tmp_path, WIDE)
    rc, _, err = cli(capsys, "train", path, "--out", tmp_path / "run")
    assert rc == 1
    head = err.splitlines()[0]
    assert head.startswith(f"{path}:5:5: error: training this spec needs about ")
    assert "more than the 1.0 GiB allowed by GRAPHSPEC_MAX_MEMORY" in head
    assert "activations" in head and "parameters" in head
    assert not (tmp_path / "run").exists()


def test_the_driver_checks_before_drawing_parameters_or_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import graphspec.train.driver as driver

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("allocated before the memory check")

    monkeypatch.setattr(driver, "prepare", forbidden)  # reads the data
    monkeypatch.setattr(driver, "init_params", forbidden)
    monkeypatch.setenv(memory.ENV, "1G")
    text = TINY.replace("samples: 64", "samples: 100000000")  # the samples: 1e8
    with pytest.raises(SpecError, match="needs about .*data") as e:
        gs.train(gs.loads(text, "big.yaml"), out=tmp_path / "run", progress=False)
    assert e.value.location is not None and e.value.location.line == 9  # train.data
    assert not (tmp_path / "run").exists()


def test_compile_and_verify_refuse_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(memory.ENV, "100K")  # less than any generated program needs
    rc, _, err = cli(capsys, "compile", XOR, "-o", tmp_path / "m.py")
    assert rc == 1 and "compiling this spec needs about" in err
    assert list(tmp_path.iterdir()) == []
    rc, _, err = cli(capsys, "verify", XOR, "--backends", "numpy")
    assert rc == 1 and "verifying this spec needs about" in err


def test_validate_warns_and_does_not_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(memory.ENV, "1G")
    path = write(tmp_path, WIDE)
    rc, out, err = cli(capsys, "validate", path)
    assert rc == 0 and f"{path}: ok" in out
    assert err.startswith(f"{path}:5:5: warning: training this spec needs about ")
    assert "it would be refused" in err.splitlines()[0]
    rc, _, _ = cli(capsys, "validate", "-W", path)
    assert rc == 1
    monkeypatch.setenv(memory.ENV, "off")
    rc, _, err = cli(capsys, "validate", path)
    assert rc == 0 and err == ""


# ---- oversized documents ---------------------------------------------------------------------


def big_list(values: int) -> str:
    return (
        "graphspec: 1\nname: t\ninputs: {x: [batch, 2]}\ngraph: [{op: tanh}]\ndoc: ["
        + (",".join(["1"] * values))
        + "]\n"
    )


def test_a_plain_list_past_the_limit_says_which_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, big_list(source.MAX_VALUES + 10))
    rc, _, err = cli(capsys, "validate", path)
    assert rc == 1
    head = err.splitlines()[0]
    assert head == (
        f"{path}:5:6: error: the document holds more than 200,000 values (the limit for a spec)"
    )
    assert "alias" not in err
    assert len(err) < 2000  # the caret of a 400 KB line stays short


@pytest.mark.parametrize("libyaml", [True, False])
def test_an_oversized_document_is_refused_after_the_limit_not_the_end(
    libyaml: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Work and memory are bounded by the limit: counting stops the parse at the first
    value past it (with libyaml's parser when PyYAML has it, else PyYAML's own)."""
    monkeypatch.setattr(source, "MAX_VALUES", 1000)
    if not libyaml:
        monkeypatch.setattr(source, "_CSafeLoader", None)
    elif getattr(yaml, "CSafeLoader", None) is None:
        pytest.skip("PyYAML without libyaml")
    composed = []
    original = source._Bounded.compose_node

    def counting(self: Any, parent: Any, index: Any) -> Any:
        composed.append(1)
        return original(self, parent, index)

    monkeypatch.setattr(source._Bounded, "compose_node", counting)
    with pytest.raises(SpecError, match="holds more than 1,000 values"):
        source.parse_yaml(big_list(50_000), "big.yaml")
    assert len(composed) <= 1001


def test_nesting_is_bounded_while_composing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "_CSafeLoader", None)
    deep = "a:\n" + "".join("  " * i + "- \n" for i in range(1, source.MAX_DEPTH + 5))
    with pytest.raises(SpecError, match="nests more than 100 levels deep"):
        source.parse_yaml(deep, "deep.yaml")


def test_nested_repeats_are_counted_before_expanding() -> None:
    text = """\
graphspec: 1
name: t
inputs: {x: [batch, 2]}
blocks:
  inner: {graph: [{op: tanh}, {op: tanh}, {op: tanh}]}
  outer: {graph: [{block: inner, repeat: 1000}]}
graph:
  - {block: outer, in: x, repeat: 100}
"""
    with pytest.raises(SpecError) as e:
        gs.build(gs.loads(text, "t.yaml"))
    assert e.value.message == (
        "repeat 100 of block 'outer' (3,001 nodes) expands to more than 200,000 nodes (the limit)"
    )
    assert e.value.location is not None and (e.value.location.line, e.value.location.col) == (8, 35)


def test_limits_hold_in_a_subprocess_too(tmp_path: Path) -> None:
    """Through the installed command: exit 1 and one located error, never 70."""
    import subprocess
    import sys

    path = write(tmp_path, TINY + "expect:\n  - 10**10**10 > 1\n")
    done = subprocess.run(
        [sys.executable, "-m", "graphspec", "train", str(path), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"{path}:13:5: error: expect[0]: 10 ** 10 ** 10")


def test_the_counting_pass_never_replaces_the_parsers_own_error() -> None:
    """libyaml cannot even encode a lone surrogate: its count gives up, and PyYAML's reader
    reports the character, located, as before."""
    with pytest.raises(SpecError, match="U\\+D800 is not allowed") as e:
        gs.loads("graphspec: 1\nname: \ud800\n", "f.yaml")
    assert e.value.location is not None and e.value.location.line == 2


def test_a_claim_is_printed_without_its_control_characters() -> None:
    line = evaluate("(val_loss >\r 1)", VALUES).render()  # '\r' is whitespace to Python
    assert "\r" not in line and line.startswith("FAIL (val_loss >\ufffd 1)")


# ---- libyaml and PyYAML read the same ------------------------------------------------------


def _read_with(monkeypatch: pytest.MonkeyPatch, text: str, libyaml: bool) -> Any:
    """parse_yaml's data and locations, or its error, through one parser."""
    with monkeypatch.context() as m:
        if not libyaml:
            m.setattr(source, "_CSafeLoader", None)
        try:
            data, smap = source.parse_yaml(text, "f.yaml")
        except SpecError as e:
            return e.render()
        return data, smap.values, smap.keys


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "specs").glob("*.yaml")))
def test_libyaml_and_pyyaml_give_the_same_data_and_locations(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if getattr(yaml, "CSafeLoader", None) is None:
        pytest.skip("PyYAML without libyaml")
    text = (ROOT / "specs" / name).read_text() + "extra: {a: 'é', b: [1, {c: ~}], d: &x 2}\n"
    text += "more:\n  - *x\n  - |\n    two\n    lines\n"
    fast = _read_with(monkeypatch, text, libyaml=True)
    assert fast == _read_with(monkeypatch, text, libyaml=False)
    assert isinstance(fast, tuple) and fast[1][("more", 1)].line == text.count("\n") - 2


@pytest.mark.parametrize(
    "text",
    [
        "a: b\tc\n",  # a tab: libyaml takes it into the scalar
        "a: {b: li?near}\n",  # '?' in a flow plain scalar
        "a: {b: !x, c: 1}\n",  # ',' in a tag
        "a: {b: , c: 1}\n",  # an empty flow value: libyaml marks it a column later
        "a: |x\n  b\n",  # a character after a block scalar's indicator
        "\na: \ufeff1\n",  # a byte-order mark past the start
    ],
)
def test_texts_the_parsers_read_differently_get_pyyamls_reading(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert source._LIBYAML_DIFFERS.search(text)
    assert _read_with(monkeypatch, text, True) == _read_with(monkeypatch, text, False)


def test_libyaml_reads_a_document_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """One parse when libyaml has it: PyYAML's parser runs only on a problem."""
    if getattr(yaml, "CSafeLoader", None) is None:
        pytest.skip("PyYAML without libyaml")
    made: list[str] = []
    for cls in (source._BoundedLoader, source._CBoundedLoader):
        original = cls.__init__

        def init(self: Any, text: str, file: str, original: Any = original) -> None:
            made.append(type(self).__name__)
            original(self, text, file)

        monkeypatch.setattr(cls, "__init__", init)
    source.parse_yaml((ROOT / "specs" / "xor.yaml").read_text(), "xor.yaml")
    assert made == ["_CBoundedLoader"]
    made.clear()
    with pytest.raises(SpecError, match="invalid YAML"):
        source.parse_yaml("a: [1, 2\n", "f.yaml")
    assert made == ["_CBoundedLoader", "_BoundedLoader"]


@pytest.mark.parametrize("libyaml", [True, False])
def test_deep_block_nesting_is_refused_at_the_limit_not_the_end(
    libyaml: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A million levels of '- - - ...' (which no bracket count sees) is refused at level
    MAX_DEPTH + 1: neither the composer's recursion nor the parser gets deeper."""
    if libyaml and getattr(yaml, "CSafeLoader", None) is None:
        pytest.skip("PyYAML without libyaml")
    if not libyaml:
        monkeypatch.setattr(source, "_CSafeLoader", None)
    with pytest.raises(SpecError, match="nests more than 100 levels deep"):
        source.parse_yaml("- " * 1_000_000 + "x\n", "deep.yaml")
