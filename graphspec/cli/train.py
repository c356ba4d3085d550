"""``graphspec train FILE --backend B``: train a spec with the core's training driver."""

from __future__ import annotations

import argparse
import shlex
import sys
import typing
from pathlib import Path
from typing import Any

from graphspec.analysis.checks import check_variant
from graphspec.analysis.pictures import plot_run
from graphspec.analysis.plots import report
from graphspec.backend import CompileOptions
from graphspec.backend_choice import AUTO, resolve
from graphspec.cli.common import (
    DEFAULT_BACKEND,
    DTYPES,
    add_allow_outside,
    add_backend,
    add_max_params,
    add_overrides,
    add_threads,
    eprint,
    float_in,
    import_feature,
    load_spec,
    non_negative_int,
    positive_int,
    print_warnings,
    require_attr,
    write_text,
)
from graphspec.cli.report import summary_table
from graphspec.errors import TrainingError, UsageError
from graphspec.ir.memory import check_memory
from graphspec.runs.run import load_run
from graphspec.runs.sample import SAMPLES, as_lines, sample_text
from graphspec.spec.variants import expand_variants, select
from graphspec.train import rundir
from graphspec.train.atomic import WriteError
from graphspec.train.expect import ClaimError, check_run
from graphspec.train.logsinks import require_tensorboard
from graphspec.train.parallel import in_worker, require_distributed, worker_rank

# The choices of CompileOptions' amp and capture fields, read from their type hints.
AMP_MODES: tuple[str, ...] = typing.get_args(typing.get_type_hints(CompileOptions)["amp"])
CAPTURE_MODES: tuple[str, ...] = typing.get_args(typing.get_type_hints(CompileOptions)["capture"])


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        parents=parents,
        help="train a spec and save the run",
        description="Train with the spec's data, optimizer and schedule. The run directory "
        "holds checkpoints, the metrics log and the final parameters; --resume continues "
        "from its last checkpoint (also past its end, with a larger --epochs). A directory "
        "that holds a run is never replaced without --overwrite.",
    )
    p.add_argument("file", metavar="FILE", help="spec file (YAML)")
    add_backend(p)
    p.add_argument("--epochs", type=positive_int, metavar="N", help="override train.epochs")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="run directory (default: runs/<spec name>/<n>, the next free n)",
    )
    p.add_argument("--seed", type=int, help="override the spec's seed")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (default: the spec's latest run) from its checkpoint",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run that --out holds",
    )
    p.add_argument(
        "--init-from",
        metavar="RUN",
        help="start from the trained parameters of a run directory or checkpoint",
    )
    p.add_argument("--dtype", choices=DTYPES, default="float64")
    p.add_argument("--device", default="auto", help="torch: auto, cpu, cuda, cuda:N")
    add_threads(p)
    p.add_argument(
        "--plot",
        action="store_true",
        help="draw the run's curves into the run directory afterwards",
    )
    p.add_argument(
        "--variant",
        action="append",
        metavar="NAME",
        help="train only this variant of the spec's 'variants:' (repeatable)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a claim of the spec's 'expect:' section does not hold",
    )
    p.add_argument(
        "--log-every",
        type=positive_int,
        metavar="N",
        help="without a terminal, print a progress line every N epochs (default: 1)",
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard event files to RUN_DIR/tensorboard "
        "(needs: pip install 'graphspec[tensorboard]')",
    )
    gpu = p.add_argument_group("speed on a GPU (torch backend; docs/training.md)")
    gpu.add_argument(
        "--amp",
        choices=AMP_MODES,
        default="none",
        help="mixed precision: autocast to bf16 or fp16 (fp16 with loss scaling); needs "
        "--dtype float32 (default: none)",
    )
    gpu.add_argument(
        "--capture",
        choices=CAPTURE_MODES,
        default="none",
        help="cuda_graph: record the whole training step once as a CUDA graph and replay it "
        "per batch (a CUDA device only; default: none)",
    )
    dist = p.add_argument_group("data-parallel training (torch backend; docs/distributed.md)")
    dist.add_argument(
        "--nproc",
        type=positive_int,
        metavar="N",
        help="train with N worker processes on this machine (torchrun's launcher); the "
        "spec's batch_size stays the global batch",
    )
    dist.add_argument(
        "--dist-backend",
        choices=("auto", "gloo", "nccl"),
        default="auto",
        help="process group backend: nccl when every rank has a GPU, else gloo (auto)",
    )
    dist.add_argument(
        "--max-restarts",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="with --nproc: restart the workers up to N times after a failure; they resume "
        "from the last checkpoint (default: 0)",
    )
    dist.add_argument(
        "--dist-timeout",
        type=_seconds,
        metavar="S",
        help="seconds a collective (or joining the group) may wait before the run stops "
        "(default: 300)",
    )
    add_max_params(p)
    add_overrides(p)
    add_allow_outside(p)
    p.set_defaults(run=run)


# A collective's timeout: positive, at most a day.
_seconds = float_in(0, 86400, low_open=True, number="a number of seconds", within="seconds")


