"""``graphspec upgrade FILE``: rewrite a version-1 spec as version 2, comments and all."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from graphspec.cli.common import add_allow_outside
from graphspec.errors import UsageError
from graphspec.spec.source import read_text
from graphspec.spec.upgrade import upgrade
from graphspec.spec.version import LATEST
from graphspec.train.atomic import atomic_open


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "upgrade",
        parents=parents,
        help=f"rewrite a spec in format version {LATEST}",
        description=f"Rewrite a version-1 spec as version {LATEST}: only the 'graphspec:' "
        "value changes, so comments and layout stay as they are. The result is loaded and "
        "compared with the original; a spec that would read differently is refused, with "
        "the reason. Writes to standard output unless -o or --in-place.",
    )
    p.add_argument("file", metavar="FILE", help="spec file (YAML)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="OUT", help="write the upgraded spec here")
    where.add_argument("--in-place", action="store_true", help="rewrite FILE itself")
    p.add_argument("--force", action="store_true", help="with -o: replace an existing OUT")
    add_allow_outside(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.output and Path(args.output).exists() and not args.force:
        raise UsageError(f"-o {args.output}: the file exists", hint="add --force to replace it")
    name, text = read_text(args.file)
    new_text = upgrade(text, name, args.allow_outside)
    if new_text is None:
        print(f"{name}: already format version {LATEST}; nothing to do", file=sys.stderr)
        return 0
    out = args.file if args.in_place else args.output
    if out is None:
        sys.stdout.write(new_text)
        return 0
    # A crash leaves the old file, never half of one; a failed write is a located error.
    with atomic_open(out, "wb") as f:
        f.write(new_text.encode("utf-8"))
    print(f"wrote {out}", file=sys.stderr)
    return 0
