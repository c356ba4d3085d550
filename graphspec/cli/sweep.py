"""``graphspec sweep FILE --grid PATH=V1,V2 ... --out DIR``: train every combination."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from graphspec import threads
from graphspec.cli.common import (
    DTYPES,
    add_backend,
    add_overrides,
    add_threads,
    eprint,
    positive_int,
)
from graphspec.errors import UsageError
from graphspec.runs import sweep
from graphspec.runs import table as runtable


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sweep",
        parents=parents,
        help="train a spec for every combination of values (a grid)",
        description="Train the spec once per combination of the --grid values, each in its "
        "own process and run directory under --out (its output in OUT/logs/); a failing "
        "member is recorded and the others go on. Writes sweep.csv and sweep.md (swept "
        "values, best and final metrics, epochs, time), sweep.png (metrics against the first "
        "swept path) and curves.png.",
    )
    p.add_argument("file", metavar="FILE", help="spec file (YAML)")
    p.add_argument(
        "--grid",
        action="append",
        required=True,
        metavar="PATH=V1,V2,...",
        help="a spec path and its values (repeatable; the sweep is the product)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="the sweep's directory")
    p.add_argument(
        "-j",
        "--jobs",
        type=positive_int,
        default=1,
        metavar="N",
        help="members trained at once (default: 1)",
    )
    add_backend(p)
    p.add_argument("--epochs", type=positive_int, metavar="N", help="override train.epochs")
    p.add_argument("--dtype", choices=DTYPES, default="float64")
    add_threads(p)
    add_overrides(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    if args.jobs > sweep.MAX_JOBS:
        raise UsageError(f"--jobs {args.jobs}: at most {sweep.MAX_JOBS} runs at a time")
    axes = [sweep.parse_grid(g) for g in args.grid]
    paths = [a.path for a in axes]
    if len(set(paths)) < len(paths):
        raise UsageError("a path is given to --grid twice")
    out = Path(args.out)
    members = sweep.members(axes, out)
    sweep.check(args.file, members, list(args.overrides), args.scale)
    train_args = ["--backend", args.backend, "--dtype", args.dtype]
    if args.threads is not None:
        train_args += ["--threads", str(args.threads)]
    if args.jobs > 1:
        threads.warn_oversubscribed(args.threads, args.jobs)
    if args.epochs:
        train_args += ["--epochs", str(args.epochs)]
    for o in args.overrides:
        train_args += ["--set", o]
    if args.scale is not None:
        train_args += ["--scale", args.scale]
    print(f"sweep of {len(members)} runs into {out} ({args.jobs} at a time)", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    sweep.run(args.file, members, train_args, args.jobs, echo=eprint)
    for path in sweep.write_outputs(out, members, axes):
        print(f"wrote {path}", file=sys.stderr)
    print(runtable.text(sweep.table(members)))
    failed = [m for m in members if m.status != "ok"]
    if failed:
        eprint(
            f"error: {len(failed)} of {len(members)} runs failed: "
            + ", ".join(m.name for m in failed)
        )
        return 1
    return 0