def _check_distributed(args: argparse.Namespace) -> None:
    """Flag combinations that cannot work, refused before the spec or data is loaded (exit
    2)."""

    if args.nproc is not None:
        if args.backend == AUTO:
            raise UsageError("--nproc needs a named --backend: auto chooses one per model")
        require_distributed(args.backend, "--nproc")
    if args.max_restarts and args.nproc is None:
        raise UsageError(
            "--max-restarts needs --nproc (under torchrun, use torchrun's own --max-restarts)"
        )
    if args.nproc is not None and in_worker():
        raise UsageError(
            "--nproc starts the workers itself; under torchrun leave it out "
            "(torchrun's --nproc-per-node says how many)"
        )


def run(args: argparse.Namespace) -> int:

    _check_distributed(args)
    if args.resume and (args.overwrite or args.init_from):
        other = "--overwrite" if args.overwrite else "--init-from"
        raise UsageError(f"--resume continues a run; it cannot be combined with {other}")
    # Under torchrun every rank runs this command; rank 0 speaks for the run.
    quiet = worker_rank() != 0
    spec = load_spec(args.file, args.overrides, args.scale, args.allow_outside)
    variants = select(expand_variants(spec), args.variant)
    # Check every variant first: spec errors and the parameter budget before any training.
    backends: dict[str, tuple[str, str]] = {}  # variant -> (backend, device): auto resolved
    for key, v in variants.items():
        ir = check_variant(v, args.max_params, training=True)
        backends[key] = resolve(args.backend, ir, args.device, quiet)
        _check_torch_only(args, backends[key][0])
        check_memory(ir, "train", args.dtype)  # graphspec.ir.memory: before any variant trains
        if not quiet:
            print_warnings(ir)
    if args.tensorboard:  # before any run directory is touched
        require_tensorboard()
    driver = import_feature("graphspec.train.driver", "training")
    train = require_attr(driver, "train", "training")
    base: Path | None
    if args.out:
        base = Path(args.out)
        if len(variants) > 1 and not (args.resume or args.overwrite):
            for v in variants.values():  # refused before any variant trains
                rundir.prepare(rundir.variant_dir(base, v), resume=False, overwrite=False)
    elif in_worker():  # every rank runs this: rank 0 picks the directory for all (the driver)
        if spec.variants:
            raise UsageError(
                "under torchrun, a spec with variants needs --out: the ranks must agree on "
                "one run directory before they train"
            )
        base = None
    elif args.resume:
        base = rundir.latest_version(rundir.spec_root(spec.name))
    else:
        base = rundir.next_version(rundir.spec_root(spec.name))
    try:
        return _train_variants(args, spec, variants, backends, base, train, quiet)
    finally:
        if not args.out and base is not None:
            rundir.discard_if_empty(base)  # nothing was trained: no empty run number left


def _train_variants(
    args: argparse.Namespace,
    spec: Any,
    variants: dict[str, Any],
    backends: dict[str, tuple[str, str]],
    base: Path | None,
    train: Any,
    quiet: bool,
) -> int:
    """Train each variant into its folder under ``base`` (None: the driver chooses, under
    torchrun without --out)."""
    # deferred: the training driver loads every analysis; parsing arguments needs none
    from graphspec.train.driver import TrainingInterrupted

    dirs = []
    failed = 0
    for key, v in variants.items():
        backend, device = backends[key]
        out = rundir.variant_dir(base, v) if base is not None else None
        if v.variant is not None and not quiet:
            print(f"variant {v.variant}:", flush=True)
        try:
            run_result = train(
                v,
                backend=backend,
                out=out,
                epochs=args.epochs,
                seed=args.seed,
                resume=args.resume,
                overwrite=args.overwrite,
                init_from=args.init_from,
                dtype=args.dtype,
                device=device,
                progress=True,
                log_every=args.log_every,
                tensorboard=args.tensorboard,
                threads=args.threads,
                **_gpu_options(args),
                **_distributed_options(args),
            )
        except TrainingInterrupted as e:
            if args.debug:
                raise
            if not quiet:  # under torchrun, rank 0 speaks for the run
                again = resume_command(args, base or e.result.run_dir)
                eprint(f"graphspec: {e.message}\nhint: continue with: {again}")
            # Not an error in the input: exit as a process stopped by that signal does.
            return 128 + int(e.signal)
        except WriteError as e:
            if e.checkpoint is not None:  # the run can go on once the disk has room again
                e.hint = (
                    "free some space or make the directory writable, then continue with: "
                    + resume_command(args, base or e.path.parent)
                )
            raise
        except TrainingError as e:
            # One diverging variant is a result worth comparing, not a reason to stop the
            # others; an interruption stops everything.
            if len(variants) == 1 or args.debug:
                raise
            eprint(e.render())
            failed += 1
            if out is not None:  # several variants: always under --out or a numbered base
                dirs.append(out)
            continue
        if quiet:
            continue
        out = run_result.run_dir
        _print_summary(run_result, out)
        if not _print_expectations(v, run_result) and args.check:
            failed += 1
        dirs.append(out)
        if args.plot:
            for path in plot_run(v, out):
                print(f"wrote {path}", file=sys.stderr)
        if run_result.info.get("vocabulary"):  # a character model: what it learned to write
            _print_sample(out, args.device)
    if spec.variants and not quiet:  # the variants side by side: the point of having them
        for path in report(dirs, base):
            print(f"wrote {path}", file=sys.stderr)

        print(summary_table(dirs))
    return 1 if failed else 0


