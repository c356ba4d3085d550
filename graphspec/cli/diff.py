"""``graphspec diff A B``: what separates two specs, compared as built IRs (not as text).

Exit status as diff(1)'s: 0 the specs are equivalent, 1 they differ, 2 trouble (a file
missing or malformed, a bad spec, a wrong command line), so ``graphspec diff a b && ...``
reads as "if they are the same".  A bad spec is printed as every command prints one
(``file:line:col: error: ...``, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys

from graphspec.cli.common import add_allow_outside, build_ir, eprint, load_spec
from graphspec.errors import GraphspecError, UsageError
from graphspec.ir.diff import diff_irs
from graphspec.ir.graph import IR
from graphspec.spec.models import Spec
from graphspec.spec.variants import expand_variants, select

EXIT_SAME, EXIT_DIFFERENT, EXIT_TROUBLE = 0, 1, 2


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "diff",
        parents=parents,
        help="compare two specs: nodes, shapes, parameters, settings",
        description="Build both specs and compare them as graphs: nodes added, removed, "
        "renamed or changed (op, attributes, inputs, shapes), parameters (shapes, count), "
        "outputs and the spec's settings (train, optimizer...). Comments, doc and how a "
        "value is written are no difference. Exit status: 0 equivalent, 1 different, "
        "2 trouble (a bad spec or command line), as diff(1).",
    )
    p.add_argument("a", metavar="A", help="spec file (YAML): the old side")
    p.add_argument("b", metavar="B", help="spec file (YAML): the new side")
    p.add_argument("--json", action="store_true", help="print the differences as JSON")
    for side, both in (("", "both specs"), ("-a", "spec A only"), ("-b", "spec B only")):
        p.add_argument(
            f"--set{side}",
            dest=f"set{side.replace('-', '_')}",
            action="append",
            default=[],
            metavar="PATH=VALUE",
            help=f"override a value of {both}, as --set of other commands (repeatable)",
        )
        p.add_argument(
            f"--variant{side}",
            dest=f"variant{side.replace('-', '_')}",
            metavar="NAME",
            help=f"compare this variant of {both} (its 'variants:'), not the spec as written",
        )
        p.add_argument(
            f"--scale{side}",
            dest=f"scale{side.replace('-', '_')}",
            metavar="NAME",
            help=f"use the scale NAME of {both}: its values for the vars (a 'scales:' entry)",
        )
    add_allow_outside(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        # Each side: its file, the --set of both sides then its own, its own --variant and
        # --scale else the shared one.
        a, b = (
            _side(
                getattr(args, side),
                args.set + getattr(args, f"set_{side}"),
                getattr(args, f"variant_{side}") or args.variant,
                getattr(args, f"scale_{side}") or args.scale,
                args.allow_outside,
            )
            for side in "ab"
        )
    except UsageError:
        raise  # a wrong command line: exit 2 through main, as for every command
    except GraphspecError as e:
        if args.debug:
            raise
        eprint(e.render())
        return EXIT_TROUBLE
    diff = diff_irs(a[1], b[1], labels=(a[0], b[0]))
    if args.json:
        print(json.dumps(diff.to_json(), indent=1))
    else:
        sys.stdout.write(diff.render())
    return EXIT_SAME if diff.equivalent else EXIT_DIFFERENT


def _side(
    path: str, overrides: list[str], variant: str | None, scale: str | None, allow_outside: bool
) -> tuple[str, IR]:
    """(the side's label, its IR): the spec at ``path``, at ``scale``, overridden, as
    ``variant``."""
    spec: Spec = load_spec(path, overrides, scale, allow_outside)
    if variant is not None:
        spec = select(expand_variants(spec), [variant])[variant]
    label = path + (f" [variant {variant}]" if variant else "")
    label += f" --scale {scale}" if scale else ""
    label += "".join(f" --set {o}" for o in overrides)
    return label, build_ir(spec)
