"""CSV loading: graphspec's reader against ``np.loadtxt`` on the same file, in one process.

    python tools/bench/bench_csv.py [--rows 200000] [--cols 21] [--reps 7] [--clock cpu]
        [--write]   # --write: replace the section in BENCHMARKS.md

A generated file (a header row, then ``--rows`` rows of ``--cols`` numbers written with five
decimals, ~35 MiB at the defaults) is read by ``graphspec.train.data_files.read`` (the fast
path: NumPy's C reader a piece at a time, checked against the format) and by ``np.loadtxt``
(``delimiter=","``, ``skiprows=1``), alternating repetition by repetition; the ratio is that
of the median times.  Peak memory is tracemalloc's peak while one read runs (NumPy's
buffers included), over the size of the resulting float64 array.  The reference parser
(csv.reader, cell by cell; since issue 17 it only reads files the fast path hands over,
to locate their errors) is timed once, for the record.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CLOCKS, machine, paired, ratio, write_section  # noqa: E402

from graphspec.train import data_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NAME = "bench_csv"


def write_csv(path: Path, rows: int, cols: int) -> None:
    rng = np.random.default_rng(0)
    header = ",".join(f"c{j}" for j in range(cols))
    np.savetxt(
        path,
        rng.standard_normal((rows, cols)),
        fmt="%.5f",
        delimiter=",",
        header=header,
        comments="",
    )


def contenders(path: Path) -> dict[str, Callable[[], np.ndarray]]:
    def graphspec_read() -> np.ndarray:
        with data_files.read(path, path.name, None) as table:
            return table.values

    def loadtxt() -> np.ndarray:
        return np.loadtxt(path, dtype=np.float64, delimiter=",", skiprows=1)

    def cells() -> np.ndarray:
        with open(path, "rb") as f:
            return data_files._parse_csv_cells(f, path.name, None)[3]

    return {"graphspec": graphspec_read, "loadtxt": loadtxt, "cells": cells}


def peak_bytes(fn: Callable[[], np.ndarray]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run_benchmark(rows: int, cols: int, reps: int, clock: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        write_csv(path, rows, cols)
        fns = contenders(path)
        assert np.array_equal(fns["graphspec"](), fns["loadtxt"]())
        times = paired(
            {k: (lambda n, f=fns[k]: [f() for _ in range(n)]) for k in ("graphspec", "loadtxt")},
            reps,
            steps=1,
            warmup=1,
            clock=clock,
        )
        now = CLOCKS[clock]
        t0 = now()
        fns["cells"]()
        cells_s = now() - t0
        peaks = {k: peak_bytes(fns[k]) for k in ("graphspec", "loadtxt", "cells")}
        return {
            "rows": rows,
            "cols": cols,
            "file_bytes": path.stat().st_size,
            "result_bytes": rows * cols * 8,
            "fig": ratio(times, "graphspec", "loadtxt"),
            "cells_s": cells_s,
            "peaks": peaks,
            "clock": clock,
            "info": machine(),
            "when": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        }


def markdown(r: dict[str, Any]) -> str:
    f, mib = r["fig"], 2**20
    result = r["result_bytes"]

    def mem(k: str) -> str:
        return f"{r['peaks'][k] / mib:.1f} MiB ({r['peaks'][k] / result:.2f}x)"

    load = r["info"].get("load_average") or ()
    lines = [
        f"<!-- begin: {NAME} -->",
        "## CSV loading",
        "",
        f"Written by `python tools/bench/bench_csv.py --write` on {r['when']} "
        f"({r['clock']} clock; load average {', '.join(f'{x:.1f}' for x in load)}): "
        f"{r['rows']:,} rows x {r['cols']} columns with a header "
        f"({r['file_bytes'] / mib:.1f} MiB of text, {result / mib:.1f} MiB as float64), read "
        "by `graphspec.train.data_files.read` and by `np.loadtxt` in one process, "
        f"alternating ({f['reps']} repetitions; median seconds, the interquartile range of "
        "the per-repetition ratios in parentheses). Peak memory is tracemalloc's during one "
        "read, over the float64 result. The reference parser (csv.reader cell by cell, all "
        "there was before issue 17) now only reads files the fast path hands over: quotes, "
        "a lone `\\r`, a cell NumPy does not read as a finite number (NaN, `1_000`, text), "
        "rows of other widths, to locate the error or the first bad cell of each column.",
        "",
        "| reader | seconds | vs np.loadtxt | peak memory (x result) |",
        "|---|---|---|---|",
        f"| graphspec (fast path) | {f['num_ms'] / 1e3:.2f} | {f['ratio']:.2f} "
        f"({f['q1']:.2f}-{f['q3']:.2f}) | {mem('graphspec')} |",
        f"| np.loadtxt | {f['den_ms'] / 1e3:.2f} | 1 | {mem('loadtxt')} |",
        f"| reference parser (cell by cell) | {r['cells_s']:.2f} | "
        f"{r['cells_s'] / (f['den_ms'] / 1e3):.1f} | {mem('cells')} |",
        f"<!-- end: {NAME} -->",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--cols", type=int, default=21)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    ap.add_argument("--write", action="store_true", help="replace the section in BENCHMARKS.md")
    a = ap.parse_args()
    text = markdown(run_benchmark(a.rows, a.cols, a.reps, a.clock))
    print(text)
    if a.write:
        write_section(NAME, text, ROOT / "BENCHMARKS.md")
        print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
