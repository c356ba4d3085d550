"""``graphspec export FILE --onnx model.onnx``: export through a backend that declares
ONNX export (graphspec's torch backend)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import graphspec as gs
from graphspec.backend import OnnxExporter, capabilities, declaring, get_backend
from graphspec.cli.common import add_allow_outside, add_max_params, load_ir
from graphspec.errors import UsageError
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
    p.add_argument(
        "-b",
        "--backend",
        help="the backend that exports (default: the first installed one that can: torch)",
    )
    add_max_params(p)
    add_allow_outside(p)
    p.set_defaults(run=run)


def exporter(backend: str | None) -> OnnxExporter:
    """The ONNX exporter of ``backend``, or of the first installed backend declaring one."""
    name = backend or next(declaring(lambda c: c.onnx_export is not None), None)
    if name is None:
        raise UsageError(
            "ONNX export needs a backend that declares it; none is installed",
            hint="install graphspec's torch backend (pip install -e .)",
        )
    load = capabilities(get_backend(name)).onnx_export
    if load is None:
        able = next(declaring(lambda c: c.onnx_export is not None), None)
        raise UsageError(
            f"the {name} backend cannot export to ONNX"
            + (f"; export runs on --backend {able}" if able else "")
        )
    return load()


def run(args: argparse.Namespace) -> int:

    spec, ir = load_ir(args.file, args.max_params, allow_outside=args.allow_outside)
    # A checkpoint of another spec is an error listing every difference, not a KeyError.
    params = load_params_for(ir, args.checkpoint) if args.checkpoint else gs.init_params(ir)
    exporter(args.backend)(ir, params, Path(args.onnx))
    print(f"wrote {args.onnx}", file=sys.stderr)
    return 0
