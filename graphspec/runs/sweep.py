"""Grid sweeps: train a spec once per combination of overridden values.

``--grid train.optimizer.lr=0.01,0.1,1 --grid seed=0,1,2`` is the product of the values
(9 members); each member is the spec with those ``--set`` overrides, trained in its own
process (``graphspec train``) into ``OUT/<member>/`` with at most ``jobs`` at a time.
Every member's spec is loaded and checked before any training, so a bad value fails the
sweep at once; a member that fails while training is recorded (its status and log) and
the others go on.  The summary table (graphspec.runs.table) goes to ``sweep.csv`` and
``sweep.md``; ``sweep.png`` draws the final metrics against the first swept path.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphspec import threads
from graphspec.runs import table as runtable
from graphspec.errors import SpecError, UsageError
from graphspec.spec.overrides import parse as parse_override
from graphspec.ir.build import build
from graphspec.spec.load import load
from graphspec.spec.variants import expand_variants
from graphspec.train.atomic import atomic_open
from graphspec.analysis.plots import plot_sweep
from graphspec.analysis.plots import plot_curves, read_history

MAX_MEMBERS = 1000
MAX_VALUES = 100
LOGS = "logs"  # OUT/logs/<member>.log: each member's output, beside (not in) its run
MAX_JOBS = 64


@dataclass(frozen=True)
class Axis:
    path: str
    values: tuple[str, ...]  # as written (YAML text), each a valid override value


@dataclass
class Member:
    name: str
    values: dict[str, Any]  # path -> parsed value
    overrides: list[str]
    run_dir: Path
    status: str = "pending"
    returncode: int | None = None
    log_tail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def log(self) -> Path:
        return self.run_dir.parent / LOGS / f"{self.name}.log"


def parse_grid(text: str) -> Axis:
    """``PATH=V1,V2,...``: commas inside brackets or quotes belong to a value."""
    path, eq, rest = text.partition("=")
    path = path.strip()
    if not eq or not path:
        raise UsageError(f"--grid {text}: expected PATH=V1,V2,... (e.g. seed=0,1,2)")
    values = tuple(v.strip() for v in _split_top(rest))
    if not values or any(not v for v in values):
        raise UsageError(f"--grid {text}: empty value (values are separated by commas)")
    if len(values) > MAX_VALUES:
        raise UsageError(f"--grid {path}: more than {MAX_VALUES} values")
    if len(set(values)) < len(values):
        raise UsageError(f"--grid {path}: a value is repeated")
    for v in values:
        parse_override(f"{path}={v}")  # a malformed path or value: a located SpecError
    return Axis(path, values)


def _split_top(text: str) -> list[str]:
    parts, depth, quote, cur = [], 0, "", ""
    for c in text:
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += c
    parts.append(cur)
    return parts


def members(axes: list[Axis], out: Path) -> list[Member]:
    combos = list(itertools.product(*(a.values for a in axes)))
    if len(combos) > MAX_MEMBERS:
        raise UsageError(f"the grid has {len(combos)} members; at most {MAX_MEMBERS}")
    result = []
    width = len(str(len(combos) - 1))
    for i, combo in enumerate(combos):
        overrides = [f"{a.path}={v}" for a, v in zip(axes, combo)]
        label = "_".join(f"{a.path.split('.')[-1]}={v}" for a, v in zip(axes, combo))
        name = f"{i:0{width}d}_" + _safe(label)
        values = {a.path: parse_override(o).value for a, o in zip(axes, overrides)}
        result.append(Member(name, values, overrides, out / name))
    return result


def _safe(text: str) -> str:
    """A folder name: letters, digits and ``_.=-``, at most 80 characters."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", text)[:80].strip("-.") or "run"


def check(
    spec_file: str, members_: list[Member], base_overrides: list[str], scale: str | None = None
) -> None:
    """Load and build every member's spec: a bad value fails before anything trains."""

    for m in members_:
        try:
            for v in expand_variants(load(spec_file, base_overrides + m.overrides, scale)).values():
                build(v)
        except SpecError as e:
            e.notes.append((f"in sweep member {m.name}", None))
            raise


def run(
    spec_file: str,
    members_: list[Member],
    train_args: list[str],
    jobs: int,
    echo: Any = None,
) -> None:
    """Train every member in its own process, ``jobs`` at a time; fills in each status.
    Members running side by side share the cores: each gets ``OMP_NUM_THREADS`` of its
    share unless it is set (``--threads auto`` takes no more; graphspec.threads)."""
    env = dict(os.environ)
    if jobs > 1:
        env.setdefault("OMP_NUM_THREADS", str(threads.share(jobs)))
    pending = list(members_)
    running: list[tuple[Member, subprocess.Popen[bytes], Any]] = []
    while pending or running:
        while pending and len(running) < jobs:
            m = pending.pop(0)
            m.log.parent.mkdir(parents=True, exist_ok=True)
            cmd = [
                sys.executable,
                "-m",
                "graphspec",
                "train",
                spec_file,
                "--out",
                str(m.run_dir),
                *train_args,
            ]
            for o in m.overrides:
                cmd += ["--set", o]
            log = open(m.log, "wb")  # noqa: SIM115 - closed when the process ends
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            running.append((m, proc, log))
            m.status = "running"
        for item in list(running):
            m, proc, log = item
            if proc.poll() is None:
                continue
            log.close()
            running.remove(item)
            m.returncode = proc.returncode
            m.status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
            if proc.returncode != 0:
                m.log_tail = _tail(m.log)
            if echo:
                echo(f"{m.name}: {m.status}")
        if running:
            time.sleep(0.05)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(f.tell() - 4096, 0))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    found = [ln.strip() for ln in text.splitlines() if "error:" in ln]
    return (
        found[-1] if found else " / ".join(ln.strip() for ln in text.strip().splitlines()[-lines:])
    )


def table(members_: list[Member]) -> list[runtable.Row]:
    rows = []
    for m in members_:
        row = runtable.run_row(m.run_dir, m.name, dict(m.values))
        if m.status != "ok":
            row["status"] = m.status
            row["error"] = m.log_tail
        rows.append(row)
    return rows


def write_outputs(out: Path, members_: list[Member], axes: list[Axis]) -> list[Path]:
    """sweep.csv, sweep.md, sweep.png (and the members' overlaid curves, curves.png)."""

    rows = table(members_)
    written = []
    for name, text in (("sweep.csv", runtable.to_csv(rows)), ("sweep.md", runtable.markdown(rows))):
        with atomic_open(out / name, "w", encoding="utf-8") as f:
            f.write(text)
        written.append(out / name)

    picture = plot_sweep(rows, axes[0].path, out / "sweep.png")
    if picture is not None:
        written.append(picture)
    ok = [m.run_dir for m in members_ if m.status == "ok"]
    if ok:
        best = dict(zip([m.name for m in members_ if m.status == "ok"], runtable.best_epochs(ok)))
        histories = {m.name: read_history(m.run_dir) for m in members_ if m.status == "ok"}
        written.append(plot_curves(histories, out / "curves.png", best=best))
    return written
