"""The docs stay true: every spec.md example validates, every doc example with ``expect:``
claims meets them when trained, the documented training defaults are the model's, ops.md
matches the registry, the README's two commands are the ones CI runs, and nothing refers
to documents outside the repository."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
import yaml
from paths import ROOT
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

import graphspec as gs
from graphspec.ops import REGISTRY
from graphspec.ops.docs import ops_markdown
from graphspec.spec.models import OPTIMIZERS, TrainSpec
from graphspec.spec.variants import expand_variants
from graphspec.train.expect import check_run

DOCS = ROOT / "docs"
SPEC_MD = DOCS / "spec.md"
OPS_MD = DOCS / "ops.md"
TRAINING_MD = DOCS / "training.md"
README = ROOT / "README.md"
BACKENDS = ("numpy", "torch")

INSTALL_AND_RUN = (
    "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e '.[dev]' && "
    ".venv/bin/graphspec train specs/xor.yaml --backend numpy"
)
TEST_COMMAND = ".venv/bin/python -m pytest -q"


def yaml_examples(path: Path) -> list[tuple[int, str]]:
    """(line of the fence, text) of every ```yaml block."""
    text = path.read_text(encoding="utf-8")
    return [
        (text[: m.start()].count("\n") + 1, m.group(1))
        for m in re.finditer(r"^```yaml\n(.*?)^```", text, re.S | re.M)
    ]


def library_files(path: Path) -> dict[str, str]:
    """The block libraries shown as ```yaml FILE blocks: {file name: text}."""
    text = path.read_text(encoding="utf-8")
    return {
        m.group(1): m.group(2) for m in re.finditer(r"^```yaml (\S+)\n(.*?)^```", text, re.S | re.M)
    }


EXAMPLES = yaml_examples(SPEC_MD)


def _claimed_examples() -> list[object]:
    """Every yaml example of the README and docs/ whose spec (or a variant) has claims."""
    out = []
    for doc in [README, *sorted(DOCS.glob("*.md"))]:
        for line, text in yaml_examples(doc):
            if "expect:" in text:
                rel = doc.relative_to(ROOT)
                out.append(pytest.param(f"{rel}:{line}", text, id=f"{rel}:{line}"))
    return out


CLAIMED = _claimed_examples()


def test_spec_md_has_examples() -> None:
    assert len(EXAMPLES) >= 12


@pytest.mark.parametrize("line, text", EXAMPLES, ids=[f"line{n}" for n, _ in EXAMPLES])
def test_spec_md_example_builds(line: int, text: str, tmp_path: Path) -> None:
    # Beside the block libraries the page shows, as the example's include: names them.
    for name, library in library_files(SPEC_MD).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(library, encoding="utf-8")
    ir = gs.build(gs.loads(text, f"{SPEC_MD}:{line}", base=tmp_path / "example.yaml"))
    assert not ir.warnings, ir.warnings


def test_spec_md_shows_a_block_library_an_example_includes() -> None:
    libraries = library_files(SPEC_MD)
    assert libraries
    included = [name for _, text in EXAMPLES for name in yaml.safe_load(text).get("include", [])]
    assert sorted(set(included)) == sorted(libraries)


@pytest.mark.parametrize("line, text", EXAMPLES, ids=[f"line{n}" for n, _ in EXAMPLES])
def test_spec_md_example_matches_schema(line: int, text: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from graphspec.spec.schema import spec_schema

    jsonschema.Draft202012Validator(spec_schema()).validate(yaml.safe_load(text))


@pytest.mark.parametrize("line, text", yaml_examples(README))
def test_readme_yaml_examples_build(line: int, text: str) -> None:
    gs.build(gs.loads(text, f"{README}:{line}"))


def test_ops_md_is_up_to_date() -> None:
    committed = OPS_MD.read_text(encoding="utf-8").replace("\r\n", "\n")
    missing = [name for name in sorted(REGISTRY) if f"\n### {name}\n" not in committed]
    assert not missing, f"docs/ops.md lacks {', '.join(missing)}: run 'python tools/gen_ops_doc.py'"
    assert committed == ops_markdown(), "docs/ops.md is stale: run 'python tools/gen_ops_doc.py'"


def test_ops_md_generator_check_mode(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_ops_doc", ROOT / "tools" / "gen_ops_doc.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    out = tmp_path / "ops.md"
    assert gen.main(["--check", "-o", str(out)]) == 1
    assert gen.main(["-o", str(out)]) == 0
    assert gen.main(["--check", "-o", str(out)]) == 0
    assert out.read_text() == ops_markdown()


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)[:2]
    assert [b.strip() for b in first_blocks] == [INSTALL_AND_RUN, TEST_COMMAND]


def test_ci_runs_the_readme_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "set -euo pipefail" in ci
    assert ".venv/bin/pip install torch==2.13.0 -e '.[dev]'" in ci
    assert ".venv/bin/graphspec train specs/xor.yaml --backend numpy" in ci
    assert TEST_COMMAND in ci
    for tool in ("ruff check", "mypy graphspec"):
        assert tool in ci


def test_docs_link_targets_exist() -> None:
    for doc in (README, SPEC_MD):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


# ---- examples with claims meet them ------------------------------------------------------


def _meets_its_claims(where: str, text: str, backend: str, seed: int | None, out: Path) -> None:
    for name, spec in expand_variants(gs.loads(text, where)).items():
        run = gs.train(spec, backend=backend, out=out / name, seed=seed, progress=False)
        outcomes = check_run(spec.expect, run)
        report = "\n".join(o.render() for o in outcomes)
        assert all(o.held for o in outcomes), f"{where} [{name}] on {backend}:\n{report}"


def test_docs_have_an_example_with_claims() -> None:
    assert any(p.values[0].startswith("docs/spec.md:") for p in CLAIMED)  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("where", "text"), CLAIMED)
def test_doc_example_meets_its_claims(where: str, text: str, backend: str, tmp_path: Path) -> None:
    """Trained as written (a second or two each), a doc example's claims hold."""
    _meets_its_claims(where, text, backend, None, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 5))
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("where", "text"), CLAIMED)
def test_doc_example_meets_its_claims_every_seed(
    where: str, text: str, backend: str, seed: int, tmp_path: Path
) -> None:
    _meets_its_claims(where, text, backend, seed, tmp_path)


