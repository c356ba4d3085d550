"""Timing and reporting helpers shared by the benchmarks.

Every figure is a ratio against a baseline timed in the same process.  The contenders run
in alternating repetitions (the order flips every repetition), each repetition a few steps
long, so a busy machine slows both sides of a pair alike; the reported ratio is the ratio of
the median step times, and the spread is the interquartile range of the per-pair ratios.

The clock is wall time by default.  ``cpu`` (the process's CPU time) makes single-threaded
runs robust against other work on the machine, which only delays them; with several threads
it would also count threads spinning while they wait, so it goes with ``--threads 1``.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def paired(
    contenders: dict[str, Callable[[int], Any]], reps: int, steps: int, warmup: int = 2,
    sync: Callable[[], Any] | None = None, clock: str = "wall",
) -> dict[str, list[float]]:
    """Seconds per step of each contender in each repetition (``fn(n)`` runs n steps)."""
    names = list(contenders)
    now = CLOCKS[clock]

    def rep(name: str) -> float:
        fn = contenders[name]
        if sync:
            sync()
        t0 = now()
        fn(steps)
        if sync:
            sync()
        return (now() - t0) / steps

    for _ in range(warmup):
        for n in names:
            rep(n)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        for n in names if r % 2 == 0 else reversed(names):
            times[n].append(rep(n))
    return times


def ratio(times: dict[str, list[float]], num: str, den: str) -> dict[str, Any]:
    """The ratio of median step times and the quartiles of the per-repetition ratios."""
    pairs = sorted(a / b for a, b in zip(times[num], times[den]))
    return {
        "ratio": statistics.median(times[num]) / statistics.median(times[den]),
        "q1": _quantile(pairs, 0.25),
        "q3": _quantile(pairs, 0.75),
        "min": pairs[0],
        "max": pairs[-1],
        "num_ms": statistics.median(times[num]) * 1e3,
        "den_ms": statistics.median(times[den]) * 1e3,
        "reps": len(pairs),
    }


def shown(f: dict[str, Any], ms_digits: int = 3, gap: str = " ") -> str:
    """A :func:`ratio` as the scripts print it: ``1.006 (IQR 1.004-1.029; 195.648 vs 194.424
    ms/step)``, ``gap`` before the parenthesis."""
    return (
        f"{f['ratio']:.3f}{gap}(IQR {f['q1']:.3f}-{f['q3']:.3f}; "
        f"{f['num_ms']:.{ms_digits}f} vs {f['den_ms']:.{ms_digits}f} ms/step)"
    )


def _quantile(sorted_values: list[float], q: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    import numpy as np

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover - torch is a dependency
        info["torch"] = None
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]  # type: ignore[func-returns-value]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001 - only decoration for the report
        info["blas"] = None
    return info


def write_section(name: str, text: str, path: Path) -> None:
    """Put ``text`` (which starts with ``<!-- begin: NAME -->`` and ends with ``<!-- end:
    NAME -->``) in place of that section of ``path``, or append it; run.py keeps such
    sections when it rewrites the file."""
    begin, end = f"<!-- begin: {name} -->", f"<!-- end: {name} -->"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end) + "\n?", re.S)
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip() + "\n\n" + text
    path.write_text(new)
