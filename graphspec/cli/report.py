"""``graphspec report RUN_DIR...``: plots and a summary of one or more runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from graphspec.analysis.plots import run_labels
from graphspec.cli.common import import_feature, require_attr
from graphspec.errors import GraphspecError, Location
from graphspec.runs import table as runtable


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        parents=parents,
        help="plot and summarize training runs",
        description="Draw learning curves and summarize one or more run directories "
        "(several runs are overlaid for comparison).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories")
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="where to write (default: the run directory, or 'report' for several)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    runs = [Path(r) for r in args.runs]
    for r in runs:
        if not r.is_dir():
            raise GraphspecError(
                f"{r} is not a run directory",
                Location(str(r)),
                hint="pass the --out directory of 'graphspec train'",
            )
    out = Path(args.output) if args.output else (runs[0] if len(runs) == 1 else Path("report"))
    plots = import_feature("graphspec.analysis.plots", "reports")
    report = require_attr(plots, "report", "reports")
    for path in report(runs, out) or []:
        print(f"wrote {path}", file=sys.stderr)
    print(summary_table(runs))
    return 0


def summary_table(runs: list[Path]) -> str:
    """Best epoch, best and final metrics per run (graphspec.runs.table)."""

    labels = run_labels(runs) if len(runs) > 1 else [str(runs[0])]
    return runtable.text([runtable.run_row(d, label) for d, label in zip(runs, labels)])
