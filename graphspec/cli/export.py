"""``graphspec export FILE --onnx model.onnx``: export through the torch backend."""

from __future__ import annotations

import argparse
import sys

import graphspec as gs
from graphspec.cli.common import add_max_params, import_feature, load_ir, require_attr
from graphspec.train.checkpoint import load_params_for


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export",
        parents=parents,
        help="export a model to ONNX",
        description="Export the spec's forward graph to ONNX through the torch backend, with "
        "the initial parameters or those of a checkpoint.",
    )
    p.add_argument("file", metavar="FILE", help="spec file (YAML)")
    p.add_argument("--onnx", required=True, metavar="OUT", help="the .onnx file to write")
    p.add_argument(
        "--checkpoint",
        metavar="NPZ",
        help="parameters from a checkpoint (.npz, keys 'param/<name>') or a run directory",
    )
    add_max_params(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    spec, ir = load_ir(args.file, args.max_params)
    # A checkpoint of another spec is an error listing every difference, not a KeyError.
    params = load_params_for(ir, args.checkpoint) if args.checkpoint else gs.init_params(ir)
    module = import_feature("graphspec_torch.export", "ONNX export")
    export_onnx = require_attr(module, "export_onnx", "ONNX export")
    export_onnx(ir, params, args.onnx)
    print(f"wrote {args.onnx}", file=sys.stderr)
    return 0
