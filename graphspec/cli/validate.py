"""``graphspec validate FILE...``: load, expand, build and check each spec."""

from __future__ import annotations

import argparse

from graphspec.analysis.checks import check_variant
from graphspec.cli.common import add_max_params, add_overrides, eprint, load_spec, print_warnings
from graphspec.errors import GraphspecError
from graphspec.ir.graph import IR
from graphspec.ir.memory import memory_warning
from graphspec.spec.models import Spec
from graphspec.spec.variants import expand_variants, note_variant
from graphspec.train.prepare import prepare


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "validate",
        parents=parents,
        help="check specs: YAML, schema, references, shapes",
        description="Check each spec file completely (everything short of running it). "
        "Errors and warnings are printed as file:line:col; the exit status is 1 when any "
        "file has an error.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="spec files (YAML)")
    add_max_params(p)
    add_overrides(p)
    p.add_argument(
        "--train",
        action="store_true",
        help="also check everything training checks before its first epoch: a loss, "
        "train.data (the files opened and fitted to the inputs), batch size, parameter "
        "groups and the early-stopping monitor",
    )
    p.add_argument(
        "-W",
        "--warnings-as-errors",
        action="store_true",
        dest="werror",
        help="fail when a spec has warnings",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    failed = 0
    for path in args.files:
        try:
            spec = load_spec(path, args.overrides, args.scale)
            # Each variant of the spec is checked as the spec it becomes (none: the spec).
            checked = []
            for v in expand_variants(spec).values():
                ir = check_variant(v, args.max_params, training=args.train)
                rows = _check_training(v, ir) if args.train else ""
                checked.append((v, ir, rows))
        except GraphspecError as e:
            if args.debug:
                raise
            eprint(e.render())
            failed += 1
            continue
        for v, ir, rows in checked:
            too_big = memory_warning(ir)  # validate warns; train, compile and verify refuse
            if too_big is not None:
                ir.warnings.append(too_big)
            print_warnings(ir)
            if args.werror and ir.warnings:
                failed += 1
                continue
            if not args.quiet:
                n_ops = len(ir.op_nodes())
                warn = (
                    f", {len(ir.warnings)} warning{'s' * (len(ir.warnings) != 1)}"
                    if ir.warnings
                    else ""
                )
                label = f"{path} [variant {v.variant}]" if v.variant else path
                print(f"{label}: ok ({n_ops} ops, {ir.param_count():,} parameters{rows}{warn})")
    return 1 if failed else 0


def _check_training(spec: Spec, ir: IR) -> str:
    """What training checks before its first epoch (graphspec.train.prepare: the data
    opened and fitted, batch size, groups, monitor); returns ', N training rows ...'."""

    try:
        ready = prepare(spec, ir, spec.seed)
    except GraphspecError as e:  # a data error too: which variant's data it was
        raise note_variant(e, spec) from None  # type: ignore[arg-type]
    names = {"train": "training", "val": "validation", "test": "test"}
    parts = [f"{ready.data.rows(k):,} {names.get(k, k)}" for k in ready.data.splits]
    listed = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    return f", {listed} rows"
