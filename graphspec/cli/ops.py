"""``graphspec ops [NAME] [--markdown]``: the op reference, from the registry."""

from __future__ import annotations

import argparse
import sys

from graphspec.errors import UsageError, did_you_mean
from graphspec.ops import REGISTRY
from graphspec.ops import docs as opsdoc


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ops",
        parents=parents,
        help="list the ops, or document one",
        description="List every op by category, or document one: inputs (and whether they "
        "take gradients), attributes with types and defaults, parameters with their default "
        "initializers.",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="an op to document")
    p.add_argument(
        "--markdown", action="store_true", help="Markdown (without NAME: the whole of docs/ops.md)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    if args.name is None:
        sys.stdout.write(opsdoc.ops_markdown() if args.markdown else opsdoc.ops_table())
        return 0
    opdef = REGISTRY.get(args.name)
    if opdef is None:
        raise UsageError(
            f"unknown op '{args.name}'",
            hint=did_you_mean(args.name, REGISTRY) or "'graphspec ops' lists them",
        )
    sys.stdout.write(opsdoc.op_markdown(opdef) if args.markdown else opsdoc.op_text(opdef))
    return 0
