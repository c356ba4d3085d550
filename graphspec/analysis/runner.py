"""Running the analysis entries of one stage (``init`` or ``end``) and indexing their files.

The run directory's ``analysis.json`` lists what each entry wrote, so ``graphspec report``
knows what to draw without the spec::

    {"entries": [{"name": "robustness", "procedure": "fgsm", "at": "end",
                  "files": ["robustness.json"], "summary": {...}, "time": 0.4}]}
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from graphspec.analysis.context import Arrays, Context
from graphspec.analysis.registry import Entry
from graphspec.errors import GraphspecError
from graphspec.ir.graph import IR
from graphspec.spec.models import Spec
from graphspec.train.runlog import read_json, write_json_atomic

INDEX = "analysis.json"


def run_stage(
    entries: list[Entry], at: str, *, spec: Spec, ir: IR, program: Any, params: Arrays,
    splits: dict[str, Arrays], seed: int, run_dir: Path,
) -> list[Path]:
    """Run the entries of stage ``at`` with ``params``; returns the files written."""
    todo = [e for e in entries if e.at == at]
    if not todo:
        return []
    written: list[Path] = []
    records = []
    for entry in todo:
        ctx = Context(spec, ir, program, params, splits, seed, Path(run_dir), at)
        t0 = time.perf_counter()
        summary = entry.attrs.run(ctx, entry)
        records.append({
            "name": entry.name, "procedure": entry.procedure, "at": at,
            "files": [p.name for p in ctx.files], "summary": summary,
            "time": round(time.perf_counter() - t0, 4),
        })
        written += ctx.files
    _update_index(Path(run_dir), records)
    return written


def read_index(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / INDEX
    if not path.is_file():
        return []
    try:
        data = read_json(path)  # bounded and strict; a damaged index hides its entries
    except GraphspecError:
        return []
    entries = data.get("entries", []) if isinstance(data, dict) else []
    return [e for e in entries if isinstance(entries, list) and _well_formed(e)]


def _well_formed(entry: Any) -> bool:
    """An entry as run_stage writes it: names are strings, files plain names in the run
    directory (a damaged or hand-edited index must not point a reader elsewhere)."""
    if not isinstance(entry, dict) or not _plain_name(entry.get("name")):
        return False
    files = entry.get("files", [])
    return isinstance(files, list) and all(_plain_name(f) for f in files)


def _plain_name(name: Any) -> bool:
    """A file name in the run directory (``report`` also writes ``<name>.png`` beside it)."""
    return (isinstance(name, str) and bool(name) and Path(name).name == name
            and not name.startswith(".") and "\\" not in name and "\0" not in name)


def _update_index(run_dir: Path, records: list[dict[str, Any]]) -> None:
    # A stage replaces its own entries and keeps the other stage's (init survives end).
    names = {r["name"] for r in records}
    kept = [e for e in read_index(run_dir) if e["name"] not in names]
    write_json_atomic(run_dir / INDEX, {"entries": kept + records})
