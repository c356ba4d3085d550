"""``graphspec verify FILE``: compare backends and finite differences on one spec."""

from __future__ import annotations

import argparse
import json

from graphspec.cli.common import (
    DTYPES,
    add_max_params,
    build_ir,
    import_feature,
    load_spec,
    parse_backends,
    positive_int,
    print_warnings,
    require_attr,
)


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify",
        parents=parents,
        help="check backends agree (forward, gradients, steps)",
        description="Run the spec on several backends from the same parameters and noise "
        "and compare outputs, gradients (also against finite differences) and a few "
        "training steps. Exit status 1 when a check fails.",
    )
    p.add_argument("file", metavar="FILE", help="spec file (YAML)")
    p.add_argument(
        "--backends",
        default="numpy,torch",
        type=parse_backends,
        help="comma-separated backends (default: numpy,torch)",
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        default=3,
        metavar="K",
        help="training steps to compare (default: 3)",
    )
    p.add_argument("--dtype", choices=DTYPES, default="float64")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_max_params(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.file)
    ir = build_ir(spec, args.max_params)
    print_warnings(ir)
    module = import_feature("graphspec.verify", "verification")
    verify = require_attr(module, "verify", "verification")
    report = verify(spec, backends=args.backends, steps=args.steps, dtype=args.dtype)
    if args.json:
        data = report.to_json()
        print(data if isinstance(data, str) else json.dumps(data, indent=2))
    else:
        print(report.render())
    return 0 if report.ok else 1
