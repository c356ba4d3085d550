"""``graphspec upgrade``: a version-1 spec as version 2, everything but the version kept
byte for byte, and refused with the reason where version 2 would read it differently."""

from __future__ import annotations

from pathlib import Path

import pytest
from paths import GALLERY

import graphspec as gs
from graphspec.cli import main
from graphspec.errors import SpecError
from graphspec.spec.upgrade import upgrade

V1 = """\
# a comment before the version
graphspec:   1   # the format version
name: t   # trailing comment
inputs:
  x: [batch, 2]    # keep this spacing
graph:
  - &node {op: linear, units: 2}
  - *node
train: {data: {path: "data $notes.csv"}}
"""


def test_only_the_version_token_changes() -> None:
    new = upgrade(V1, "t.yaml")
    assert new == V1.replace("graphspec:   1 ", "graphspec:   2 ")
    assert gs.loads(new).graphspec == 2


BODY = "name: t\ninputs: {x: [2]}\ngraph: [{op: relu}]\n"


@pytest.mark.parametrize(
    "text, want",
    [
        (
            "\ufeffgraphspec: 1\r\nname: t\r\ninputs: {x: [2]}\r\ngraph: [{op: relu}]\r\n",
            "\ufeffgraphspec: 2\r\nname: t\r\ninputs: {x: [2]}\r\ngraph: [{op: relu}]\r\n",
        ),
        (
            "{graphspec: 1, name: t, inputs: {x: [2]}, graph: [{op: relu}]}",
            "{graphspec: 2, name: t, inputs: {x: [2]}, graph: [{op: relu}]}",
        ),
        (BODY + "graphspec: !!int 1\n", BODY + "graphspec: 2\n"),
        ("graphspec: 0x1\n" + BODY, "graphspec: 2\n" + BODY),
    ],
    ids=["bom-crlf", "flow", "tagged-last", "hex"],
)
def test_layouts(text: str, want: str) -> None:
    assert upgrade(text, "t.yaml") == want


@pytest.mark.parametrize("path", GALLERY, ids=[p.stem for p in GALLERY])
def test_gallery_upgrades_to_the_same_spec(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    new = upgrade(text, str(path))
    if gs.load(path).graphspec == 2:
        assert new is None
        return
    assert new is not None
    diff = [(a, b) for a, b in zip(text.splitlines(), new.splitlines(), strict=True) if a != b]
    assert diff == [("graphspec: 1", "graphspec: 2")]
    old_ir, new_ir = gs.build(gs.load(path)), gs.build(gs.loads(new, str(path)))
    assert (new_ir.order, new_ir.param_count()) == (old_ir.order, old_ir.param_count())


def test_refused_where_version_2_reads_differently() -> None:
    text = (
        "graphspec: 1\nname: t\ninputs: {x: [2]}\ngraph: [{op: relu}]\n"
        "train: {data: {path: $HOME}}\n"
    )
    with pytest.raises(SpecError) as e:
        upgrade(text, "h.yaml")
    err = e.value
    assert str(err.location) == "h.yaml:5:22"
    assert err.message == "the spec reads differently as version 2: undefined var '$HOME'"
    assert err.hint is not None and "change that value, then upgrade" in err.hint


def test_a_spec_with_errors_is_not_upgraded() -> None:
    with pytest.raises(SpecError, match="unknown key 'nmae'"):
        upgrade("graphspec: 1\nnmae: t\ninputs: {x: [2]}\ngraph: [{op: relu}]\n", "e.yaml")


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old.yaml"
    old.write_text(V1)
    out = tmp_path / "new.yaml"
    assert main(["upgrade", str(old)]) == 0
    assert capsys.readouterr().out == upgrade(V1, "x")
    assert main(["upgrade", str(old), "-o", str(out)]) == 0
    assert out.read_text() == upgrade(V1, "x")
    out.write_text("precious")
    assert main(["upgrade", str(old), "-o", str(out)]) == 2  # never clobbered unasked
    assert "the file exists" in capsys.readouterr().err
    assert out.read_text() == "precious"
    assert main(["upgrade", str(old), "-o", str(out), "--force"]) == 0
    assert out.read_text() == upgrade(V1, "x")
    assert old.read_text() == V1
    assert main(["upgrade", str(old), "--in-place"]) == 0
    assert old.read_bytes() == out.read_bytes()
    capsys.readouterr()
    assert main(["upgrade", str(old), "--in-place"]) == 0
    assert "already format version 2; nothing to do" in capsys.readouterr().err
    assert main(["upgrade", str(old), "--in-place", "-o", str(out)]) == 2


def test_cli_refusal_leaves_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old.yaml"
    text = (
        "graphspec: 1\nname: t\ninputs: {x: [2]}\ngraph: [{op: relu, doc: x}]\n"
        "train: {data: {path: $HOME}}\n"
    )
    old.write_text(text)
    assert main(["upgrade", str(old), "--in-place"]) == 1
    assert f"{old}:5:22: error: the spec reads differently" in capsys.readouterr().err
    assert old.read_text() == text
