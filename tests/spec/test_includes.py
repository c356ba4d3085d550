"""``include:``: block libraries in other files (graphspec.spec.includes).

The cases of one file are in the bad-spec corpus (tests/spec/bad_specs/include_*.yaml);
these need several files.  Each test writes its files under a temporary directory and
loads from there (``monkeypatch.chdir``), so that messages name them as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from paths import GALLERY, SPEC_DIR

import graphspec as gs
from graphspec.cli import main
from graphspec.errors import Location, SpecError
from graphspec.spec import includes
from graphspec.spec.variants import expand_variants

LAYERS = """\
graphspec: 2
doc: fully connected layers
blocks:
  layer:
    params: {units: 8, act: tanh}
    graph:
      - {id: s, op: linear, units: $units}
      - {id: h, op: $act}
"""

SPEC = """\
graphspec: 2
name: t
include: [lib/layers.yaml]
inputs: {x: [batch, 2], y: [batch, 1]}
graph:
  - {id: body, block: layer, in: x, repeat: 2}
  - {id: logit, op: linear, units: 1}
loss:
  - {op: bce_with_logits, in: [logit, y]}
train:
  data: {source: blobs, samples: 64}
  epochs: 1
"""


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(files: dict[str, str]) -> None:
    for name, text in files.items():
        path = Path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def refused(path: str = "spec.yaml", **kwargs: bool) -> SpecError:
    """The SpecError loading and building ``path`` raises."""
    with pytest.raises(SpecError) as info:
        gs.build(gs.load(path, **kwargs))
    return info.value


# ---- what an include brings in -------------------------------------------------------------


def test_included_blocks_build_as_if_written_in_the_spec(here: Path) -> None:
    block = LAYERS.split("blocks:\n", 1)[1]
    inline = SPEC.replace("include: [lib/layers.yaml]\n", "blocks:\n" + block)
    write({"spec.yaml": SPEC, "lib/layers.yaml": LAYERS, "inline.yaml": inline})
    spec = gs.load("spec.yaml")
    assert spec.includes == ("lib/layers.yaml",)
    assert spec.include == ["lib/layers.yaml"]
    ir, want = gs.build(spec), gs.build(gs.load("inline.yaml"))
    assert list(ir.graph.nodes) == list(want.graph.nodes)
    got, expected = gs.init_params(ir), gs.init_params(want)
    assert got.keys() == expected.keys() and "body.1.s.weight" in got
    for name in got:
        np.testing.assert_array_equal(got[name], expected[name])


def test_a_library_includes_libraries_and_a_file_reached_twice_is_read_once(here: Path) -> None:
    write(
        {
            "spec.yaml": SPEC.replace("[lib/layers.yaml]", "[lib/a.yaml, lib/b.yaml]"),
            "lib/a.yaml": "graphspec: 2\ninclude: [layers.yaml]\n",
            "lib/b.yaml": "graphspec: 2\ninclude: [../lib/layers.yaml]\nblocks:\n"
            "  two: {graph: [{block: layer}, {block: layer}]}\n",
            "lib/layers.yaml": LAYERS,
        }
    )
    spec = gs.load("spec.yaml")
    assert spec.includes == ("lib/a.yaml", "lib/layers.yaml", "lib/b.yaml")
    assert list(spec.blocks) == ["layer", "two"]


def test_variants_and_overrides_patch_included_blocks(here: Path) -> None:
    text = SPEC + "variants:\n  narrow: {}\n  wide: {blocks: {layer: {params: {units: 16}}}}\n"
    write({"spec.yaml": text, "lib/layers.yaml": LAYERS})
    variants = expand_variants(gs.load("spec.yaml"))
    assert [gs.build(v).type("body.0.s").shape[-1] for v in variants.values()] == [8, 16]
    assert all(v.includes == ("lib/layers.yaml",) for v in variants.values())
    spec = gs.load("spec.yaml", ["blocks.layer.graph.s.units=4"])
    assert gs.build(spec).type("body.1.s").shape[-1] == 4


def test_set_cannot_change_include(here: Path) -> None:
    write({"spec.yaml": SPEC, "lib/layers.yaml": LAYERS})
    with pytest.raises(SpecError) as info:
        gs.load("spec.yaml", ["include=[]"])
    assert str(info.value) == (
        "--set include=[]: --set cannot change include: (the included files are read "
        "before overrides apply)"
    )


# ---- errors inside an included file: its line and column, and the include chain -------------


def test_an_error_in_a_nested_library_names_the_file_and_the_chain(here: Path) -> None:
    write(
        {
            "spec.yaml": SPEC.replace("[lib/layers.yaml]", "[lib/a.yaml]"),
            "lib/a.yaml": "graphspec: 2\ninclude:\n  - layers.yaml\n",
            "lib/layers.yaml": LAYERS.replace("op: linear", "op: lineer"),
        }
    )
    e = refused()
    assert str(e) == "lib/layers.yaml:7:21: unknown op 'lineer'"
    assert e.location is not None
    assert e.location.include_chain() == [
        Location("lib/a.yaml", 3, 5, included_from=Location("spec.yaml", 3, 11)),
        Location("spec.yaml", 3, 11),
    ]
    assert e.render().splitlines() == [
        "lib/layers.yaml:7:21: error: unknown op 'lineer'",
        "    7 |       - {id: s, op: lineer, units: $units}",
        "      |                     ^",
        "lib/a.yaml:3:5: note: lib/layers.yaml is included here",
        "    3 |   - layers.yaml",
        "      |     ^",
        "spec.yaml:3:11: note: lib/a.yaml is included here",
        "    3 | include: [lib/a.yaml]",
        "      |           ^",
        "spec.yaml:6:5: note: in block 'layer' used here",
        "    6 |   - {id: body, block: layer, in: x, repeat: 2}",
        "      |     ^",
        "hint: did you mean 'linear'?",
    ]


def test_a_shape_error_found_at_build_points_into_the_library(here: Path) -> None:
    lib = LAYERS.replace("- {id: h, op: $act}", "- {id: h, op: add, in: [s, $in]}")
    write({"spec.yaml": SPEC, "lib/layers.yaml": lib})
    e = refused()
    assert e.location == Location(
        "lib/layers.yaml", 8, 9, included_from=Location("spec.yaml", 3, 11)
    )
    assert e.message.startswith("shape mismatch in 'body.0.h' (add)")
    assert ("in block 'layer' used here", Location("spec.yaml", 6, 5)) in e.notes


def test_a_validation_error_in_an_included_block_is_located_there(here: Path) -> None:
    lib = LAYERS.replace("    params:", "    dco: a layer\n    params:")
    write({"spec.yaml": SPEC, "lib/layers.yaml": lib})
    e = refused()
    assert str(e) == "lib/layers.yaml:5:5: unknown key 'dco' in blocks.layer"
    assert e.location is not None and e.location.included_from == Location("spec.yaml", 3, 11)


def test_bad_yaml_in_an_included_file(here: Path) -> None:
    write({"spec.yaml": SPEC, "lib/layers.yaml": "graphspec: 2\nblocks: {a: [}\n"})
    e = refused()
    assert str(e) == "lib/layers.yaml:2:14: invalid YAML: expected the node content, but found '}'"
    assert e.location is not None and e.location.included_from == Location("spec.yaml", 3, 11)
    assert all(loc is None or loc.included_from for _, loc in e.notes)


def test_an_included_file_that_is_not_utf8(here: Path) -> None:
    write({"spec.yaml": SPEC})
    (here / "lib").mkdir()
    (here / "lib" / "layers.yaml").write_bytes(b"graphspec: 2\ndoc: caf\xe9\n")
    e = refused()
    assert str(e) == "lib/layers.yaml:2:9: file is not valid UTF-8 (byte 0xe9)"
    assert e.location is not None and e.location.included_from == Location("spec.yaml", 3, 11)


def test_an_error_rendered_from_a_spec_given_as_text_quotes_each_file(here: Path) -> None:
    write({"lib/layers.yaml": LAYERS.replace("op: $act", "op: tanhh")})
    with pytest.raises(SpecError) as info:
        gs.build(gs.loads(SPEC, "<text>"))
    lines = info.value.render(source=SPEC).splitlines()
    assert lines[:3] == [
        "lib/layers.yaml:8:21: error: unknown op 'tanhh'",
        "    8 |       - {id: h, op: tanhh}",
        "      |                     ^",
    ]
    assert lines[3:6] == [
        "<text>:3:11: note: lib/layers.yaml is included here",
        "    3 | include: [lib/layers.yaml]",
        "      |           ^",
    ]


LIBRARY_PROBLEMS = [
    (
        "graphspec: 2\nname: t\nblocks: {}\n",
        "lib/layers.yaml:2:1: 'name' does not belong in a block library",
    ),
    ("blocks: {}\n", "lib/layers.yaml:1:1: a block library starts with 'graphspec: 2'"),
    (
        "graphspec: 1\nblocks: {}\n",
        "lib/layers.yaml:1:12: a block library is format version 2, not 1",
    ),
    (
        "- graphspec: 2\n",
        "lib/layers.yaml:1:1: an included file must be a block library, a YAML mapping "
        "(graphspec: 2, blocks: ...)",
    ),
    (
        "graphspec: 2\nblocks: [layer]\n",
        "lib/layers.yaml:2:9: blocks: must be a mapping of block names to blocks",
    ),
    ("graphspec: 2\ndoc: [a]\n", "lib/layers.yaml:2:6: doc: must be text"),
    (
        "graphspec: 2\ninclude: [3]\n",
        "lib/layers.yaml:2:11: include: is a list of file paths, got 3",
    ),
    ("graphspec: 2\ninclude: [none.yaml]\n", "lib/layers.yaml:2:11: no such file: lib/none.yaml"),
]


@pytest.mark.parametrize(("library", "message"), LIBRARY_PROBLEMS)
def test_what_a_block_library_may_hold(here: Path, library: str, message: str) -> None:
    write({"spec.yaml": SPEC, "lib/layers.yaml": library})
    e = refused()
    assert str(e) == message
    assert e.location is not None and e.location.included_from == Location("spec.yaml", 3, 11)


# ---- cycles, names defined twice --------------------------------------------------------------


def test_an_include_cycle_names_the_chain(here: Path) -> None:
    write(
        {
            "spec.yaml": SPEC.replace("[lib/layers.yaml]", "[lib/a.yaml]"),
            "lib/a.yaml": "graphspec: 2\ninclude: [b.yaml]\n",
            "lib/b.yaml": "graphspec: 2\ninclude: [a.yaml]\n",
        }
    )
    e = refused()
    assert str(e) == ("lib/b.yaml:2:11: include cycle: lib/a.yaml -> lib/b.yaml -> lib/a.yaml")
    write({"lib/b.yaml": "graphspec: 2\ninclude: [../spec.yaml]\n"})
    assert refused().message == (
        "include cycle: spec.yaml -> lib/a.yaml -> lib/b.yaml -> spec.yaml"
    )


def test_a_block_defined_in_two_libraries(here: Path) -> None:
    write(
        {
            "spec.yaml": SPEC.replace("[lib/layers.yaml]", "[lib/layers.yaml, lib/more.yaml]"),
            "lib/layers.yaml": LAYERS,
            "lib/more.yaml": "graphspec: 2\nblocks:\n  layer: {graph: [{op: relu}]}\n",
        }
    )
    e = refused()
    assert str(e) == "lib/more.yaml:3:3: block 'layer' is defined twice"
    assert e.notes == [
        ("first defined here", Location("lib/layers.yaml", 4, 3, Location("spec.yaml", 3, 11)))
    ]


def test_a_block_defined_in_a_library_and_in_the_spec(here: Path) -> None:
    own = SPEC.replace("inputs:", "blocks:\n  layer: {graph: [{op: relu}]}\ninputs:")
    write({"spec.yaml": own, "lib/layers.yaml": LAYERS})
    e = refused()
    assert str(e) == "spec.yaml:5:3: block 'layer' is defined twice"
    assert e.notes == [
        ("first defined here", Location("lib/layers.yaml", 4, 3, Location("spec.yaml", 3, 11)))
    ]


# ---- where includes may lead ---------------------------------------------------------------------


def test_includes_stay_in_the_spec_directory_unless_allowed(here: Path) -> None:
    write(
        {
            "specs/spec.yaml": SPEC.replace("[lib/layers.yaml]", "[../lib/layers.yaml]"),
            "lib/layers.yaml": LAYERS,
        }
    )
    e = refused("specs/spec.yaml")
    assert str(e) == (
        "specs/spec.yaml:3:11: include '../lib/layers.yaml' leads outside the spec's directory"
    )
    assert e.hint == (
        "includes stay under specs (the directory of specs/spec.yaml); "
        "--allow-outside (allow_outside=True) permits it"
    )
    assert gs.load("specs/spec.yaml", allow_outside=True).includes == ("lib/layers.yaml",)
    # upgrade reads the includes as every command does: --allow-outside lets it see the
    # spec is version 2 already.
    assert main(["upgrade", "specs/spec.yaml"]) == 1
    assert main(["upgrade", "specs/spec.yaml", "--allow-outside"]) == 0


def test_a_library_may_use_dot_dot_inside_the_spec_directory(here: Path) -> None:
    write(
        {
            "spec.yaml": SPEC.replace("[lib/layers.yaml]", "[lib/a/b.yaml]"),
            "lib/a/b.yaml": "graphspec: 2\ninclude: [../layers.yaml]\n",
            "lib/layers.yaml": LAYERS,
        }
    )
    assert gs.load("spec.yaml").includes == ("lib/a/b.yaml", "lib/layers.yaml")


def test_an_absolute_include_needs_allow_outside(here: Path) -> None:
    write({"lib/layers.yaml": LAYERS})
    absolute = str(here / "lib" / "layers.yaml")
    write({"spec.yaml": SPEC.replace("[lib/layers.yaml]", f"[{absolute}]")})
    assert refused().message == f"include path '{absolute}' is absolute"
    assert gs.load("spec.yaml", allow_outside=True).includes == (absolute,)


def test_a_symbolic_link_leading_out_counts_as_outside(here: Path) -> None:
    write({"outside/layers.yaml": LAYERS, "specs/spec.yaml": SPEC})
    os.symlink(here / "outside", here / "specs" / "lib")
    e = refused("specs/spec.yaml")
    assert e.message == (
        "include 'lib/layers.yaml' leads outside the spec's directory through a symbolic link"
    )
    assert gs.load("specs/spec.yaml", allow_outside=True).includes == ("specs/lib/layers.yaml",)


def test_the_cli_allows_outside_on_request(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(
        {
            "specs/spec.yaml": SPEC.replace("[lib/layers.yaml]", "[../lib/layers.yaml]"),
            "lib/layers.yaml": LAYERS,
        }
    )
    assert main(["validate", "specs/spec.yaml"]) == 1
    assert "leads outside the spec's directory" in capsys.readouterr().err
    for command in (["validate"], ["inspect"]):
        assert main([*command, "specs/spec.yaml", "--allow-outside"]) == 0


# ---- bounds --------------------------------------------------------------------------------------


def test_the_number_of_files_is_bounded(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(includes, "MAX_FILES", 2)
    write(
        {
            "spec.yaml": SPEC.replace("[lib/layers.yaml]", "[lib/a.yaml, lib/b.yaml, lib/c.yaml]"),
            **{f"lib/{n}.yaml": "graphspec: 2\n" for n in "abc"},
        }
    )
    assert str(refused()) == "spec.yaml:3:35: the spec includes more than 2 files (the limit)"


def test_the_nesting_is_bounded(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(includes, "MAX_DEPTH", 2)
    write(
        {
            "spec.yaml": SPEC.replace("[lib/layers.yaml]", "[lib/1.yaml]"),
            **{f"lib/{n}.yaml": f"graphspec: 2\ninclude: [{n + 1}.yaml]\n" for n in range(1, 4)},
        }
    )
    e = refused()
    assert str(e) == "lib/2.yaml:2:11: includes nest more than 2 deep here (the limit)"


def test_the_total_size_is_bounded(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(includes, "MAX_TOTAL_BYTES", len(LAYERS) + 10)
    write(
        {
            "spec.yaml": SPEC.replace("[lib/layers.yaml]", "[lib/layers.yaml, lib/more.yaml]"),
            "lib/layers.yaml": LAYERS,
            "lib/more.yaml": "graphspec: 2\ndoc: more\n",
        }
    )
    assert str(refused()) == (
        "spec.yaml:3:28: the included files hold more than 0 MiB together (the limit for a spec)"
    )


# ---- commands on a spec with includes ------------------------------------------------------------


def test_a_run_stands_alone_without_the_library(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """train saves the spec with its includes merged in: the run reloads with the same
    blocks and parameters after the library has gone; --resume reads the spec again."""
    write({"spec.yaml": SPEC, "lib/layers.yaml": LAYERS})
    assert main(["train", "spec.yaml", "--out", "run", "--epochs", "1"]) == 0
    saved = (here / "run" / "spec.yaml").read_text()
    assert saved.startswith(
        "# the spec file with the blocks of its includes merged in:\n#   lib/layers.yaml\n"
    )
    assert "include" not in saved.split("\n", 2)[2]
    assert json.loads((here / "run" / "summary.json").read_text())["includes"] == [
        "lib/layers.yaml"
    ]
    before = gs.load_run(here / "run").params
    shutil.rmtree(here / "lib")
    run = gs.load_run(here / "run")
    for name, value in before.items():
        np.testing.assert_array_equal(run.params[name], value)
    assert run.spec.blocks["layer"].params == {"units": 8, "act": "tanh"}
    write({"lib/layers.yaml": LAYERS})
    capsys.readouterr()
    assert main(["train", "spec.yaml", "--out", "run", "--epochs", "2", "--resume"]) == 0
    assert "completed after 2 epochs" in capsys.readouterr().out


def test_compile_and_verify_a_spec_with_includes(here: Path) -> None:
    write({"spec.yaml": SPEC, "lib/layers.yaml": LAYERS})
    assert main(["compile", "spec.yaml", "--backend", "numpy", "-o", "model.py"]) == 0
    module = (here / "model.py").read_text()
    assert "(lib/layers.yaml:7:9)" in module  # each node's comment says where it is defined
    assert main(["verify", "spec.yaml", "--backends", "numpy", "--steps", "1"]) == 0


# ---- the gallery's library ----------------------------------------------------------------------


def test_the_gallery_block_library_is_used_and_is_no_gallery_spec() -> None:
    libraries = sorted((SPEC_DIR / "blocks").glob("*.yaml"))
    assert libraries and not set(libraries) & set(GALLERY)
    users: dict[str, list[str]] = {}
    for spec in GALLERY:
        for name in gs.load(spec).includes:
            users.setdefault(name, []).append(spec.stem)
    assert sorted(users) == [str(p) for p in libraries]
    assert len({stem for stems in users.values() for stem in stems}) >= 4


@pytest.mark.slow  # a sweep trains in a process of its own: seconds
def test_a_sweep_passes_allow_outside_to_its_runs(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        {
            "specs/spec.yaml": SPEC.replace("[lib/layers.yaml]", "[../lib/layers.yaml]"),
            "lib/layers.yaml": LAYERS,
        }
    )
    argv = ["sweep", "specs/spec.yaml", "--grid", "seed=1", "--epochs", "1", "--out", "sweep"]
    assert main(argv) == 1 and not (here / "sweep").exists()  # refused before training
    assert "leads outside the spec's directory" in capsys.readouterr().err
    assert main([*argv, "--allow-outside"]) == 0
    rows = (here / "sweep" / "sweep.csv").read_text().splitlines()
    assert len(rows) == 2 and "completed" in rows[1]
