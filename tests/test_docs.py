"""The docs stay true: every spec.md example validates, ops.md matches the registry, the
README's two commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import graphspec as gs
from graphspec.ops import REGISTRY
from graphspec.opsdoc import ops_markdown

ROOT = Path(__file__).parent.parent
SPEC_MD = ROOT / "docs" / "spec.md"
OPS_MD = ROOT / "docs" / "ops.md"
README = ROOT / "README.md"

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


EXAMPLES = yaml_examples(SPEC_MD)


def test_spec_md_has_examples() -> None:
    assert len(EXAMPLES) >= 12


@pytest.mark.parametrize("line, text", EXAMPLES, ids=[f"line{n}" for n, _ in EXAMPLES])
def test_spec_md_example_builds(line: int, text: str) -> None:
    ir = gs.build(gs.loads(text, f"{SPEC_MD}:{line}"))
    assert not ir.warnings, ir.warnings


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
