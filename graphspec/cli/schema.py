"""``graphspec schema``: the spec's JSON Schema, for editors."""

from __future__ import annotations

import argparse
import json

from graphspec.cli.common import write_or_print
from graphspec.spec.schema import spec_schema


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "schema",
        parents=parents,
        help="print the JSON Schema of spec files",
        description="Print the JSON Schema (draft 2020-12) of spec files: point your editor's "
        "YAML support at it for completion and checking as you type (see the README).",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    write_or_print(json.dumps(spec_schema(), indent=2) + "\n", args.output)
    return 0