# ---- the documented defaults are the model's ----------------------------------------------


def defaults_tables(path: Path) -> list[tuple[int, str, str]]:
    """(line, first cell, second cell) of each row of the tables headed ``| key | default |``
    or ``| optimizer | defaults |``, cells stripped."""
    rows: list[tuple[int, str, str]] = []
    in_table = False
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|"):
            in_table = False
        elif cells[:2] in (["key", "default"], ["optimizer", "defaults"]):
            in_table = True
        elif in_table and not set(cells[0]) <= {"-", " "}:
            rows.append((n, cells[0], cells[1]))
    return rows


def _documented(cell: str) -> object:
    """A table cell's value: ``none`` (not set), or YAML between backticks."""
    if cell == "none":
        return None
    m = re.fullmatch(r"`([^`]+)`", cell)
    assert m, f"a default is `yaml` or none, not {cell!r}"
    return yaml.safe_load(m.group(1))


def _model_default(path: str) -> object:
    """The default of ``train.<path>`` (``data.samples``, ``optimizer.lr``...): a nested
    section without a default is read from its own model's defaults; a section that has
    one (``optimizer``, ``schedule``) is shown by its ``name``."""
    cls: Any = TrainSpec
    value: Any = None
    for key in path.split("."):
        assert cls is not None and key in cls.model_fields, f"train has no key {path!r}"
        field = cls.model_fields[key]
        if value is not None:  # inside a section that has a default: its value's field
            value = getattr(value, key)
        else:
            value = field.get_default(call_default_factory=True)
            value = None if value is PydanticUndefined else value
        models = [a for a in _flat_args(field.annotation) if _is_model(a)]
        cls = (
            type(value)
            if isinstance(value, BaseModel)
            else (models[0] if len(models) == 1 else None)
        )
    if isinstance(value, BaseModel):
        return value.name  # type: ignore[attr-defined]
    return value


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _flat_args(annotation: Any) -> list[Any]:
    args = get_args(annotation)
    return [annotation] if not args else [a for x in args for a in _flat_args(x)]


