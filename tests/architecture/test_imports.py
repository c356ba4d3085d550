"""The package's shape: what ``import graphspec`` loads, no import cycles, and function-level
imports only where they defer something heavy, each saying so."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
from paths import ROOT

PACKAGES = {
    "graphspec": ROOT / "graphspec",
    "graphspec_numpy": ROOT / "backends" / "graphspec_numpy",
    "graphspec_torch": ROOT / "backends" / "graphspec_torch",
}
# Third-party modules a function may import without saying why: each is heavy to load, or
# optional (installed by an extra), so importing it at module level would tax every command.
HEAVY = ("torch", "matplotlib", "onnx", "onnxscript", "onnxruntime", "tensorboard", "PIL")
REASON = "# deferred:"  # a graphspec import inside a function carries this comment


def _modules() -> dict[str, Path]:
    out = {}
    for top, path in PACKAGES.items():
        for f in sorted(path.rglob("*.py")):
            rel = f.relative_to(path).with_suffix("")
            parts = [top, *rel.parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = f
    return out


MODULES = _modules()


def _target(node: ast.Import | ast.ImportFrom, here: str, alias: ast.alias) -> str | None:
    """The project module an import statement loads for ``alias`` (None for third party)."""
    if isinstance(node, ast.Import):
        name = alias.name
    else:
        base = node.module or ""
        if node.level:
            pkg = here if MODULES[here].name == "__init__.py" else here.rpartition(".")[0]
            for _ in range(node.level - 1):
                pkg = pkg.rpartition(".")[0]
            base = f"{pkg}.{base}" if base else pkg
        sub = f"{base}.{alias.name}"
        name = sub if sub in MODULES else base
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported (not those under TYPE_CHECKING, not those
    inside functions)."""
    out: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        stmt = todo.pop(0)
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            out.append(stmt)
        elif isinstance(stmt, ast.If) and not _is_type_checking(stmt.test):
            todo += stmt.body + stmt.orelse
        elif isinstance(stmt, ast.Try):
            todo += stmt.body + [s for h in stmt.handlers for s in h.body] + stmt.orelse
        elif isinstance(stmt, ast.ClassDef):
            todo += stmt.body
    return out


def _function_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    out = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out += [s for s in ast.walk(fn) if isinstance(s, (ast.Import, ast.ImportFrom))]
    return out


def _packages_of(name: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``: the packages Python imports before module ``a.b.c``."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> nx.DiGraph:
    """Module -> the modules its import statements load at import time.  Importing
    ``graphspec.analysis.runner`` first runs ``graphspec/analysis/__init__.py``, so that is an
    edge too, except for the importer's own packages (already being imported)."""
    g = nx.DiGraph()
    for name, path in MODULES.items():
        g.add_node(name)
        own = set(_packages_of(name))
        for stmt in _module_level_imports(ast.parse(path.read_text())):
            for alias in stmt.names:
                target = _target(stmt, name, alias)
                if not target:
                    continue
                for mod in [*_packages_of(target), target]:
                    if mod in MODULES and mod != name and mod not in own:
                        g.add_edge(name, mod)
    return g


def test_no_import_cycles() -> None:
    cycles = sorted(sorted(c) for c in nx.simple_cycles(import_graph()))
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:5])


def test_the_cycle_check_sees_a_cycle() -> None:
    g = import_graph()
    assert g.has_edge("graphspec.verify.compare", "graphspec.verify.report")
    g.add_edge("graphspec.verify.report", "graphspec.verify.compare")
    assert list(nx.simple_cycles(g))


def test_the_cycle_check_sees_imports_through_a_package_init() -> None:
    """``from graphspec.analysis.runner import X`` runs graphspec/analysis/__init__.py first,
    and a cycle through it is a cycle (spec.variants -> train.rundir -> analysis -> ...)."""
    g = import_graph()
    assert g.has_edge("graphspec.train.rundir", "graphspec.analysis")
    assert not g.has_edge("graphspec.analysis.checks", "graphspec.analysis")  # its own package


def test_function_level_imports_say_why() -> None:
    """A function imports a module only to defer loading something heavy (torch, matplotlib,
    the training driver) and says so on the line (``# deferred: ...``); the heavy third-party
    modules themselves need no note."""
    unexplained = []
    for path in MODULES.values():
        lines = path.read_text().split("\n")
        for stmt in _function_imports(ast.parse("\n".join(lines))):
            mod = stmt.module if isinstance(stmt, ast.ImportFrom) else stmt.names[0].name
            if (mod or "").split(".")[0] in HEAVY and getattr(stmt, "level", 0) == 0:
                continue
            text = "\n".join(lines[stmt.lineno - 2 : stmt.end_lineno or stmt.lineno])
            if REASON not in text:
                unexplained.append(f"{path.relative_to(ROOT)}:{stmt.lineno}: {mod}")
    assert unexplained == [], "function-level imports without a reason:\n" + "\n".join(unexplained)


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_graphspec_loads_no_heavy_dependency() -> None:
    loaded = _loaded_after("import graphspec")
    heavy = {m for m in loaded if m.split(".")[0] in ("torch", "matplotlib", "networkx")}
    assert heavy == set()
    assert "graphspec.train.driver" not in loaded and "graphspec.analysis" not in loaded


def test_building_a_spec_loads_no_backend_or_driver() -> None:
    loaded = _loaded_after("import graphspec as gs\ngs.build(gs.load('specs/xor.yaml'))")
    assert "graphspec.ir.graph" in loaded  # the work was done
    assert not {m for m in loaded if m.split(".")[0] in ("torch", "matplotlib")}
    assert "graphspec.train.driver" not in loaded and "graphspec_numpy" not in loaded
