"""``graphspec verify FILE``: compare backends and finite differences on one spec."""

from __future__ import annotations

import argparse
import json

from graphspec.analysis.checks import check_variant
from graphspec.cli.common import (
    DTYPES,
    add_max_params,
    add_overrides,
    import_feature,
    load_spec,
    parse_backends,
    positive_int,
    print_warnings,
    require_attr,
)
from graphspec.spec.variants import expand_variants


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
    add_overrides(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    spec = load_spec(args.file, args.overrides, args.scale)
    variants = expand_variants(spec)
    for v in variants.values():  # every variant's spec errors before any verification
        print_warnings(check_variant(v, args.max_params))
    module = import_feature("graphspec.verify", "verification")
    verify = require_attr(module, "verify", "verification")
    reports = {}
    for name, v in variants.items():
        reports[name] = verify(v, backends=args.backends, steps=args.steps, dtype=args.dtype)
    if args.json:
        if not spec.variants:
            print(next(iter(reports.values())).to_json())
        else:  # the variants' reports, keyed by variant name
            print(json.dumps({k: json.loads(r.to_json()) for k, r in reports.items()}, indent=2))
    else:
        for name, report in reports.items():
            if spec.variants:
                print(f"variant {name}:")
            print(report.render())
    return 0 if all(r.ok for r in reports.values()) else 1
