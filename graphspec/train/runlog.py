"""What a run leaves behind for people: ``metrics.jsonl``, ``summary.json``, a progress bar;
and the strict readers of those files.

Run files are strict JSON (RFC 8259): a non-finite number (a NaN metric) is written as
``null``, never as the bare ``NaN``/``Infinity`` tokens that Python's json module emits by
default and that other parsers (JavaScript, jq, pandas' strict mode) refuse.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from graphspec import regular_file
from graphspec.errors import GraphspecError, Location
from graphspec.train.atomic import atomic_open, write_error

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
MAX_SUMMARY_BYTES = 16 << 20  # a summary is a few kB; anything this large is not one
MAX_METRICS_BYTES = 1 << 30  # a million epochs of a few dozen numbers


def finite_or_null(data: Any) -> Any:
    """``data`` with every non-finite float replaced by None (JSON ``null``)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_or_null(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite_or_null(v) for v in data]
    return data


def to_json(data: Any, indent: int | None = None) -> str:
    """Strict JSON text of ``data``: non-finite numbers become ``null``."""
    return json.dumps(finite_or_null(data), indent=indent, allow_nan=False)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write strict JSON through a temporary file and ``os.replace``: readers never see
    half."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(to_json(data, indent=2) + "\n")


class MetricsLog:
    """One JSON object per epoch.  On resume the file is rewritten from the checkpoint's
    history first, so epochs logged after the checkpoint by a killed run disappear."""

    def __init__(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        self.path = run_dir / METRICS
        with atomic_open(self.path, "w", encoding="utf-8") as f:
            for rec in history:
                f.write(to_json(rec) + "\n")
        try:
            self._f: TextIO | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as e:
            raise write_error(self.path, e) from None

    def append(self, record: dict[str, Any]) -> None:
        assert self._f is not None
        try:
            self._f.write(to_json(record) + "\n")
            self._f.flush()
        except OSError as e:
            raise write_error(self.path, e) from None

    def close(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except OSError:  # the failed append already said so; the file is closed
                pass
            self._f = None


# ---- reading run files -----------------------------------------------------------------------


def read_text(path: Path, limit: int) -> str:
    """The text of a run file, at most ``limit`` bytes, or a GraphspecError naming it."""
    where = Location(str(path))
    if not path.is_file():
        raise GraphspecError(f"{path} is missing" + (" (it is a directory)" if path.is_dir()
                                                     else ""), where,
                             hint="pass the --out directory of 'graphspec train'")
    try:
        with regular_file.open_regular(path) as f:
            raw = f.read(limit + 1)
    except regular_file.NotARegularFile as e:
        raise GraphspecError(f"{path} is not a regular file ({e.kind})", where) from None
    except OSError as e:
        raise GraphspecError(f"cannot read {path}: {e.strerror or e}", where) from None
    if len(raw) > limit:
        raise GraphspecError(f"{path} is larger than {limit:,} bytes: not a run file", where)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GraphspecError(f"cannot read {path}: not UTF-8 text ({e.reason} at byte "
                             f"{e.start})", where) from None


def _reject_constant(token: str) -> Any:
    raise ValueError(f"'{token}' is not JSON")


def parse_json(text: str, path: Path, line: int | None = None) -> Any:
    """Strict JSON (no NaN/Infinity tokens), or a GraphspecError at ``path[:line]``."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise GraphspecError(f"{path} nests too deeply", Location(str(path), line)) from None
    except json.JSONDecodeError as e:
        raise GraphspecError(f"{path} is not valid JSON: {e.msg}",
                             Location(str(path), e.lineno if line is None else line, e.colno),
                             hint="the file was damaged; a run writes it whole") from None
    except ValueError as e:  # a NaN or Infinity token
        raise GraphspecError(f"{path} is not valid JSON: {e}", Location(str(path), line),
                             hint="the file was damaged; a run writes it whole") from None


def read_json(path: Path, limit: int = MAX_SUMMARY_BYTES) -> Any:
    """A JSON run file (summary, analysis index or result), strictly parsed and bounded."""
    return parse_json(read_text(path, limit), path)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _numbers(value: Any) -> bool:
    """A mapping of names to numbers or null (non-finite values are written as null)."""
    return isinstance(value, dict) and all(v is None or _is_number(v) for v in value.values())


def read_summary(run_dir: Path) -> dict[str, Any]:
    """``summary.json`` of ``run_dir``, checked to be what a run writes: an object whose
    ``status`` is a string, ``epochs`` an integer, ``final`` numbers by name and ``best``
    null or an object.  Anything else is a GraphspecError naming the file."""
    path = Path(run_dir) / SUMMARY
    data = read_json(path)
    problem = None
    if not isinstance(data, dict):
        problem = f"it holds {type(data).__name__ if data is not None else 'null'}, not an object"
    elif not isinstance(data.get("status"), str):
        problem = "'status' is missing or not a string"
    elif not isinstance(data.get("epochs"), int) or isinstance(data.get("epochs"), bool):
        problem = "'epochs' is missing or not an integer"
    elif "final" in data and not _numbers(data["final"]):
        problem = "'final' is not a mapping of names to numbers"
    elif data.get("best") is not None and not isinstance(data["best"], dict):
        problem = "'best' is neither null nor an object"
    if problem:
        raise GraphspecError(f"{path} is not a run summary: {problem}", Location(str(path)),
                             hint="the file was damaged; a run writes it whole")
    return data


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The per-epoch records of ``metrics.jsonl``: each line an object with an integer
    ``epoch`` and numbers (or null) for the rest; a bad line is an error at its number."""
    path = Path(run_dir) / METRICS
    rows = []
    for i, line in enumerate(read_text(path, MAX_METRICS_BYTES).split("\n")):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            row = None
        problem = ""
        if not isinstance(row, dict):
            problem = "is not a JSON object (one epoch's record)"
        elif not isinstance(row.get("epoch"), int) or isinstance(row.get("epoch"), bool):
            problem = "has no integer 'epoch'"
        else:
            bad = [k for k, v in row.items() if k != "epoch" and v is not None
                   and not _is_number(v)]
            if bad:
                problem = f"is not one epoch's record: '{bad[0][:100]}' is not a number"
        if problem:
            raise GraphspecError(f"line {i + 1} of {path} {problem}", Location(str(path), i + 1),
                                 hint="the file was damaged; a run writes one JSON object "
                                 "per line")
        rows.append(row)
    return rows


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class Progress:
    """A one-line bar on stderr, redrawn at most every 0.1 s; silent unless stderr is a
    terminal (logs and pipes get metrics.jsonl, not carriage returns)."""

    WIDTH = 24

    def __init__(
        self, total: int, enabled: bool, stream: TextIO | None = None,
        metrics: list[str] | tuple[str, ...] = (),
    ) -> None:
        self.stream = stream or sys.stderr
        self.metrics = list(metrics)
        self.enabled = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total = total
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.drawn = False

    def update(self, epoch: int, record: dict[str, Any], force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last < 0.1 and epoch < self.total:
            return
        self.last = now
        done = int(self.WIDTH * epoch / max(self.total, 1))
        bar = "#" * done + "." * (self.WIDTH - done)
        stats = "  ".join(f"{k} {_fmt(record[k])}" for k in self.shown(record))
        line = f"epoch {epoch:>{len(str(self.total))}}/{self.total} [{bar}] " \
               f"{now - self.t0:.1f}s  {stats}"
        width = shutil.get_terminal_size((100, 20)).columns - 1  # a wrapped line cannot redraw
        self.stream.write("\r" + line[:width] + "\x1b[K")
        self.stream.flush()
        self.drawn = True

    def shown(self, record: dict[str, Any]) -> list[str]:
        """The losses, then each metric (on validation data when there is some)."""
        keys: list[str] = [k for k in ("train_loss", "val_loss") if k in record]
        for m in self.metrics:
            keys += [k for k in (f"val_{m}", f"train_{m}") if k in record][:1]
        return keys

    def message(self, text: str) -> None:
        """A line that must be seen (interrupts), printed whether or not the bar shows."""
        if self.drawn:
            self.stream.write("\n")
            self.drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False
