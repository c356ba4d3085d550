"""``graphspec evaluate RUN_DIR --data FILE``: loss terms and metrics on labelled data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from graphspec.analysis.plots import plot_confusion
from graphspec.cli.predict import add_run_arguments
from graphspec.runs.run import Evaluation, load_run


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "evaluate",
        parents=parents,
        help="loss and metrics of a trained model on labelled data",
        description="Evaluate a trained model on a labelled .csv or .npz file: the loss, its "
        "terms and the spec's metrics (as training computes them for validation data), and "
        "for a classifier the confusion matrix.",
    )
    add_run_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--plot",
        metavar="PNG",
        nargs="?",
        const="",
        help="draw the confusion matrix (default: confusion.png)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    result = load_run(args.run_dir).evaluate(
        args.data,
        checkpoint=args.checkpoint,
        backend=args.backend,
        device=args.device,
        threads=args.threads,
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(render(result))
    if args.plot is not None and result.confusion:
        out = Path(args.plot or "confusion.png")
        print(f"wrote {plot_confusion(result.confusion, out)}", file=sys.stderr)
    return 0


def render(result: object) -> str:

    assert isinstance(result, Evaluation)
    width = max(len(k) for k in result.metrics) if result.metrics else 6
    lines = [f"{result.rows} rows"]
    lines += [f"{k:<{width}}  {v:.6g}" for k, v in result.metrics.items()]
    for name, m in result.confusion.items():
        lines += ["", f"confusion matrix of '{name}' (rows: true class, columns: predicted)"]
        cell = max(len(str(int(m.max()))) if m.size else 1, len(str(len(m) - 1)), 3)
        lines.append(" " * (cell + 2) + " ".join(f"{j:>{cell}}" for j in range(len(m))))
        for i, row in enumerate(m):
            lines.append(f"{i:>{cell}} |" + " ".join(f"{int(c):>{cell}}" for c in row))
    return "\n".join(lines)