def _check_torch_only(args: argparse.Namespace, backend: str) -> None:
    """--amp and --capture are torch's (another backend would ignore them silently)."""
    for flag, value in (("--amp", args.amp), ("--capture", args.capture)):
        if value != "none" and backend != "torch":
            chose = " (auto chose it)" if args.backend == AUTO else ""
            raise UsageError(
                f"{flag} {value} needs the torch backend, not {backend}{chose}",
                hint="add --backend torch",
            )


def _gpu_options(args: argparse.Namespace) -> dict[str, Any]:
    """The torch backend's compile options --amp and --capture stand for (none: left out)."""
    return {k: v for k, v in (("amp", args.amp), ("capture", args.capture)) if v != "none"}


def _distributed_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"dist_backend": args.dist_backend, "dist_timeout": args.dist_timeout}
    if args.nproc is not None:
        opts.update(nproc=args.nproc, max_restarts=args.max_restarts)
    return opts


def resume_command(args: argparse.Namespace, base: Path) -> str:
    """The command that continues this training from its checkpoint (after SIGINT/SIGTERM,
    or a failed write): the same spec, run directory and settings, with --resume."""

    again = ["graphspec", "train", args.file, "--resume", "--out", str(base)]
    if args.backend != DEFAULT_BACKEND:
        again += ["--backend", args.backend]
    if args.dtype != "float64":
        again += ["--dtype", args.dtype]
    if args.device != "auto":
        again += ["--device", args.device]
    if args.epochs is not None:
        again += ["--epochs", str(args.epochs)]
    for name in args.variant or []:
        again += ["--variant", name]
    for override in args.overrides or []:
        again += ["--set", override]
    if args.scale is not None:
        again += ["--scale", args.scale]
    if args.tensorboard:
        again += ["--tensorboard"]
    for flag, value in (("--amp", args.amp), ("--capture", args.capture)):
        if value != "none":
            again += [flag, value]
    if args.threads is not None:
        again += ["--threads", str(args.threads)]
    if args.nproc is not None:  # a different --nproc works too (the batch is global)
        again += ["--nproc", str(args.nproc)]
        if args.dist_backend != "auto":
            again += ["--dist-backend", args.dist_backend]
    return shlex.join(again)


def _print_expectations(spec: Any, run_result: Any) -> bool:
    """Check the outcome the spec claims (its ``expect:`` section) against this run;
    True when every claim held (or there are none)."""
    claims = getattr(spec, "expect", None) or []
    if not claims:
        return True

    try:
        outcomes = check_run(list(claims), run_result)
    except (ClaimError, KeyError) as e:  # e.g. a claim reading an analysis this run lacks
        eprint(f"expected outcome: cannot check: {e}")
        return False
    print("expected outcome:")
    for o in outcomes:
        print("  " + o.render())
    return all(o.held for o in outcomes)


def _print_sample(out: Path, device: str) -> None:
    """Text drawn from a character model (its run's seed, the default temperature),
    printed and kept in the run directory as samples.txt."""
    run = load_run(out)
    text = as_lines(sample_text(run, seed=int(run.summary.get("seed", 0)), device=device))
    print(f"sample (more with: graphspec sample {shlex.quote(str(out))}):\n{text}", end="")
    print(f"wrote {write_text(out / SAMPLES, text)}", file=sys.stderr)


def _print_summary(run_result: Any, out: Path) -> None:
    """One line a person reads at the end of a run: how it ended and the final figures."""
    status = getattr(run_result, "status", None)
    epochs = getattr(run_result, "epochs", None)
    ended = getattr(run_result, "resumed_status", None) in ("completed", "early_stopped")
    if ended and getattr(run_result, "resumed_from", None) == epochs:
        why = (
            "it stopped early; a larger patience would let it go on"
            if status == "early_stopped"
            else "pass a larger --epochs to train further"
        )
        eprint(f"note: the run had already trained {epochs} epochs: nothing to train ({why})")
    final = getattr(run_result, "final", None) or {}
    if status is not None:
        head = f"{status} after {epochs} epoch{'s' * (epochs != 1)}" if epochs else str(status)
        shown = {k: v for k, v in final.items() if k.startswith("val_")} or {
            k: v for k, v in final.items() if not k.startswith("test_")
        }
        figures = ", ".join(f"{k} {v:.4g}" for k, v in shown.items() if isinstance(v, float | int))
        print(head + (f": {figures}" if figures else ""))
        test = {k: v for k, v in final.items() if k.startswith("test_")}
        if test:  # the held-out data, read once, on the final (restored) parameters
            print("test: " + ", ".join(f"{k} {v:.4g}" for k, v in test.items()))
    print(f"run saved in {out}")
