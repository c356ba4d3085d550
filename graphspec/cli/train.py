"""``graphspec train FILE --backend B``: train a spec with the core's training driver."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from graphspec.cli.common import (
    DTYPES,
    add_max_params,
    build_ir,
    import_feature,
    load_spec,
    positive_int,
    print_warnings,
    require_attr,
)


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        parents=parents,
        help="train a spec and save the run",
        description="Train with the spec's data, optimizer and schedule. The run directory "
        "holds checkpoints, the metrics log and the final parameters; --resume continues "
        "from its last checkpoint.",
    )
    p.add_argument("file", metavar="FILE", help="spec file (YAML)")
    p.add_argument("-b", "--backend", default="numpy", help="backend name (default: numpy)")
    p.add_argument("--epochs", type=positive_int, metavar="N", help="override train.epochs")
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<spec name>)")
    p.add_argument("--seed", type=int, help="override the spec's seed")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--dtype", choices=DTYPES, default="float64")
    p.add_argument("--device", default="auto", help="torch: auto, cpu, cuda, cuda:N")
    p.add_argument(
        "--plot",
        action="store_true",
        help="draw the run's curves into the run directory afterwards",
    )
    add_max_params(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from graphspec.spec.requirements import require_training

    spec = load_spec(args.file)
    require_training(spec)
    # Build first: every spec error and the parameter budget are reported before training.
    ir = build_ir(spec, args.max_params)
    print_warnings(ir)
    driver = import_feature("graphspec.train.driver", "training")
    train = require_attr(driver, "train", "training")
    out = Path(args.out) if args.out else Path("runs") / spec.name
    run_result = train(
        spec,
        backend=args.backend,
        out=out,
        epochs=args.epochs,
        seed=args.seed,
        resume=args.resume,
        dtype=args.dtype,
        device=args.device,
        progress=True,
    )
    _print_summary(run_result, out)
    if args.plot:
        plots = import_feature("graphspec.plots", "plotting (--plot)")
        report = require_attr(plots, "report", "plotting (--plot)")
        for path in report([out], out) or []:
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _print_summary(run_result: Any, out: Path) -> None:
    """One line a person reads at the end of a run: how it ended and the final figures."""
    status = getattr(run_result, "status", None)
    epochs = getattr(run_result, "epochs", None)
    final = getattr(run_result, "final", None) or {}
    if status is not None:
        head = f"{status} after {epochs} epoch{'s' * (epochs != 1)}" if epochs else str(status)
        shown = {k: v for k, v in final.items() if k.startswith("val_")} or final
        figures = ", ".join(f"{k} {v:.4g}" for k, v in shown.items() if isinstance(v, float | int))
        print(head + (f": {figures}" if figures else ""))
    print(f"run saved in {out}")
