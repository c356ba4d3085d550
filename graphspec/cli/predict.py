"""``graphspec predict RUN_DIR --data FILE -o OUT``: the trained model's outputs for new data."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from graphspec.cli.common import add_threads, positive_int, write_bytes
from graphspec.errors import UsageError
from graphspec.runs.run import load_run

OUT_TYPES = (".csv", ".npz")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Which parameters of a finished run, on which backend and device (predict, evaluate,
    sample)."""
    p.add_argument(
        "--checkpoint",
        choices=("best", "last"),
        default="best",
        help="best: the parameters the run ended with (restored best); last: the "
        "last epoch's (default: best)",
    )
    p.add_argument("-b", "--backend", help="backend (default: the one the run trained with)")
    p.add_argument("--device", default="auto", help="torch: auto, cpu, cuda, cuda:N")
    add_threads(p)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """What predict and evaluate share: the run, the data, the checkpoint, the backend."""
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory ('graphspec train --out')")
    p.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help="a .csv or .npz file, read with the training data's column mapping",
    )
    add_model_options(p)


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "predict",
        parents=parents,
        help="outputs of a trained model for new data",
        description="Run a trained model on a .csv or .npz file (targets are not needed) and "
        "write its outputs; for a classifier also the predicted class (<output>_class) and "
        "the probabilities (<output>_prob). The output format follows -o's extension.",
    )
    add_run_arguments(p)
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="a .csv or .npz file (default: CSV on standard output)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=1024,
        metavar="N",
        help="rows per forward pass (default: 1024)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    out = Path(args.output) if args.output else None
    if out is not None and out.suffix.lower() not in OUT_TYPES:
        raise UsageError(f"-o {args.output}: the output file must end in .csv or .npz")
    result = load_run(args.run_dir).predict(
        args.data,
        checkpoint=args.checkpoint,
        backend=args.backend,
        device=args.device,
        batch_size=args.batch_size,
        threads=args.threads,
    )
    if out is not None and out.suffix.lower() == ".npz":
        buf = io.BytesIO()
        np.savez(buf, **result)  # type: ignore[arg-type]
        write_bytes(out, buf.getvalue())
    else:
        text = to_csv(result)
        if out is None:
            sys.stdout.write(text)
            return 0
        write_bytes(out, text.encode("utf-8"))
    rows = len(next(iter(result.values()))) if result else 0
    print(f"wrote {out} ({rows} rows: {', '.join(result)})", file=sys.stderr)
    return 0


def to_csv(arrays: dict[str, np.ndarray]) -> str:
    """One column per scalar, ``name_j`` for each entry of a wider output (row-major)."""
    cols: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        flat = np.asarray(value).reshape(len(value), -1)
        for j in range(flat.shape[1]):
            cols[name if flat.shape[1] == 1 else f"{name}_{j}"] = flat[:, j]
    if not cols:
        return ""
    n = len(next(iter(cols.values())))
    lines = [",".join(cols)]
    for i in range(n):
        lines.append(",".join(_cell(c[i]) for c in cols.values()))
    return "\n".join(lines) + "\n"


def _cell(v: np.generic) -> str:
    return str(int(v)) if np.issubdtype(type(v), np.integer) else repr(float(v))
