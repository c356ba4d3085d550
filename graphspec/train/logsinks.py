"""Where a run's per-epoch records go besides ``metrics.jsonl``: plain progress lines when
there is no terminal, ``metrics.csv``, and TensorBoard event files.

The driver hands every epoch's record to :class:`Sinks` (``append``) and closes it at the
end; each sink is independent of the others and of the progress bar.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, TextIO

from graphspec.errors import GraphspecError
from graphspec.train.atomic import atomic_open

CSV = "metrics.csv"
TENSORBOARD = "tensorboard"  # the event files' folder in the run directory
Record = dict[str, Any]


class EpochLines:
    """One line per epoch (or every ``every`` epochs, and the last) when stderr is not a
    terminal, where the progress bar stays silent: CI and ``nohup`` logs show progress.
    On stdout, with the run's summary: stderr stays diagnostics only."""

    def __init__(self, total: int, every: int, shown: Any, stream: TextIO | None = None) -> None:
        self.total, self.every, self.shown = total, max(int(every), 1), shown
        self.stream = stream or sys.stdout

    def append(self, record: Record) -> None:
        epoch = int(record.get("epoch", 0))
        if epoch % self.every and epoch != self.total:
            return
        stats = "  ".join(f"{k} {_fmt(record[k])}" for k in self.shown(record))
        self.stream.write(f"epoch {epoch}/{self.total}  {stats}\n")
        self.stream.flush()

    def close(self) -> None:
        pass


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class CsvLog:
    """``metrics.csv``: a header from the first record's keys, one row per epoch.  Like
    metrics.jsonl it is rewritten from the checkpoint's history on resume."""

    def __init__(self, run_dir: Path, history: list[Record]) -> None:
        self.path = Path(run_dir) / CSV
        self.columns: list[str] = list(history[0]) if history else []
        with atomic_open(self.path, "w", encoding="utf-8") as f:
            if self.columns:
                writer = csv.writer(f)
                writer.writerow(self.columns)
                for rec in history:
                    writer.writerow(self._row(rec))
        self._f: TextIO | None = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._f)

    def _row(self, rec: Record) -> list[Any]:
        return [rec.get(k, "") for k in self.columns]

    def append(self, record: Record) -> None:
        assert self._f is not None
        if not self.columns:
            self.columns = list(record)
            self._writer.writerow(self.columns)
        self._writer.writerow(self._row(record))
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class TensorBoardLog:
    """Scalars through torch's ``SummaryWriter`` into ``RUN_DIR/tensorboard``: one tag per
    quantity (``loss/train``, ``loss/val``, ``lr``...), the epoch as the step."""

    def __init__(self, run_dir: Path) -> None:
        self.writer = require_tensorboard()(log_dir=str(Path(run_dir) / TENSORBOARD))

    def append(self, record: Record) -> None:
        step = int(record.get("epoch", 0))
        for key, value in record.items():
            if key == "epoch" or not isinstance(value, int | float):
                continue
            self.writer.add_scalar(tag(key), float(value), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def require_tensorboard() -> Any:
    """torch's ``SummaryWriter`` class, or a clear error naming the optional extra."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # torch without the tensorboard package, or no torch
        raise GraphspecError(
            f"--tensorboard needs the 'tensorboard' package ({e})",
            hint="pip install 'graphspec[tensorboard]'",
        ) from None
    return SummaryWriter


def tag(key: str) -> str:
    """``train_loss`` -> ``loss/train``: TensorBoard groups a quantity's splits in one chart."""
    for split in ("train", "val"):
        if key.startswith(split + "_"):
            return f"{key[len(split) + 1 :]}/{split}"
    return key


class Sinks:
    """Every sink a run writes to; ``append`` each epoch's record, ``close`` at the end."""

    def __init__(self, sinks: list[Any]) -> None:
        self.sinks = sinks

    @classmethod
    def open(
        cls,
        run_dir: Path,
        history: list[Record],
        total: int,
        *,
        lines: bool,
        log_every: int | None,
        tensorboard: bool,
        shown: Any,
    ) -> Sinks:
        """``lines``: print epoch lines (progress wanted but stderr is no terminal)."""
        sinks: list[Any] = []
        if tensorboard:  # first: a missing package fails before any file is written
            sinks.append(TensorBoardLog(run_dir))
        sinks.append(CsvLog(run_dir, history))
        if lines:
            sinks.append(EpochLines(total, log_every or 1, shown))
        return cls(sinks)

    def append(self, record: Record) -> None:
        for sink in self.sinks:
            sink.append(record)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
