"""What a run leaves behind for people: ``metrics.jsonl``, ``summary.json``, a progress bar."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from graphspec.train.atomic import atomic_open

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and ``os.replace``: readers never see half."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")


class MetricsLog:
    """One JSON object per epoch.  On resume the file is rewritten from the checkpoint's
    history first, so epochs logged after the checkpoint by a killed run disappear."""

    def __init__(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        self.path = run_dir / METRICS
        with atomic_open(self.path, "w", encoding="utf-8") as f:
            for rec in history:
                f.write(json.dumps(rec) + "\n")
        self._f: TextIO | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def append(self, record: dict[str, Any]) -> None:
        assert self._f is not None
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


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
