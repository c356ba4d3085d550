"""``graphspec inspect FILE --format text|json|dot|png|svg``: show the built graph."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from graphspec.cli.common import (
    add_allow_outside,
    add_max_params,
    add_overrides,
    load_ir,
    load_spec,
    print_warnings,
    write_bytes,
    write_or_print,
)
from graphspec.errors import GraphspecError, Location, SpecError, UsageError
from graphspec.ir import serialize
from graphspec.ir.counts import flop_count

FORMATS = ("text", "json", "dot", "png", "svg")
RENDER_TIMEOUT_S = 60

GRAPHVIZ_HINT = (
    "install Graphviz: 'apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' "
    "(macOS), 'conda install graphviz'; or write --format dot and render it elsewhere"
)


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "inspect",
        parents=parents,
        help="show the graph as a table, JSON, DOT or a picture",
        description="Build the spec and print its graph. text: a table of nodes with shapes, "
        "parameters and FLOPs per example; json: networkx node-link data (loads back with "
        "graphspec.ir.serialize.graph_from_json); dot: Graphviz source with blocks as "
        "clusters; png/svg: rendered by Graphviz's 'dot' program.",
    )
    p.add_argument("file", metavar="FILE", help="spec file (YAML)")
    p.add_argument("-f", "--format", choices=FORMATS, default="text")
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="write here instead of stdout (png/svg default: <spec name>.<format>)",
    )
    p.add_argument(
        "--scales",
        action="store_true",
        help="a table of each scale of the spec (its 'scales:'): var values, parameters and "
        "FLOPs per example",
    )
    p.add_argument(
        "--no-params",
        action="store_true",
        help="dot/png/svg: leave parameter nodes out of the drawing",
    )
    add_max_params(p)
    add_overrides(p)
    add_allow_outside(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.scales:
        if args.scale is not None or args.format != "text":
            raise UsageError("--scales tabulates every scale: it takes no --scale or --format")
        table = scales_table(args.file, args.overrides, args.max_params, args.allow_outside)
        write_or_print(table, args.output)
        return 0
    spec, ir = load_ir(args.file, args.max_params, args.overrides, args.scale, args.allow_outside)
    print_warnings(ir)
    fmt = args.format
    if fmt == "text":
        text = serialize.ir_to_text(ir)
    elif fmt == "json":
        text = json.dumps(serialize.ir_to_json(ir), indent=1) + "\n"
    else:
        text = serialize.ir_to_dot(ir, show_params=not args.no_params)
    if fmt in ("png", "svg"):
        out = Path(args.output or f"{Path(args.file).stem}.{fmt}")
        write_bytes(out, render_dot(text, fmt))
        print(f"wrote {out}", file=sys.stderr)
    else:
        write_or_print(text, args.output)
    return 0


def scales_table(
    path: str, overrides: list[str], max_params: int | None, allow_outside: bool = False
) -> str:
    """One row per scale (and one for the vars as written): the vars the scales set,
    trainable parameters and forward FLOPs per example, each scale built on its own."""
    base = load_spec(path, overrides, allow_outside=allow_outside)
    if not base.scales:
        raise SpecError(
            "the spec has no 'scales:' to tabulate",
            Location(path),
            hint="define scales: {NAME: {VAR: VALUE, ...}, ...} next to 'vars:'",
        )
    names = list(dict.fromkeys(v for values in base.scales.values() for v in values))
    head = ["scale", *names, "params", "FLOPs"]
    rows = []
    for scale in [None, *base.scales]:
        spec, ir = load_ir(path, max_params, overrides, scale, allow_outside)
        rows.append(
            [
                scale or "(vars)",
                *(_cell(spec.vars[n]) for n in names),
                f"{ir.param_count():,}",
                f"{flop_count(ir):,}",
            ]
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    rule = "  ".join("-" * w for w in widths)

    def fmt(r: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    return "\n".join([fmt(head), rule, *map(fmt, rows)]) + "\n"


def _cell(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def render_dot(dot_source: str, fmt: str) -> bytes:
    """Render DOT text with Graphviz's ``dot`` program; a clear error when it is missing."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphspecError(
            f"rendering {fmt} needs Graphviz's 'dot' program, which is not on PATH",
            hint=GRAPHVIZ_HINT,
        )
    try:
        done = subprocess.run(
            [exe, f"-T{fmt}"],
            input=dot_source.encode(),
            capture_output=True,
            timeout=RENDER_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise GraphspecError(f"Graphviz 'dot' failed to run: {e}", hint=GRAPHVIZ_HINT) from None
    if done.returncode != 0:
        msg = done.stderr.decode(errors="replace").strip().splitlines()
        raise GraphspecError(
            f"Graphviz 'dot' failed (exit {done.returncode})" + (f": {msg[-1]}" if msg else ""),
            hint="write --format dot to look at the source it was given",
        )
    return done.stdout
