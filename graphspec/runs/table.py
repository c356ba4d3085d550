"""A table of runs side by side: status, epochs, best epoch and the best and final metrics.

``graphspec report``, ``graphspec sweep`` and training a spec's variants print it; a sweep
also writes it as CSV and Markdown.  Rows are plain dicts read from each run's
``summary.json`` and ``metrics.jsonl``; a run that failed before writing them still gets
a row (its status says why).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from graphspec.errors import GraphspecError
from graphspec.train.runlog import read_summary
from graphspec.train.runlog import read_metrics

FIT_ACCURACY = 1.0  # "fitted": every training label right (fit_epoch, as Zhang et al.)
Row = dict[str, Any]


def run_row(run_dir: Path, label: str, extra: dict[str, Any] | None = None) -> Row:
    """One run's row: ``label``, the ``extra`` columns (a sweep's values), then status,
    epochs, best epoch, best monitored value, fit epoch, final metrics and time."""
    row: Row = {"run": label, **(extra or {})}
    summary = _summary(run_dir)
    if summary is None:
        row["status"] = "no summary"
        return row
    row["status"] = summary.get("status")
    row["epochs"] = summary.get("epochs")
    best = summary.get("best") if isinstance(summary.get("best"), dict) else None
    row["best_epoch"] = best.get("epoch") if best else None
    if best:
        row[f"best_{best.get('monitor')}"] = best.get("value")
    row["fit_epoch"] = _fit_epoch(run_dir)
    final = summary.get("final") if isinstance(summary.get("final"), dict) else {}
    for key, value in (final or {}).items():
        if _shown(key):
            row[key] = value
    row["time_s"] = summary.get("wall_time_s")
    return row


def _shown(key: str) -> bool:
    """Final losses and metrics per split; loss terms are left to metrics.jsonl."""
    split, _, name = key.partition("_")
    return split in ("train", "val", "test") and (
        name == "loss" or "accuracy" in name or name in ("mse", "mae")
    )


def _summary(run_dir: Path) -> dict[str, Any] | None:

    try:
        return read_summary(run_dir)  # bounded, strict, checked to be a run's summary
    except GraphspecError:
        return None


def _fit_epoch(run_dir: Path) -> int | None:
    """The first epoch whose training accuracy reaches FIT_ACCURACY (Zhang et al.'s
    "time to fit"), or None (no accuracy metric, never, or no readable log)."""

    try:
        records = read_metrics(run_dir)  # bounded; each record an integer epoch and numbers
    except GraphspecError:
        return None
    for rec in records:
        accs = [
            v
            for k, v in rec.items()
            if k.startswith("train_") and "accuracy" in k and isinstance(v, int | float)
        ]
        if accs and accs[0] >= FIT_ACCURACY:
            return int(rec["epoch"])
    return None


def columns(rows: Sequence[Row]) -> list[str]:
    cols: dict[str, None] = {}
    for row in rows:
        for k in row:
            cols.setdefault(k, None)
    return list(cols)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v).replace("|", "\\|").replace("\n", " ")


def text(rows: Sequence[Row]) -> str:
    """Aligned columns for a terminal."""
    cols = columns(rows)
    cells = [cols] + [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells)


def markdown(rows: Sequence[Row]) -> str:
    cols = columns(rows)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def to_csv(rows: Sequence[Row]) -> str:
    cols = columns(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for r in rows:
        writer.writerow(["" if r.get(c) is None else r.get(c) for c in cols])
    return buf.getvalue()


def best_epochs(run_dirs: Sequence[Path]) -> list[int | None]:
    """Each run's best epoch (what restore-best restored), for marking on curves."""
    out: list[int | None] = []
    for d in run_dirs:
        s = _summary(Path(d))
        best = s.get("best") if s else None
        out.append(
            int(best["epoch"])
            if isinstance(best, dict) and isinstance(best.get("epoch"), int)
            else None
        )
    return out