@pytest.mark.parametrize("doc", [TRAINING_MD, SPEC_MD], ids=lambda p: p.name)
def test_documented_defaults_are_the_models(doc: Path) -> None:
    rows = [(n, k.strip("`"), v) for n, k, v in defaults_tables(doc)]
    keys = [k for _, k, _ in rows if k not in OPTIMIZERS]
    assert {"optimizer", "epochs", "batch_size"} <= set(keys), f"{doc.name}: no defaults table"
    for line, key, cell in rows:
        if key in OPTIMIZERS:
            continue  # test_documented_optimizer_defaults_are_the_models
        documented, model = _documented(cell), _model_default(key)
        if documented is None:  # "none": not set, or an empty list
            assert model in (None, []), f"{doc.name}:{line}: {key} defaults to {model!r}"
        else:
            assert documented == model, f"{doc.name}:{line}: {key} defaults to {model!r}"


def _set_defaults(cls: Any, prefix: str = "") -> list[str]:
    """Every key under ``train`` whose default is a value (not None, not required), nested
    sections included; the optimizer's options are the optimizers table's."""
    out = []
    for key, field in cls.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if key == "name" and prefix:
            continue  # a section with a default is documented by its name (`schedule`)
        if default is not None and default is not PydanticUndefined:
            out.append(prefix + key)
        models = [a for a in _flat_args(field.annotation) if _is_model(a)]
        if key != "optimizer" and len(models) == 1 and get_origin(field.annotation) is not list:
            out += _set_defaults(models[0], f"{prefix}{key}.")
    return out


def test_training_md_states_every_default() -> None:
    documented = {k.strip("`") for _, k, _ in defaults_tables(TRAINING_MD)}
    missing = [k for k in _set_defaults(TrainSpec) if k not in documented]
    assert not missing, f"training.md's defaults table lacks {', '.join(missing)}"


def test_documented_optimizer_defaults_are_the_models() -> None:
    """Every optimizer's row lists each of its options, with the model's default."""
    rows = {k.strip("`"): (line, _documented(v)) for line, k, v in defaults_tables(TRAINING_MD)}
    for name in OPTIMIZERS:
        assert name in rows, f"training.md states no defaults for {name}"
        line, documented = rows[name]
        opt = TrainSpec(data={"source": "xor"}, optimizer={"name": name}).optimizer
        model = opt.model_dump(exclude={"name", "groups"})
        model = {k: list(v) if isinstance(v, tuple) else v for k, v in model.items()}
        assert documented == model, f"training.md:{line}: {name} defaults to {model}"


# ---- the project stands on its own ---------------------------------------------------------

# Documents that are not in the repository: a design note and course material the project
# grew from.  Written so that this file does not match itself.
OUTSIDE = re.compile(r"DESIGN\.md|lecture[-]notes|\.\./shared|\bthe lectur[e]\b", re.I)
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini"}
SOURCES = (
    "README.md",
    "BENCHMARKS.md",
    "pyproject.toml",
    ".ci",
    "docs",
    "graphspec",
    "backends",
    "specs",
    "tests",
    "tools",
)
READ_MAX = 4 * 1024 * 1024


def _project_text_files() -> list[Path]:
    out: list[Path] = []
    for name in SOURCES:
        top = ROOT / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        out += [p for p in files if p.suffix in TEXT_SUFFIXES or p.parent.name == ".ci"]
    return out


def test_nothing_refers_to_documents_outside_the_repository() -> None:
    files = _project_text_files()
    assert any(p.name == "decisions.md" for p in files) and any(p.suffix == ".py" for p in files)
    found = []
    for path in files:
        with path.open("rb") as f:
            text = f.read(READ_MAX).decode("utf-8", errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "references to documents outside the repository:\n" + "\n".join(found)
