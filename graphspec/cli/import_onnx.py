"""``graphspec import model.onnx -o model.yaml``: an ONNX model as a spec and its parameters
(graphspec.onnx_import)."""

from __future__ import annotations

import argparse
import sys

from graphspec.onnx_import import import_onnx


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "import",
        parents=parents,
        help="translate an ONNX model into a spec and a parameter file",
        description="Translate an ONNX model's graph into a readable spec (ids from the "
        "model's node names, blocks where it repeats a pattern) and write its initializers "
        "beside it as an .npz parameter file (keys 'param/<name>'), which train --init-from "
        "and compile --params read. A node or attribute graphspec cannot express exactly "
        "is an error listing each one. Needs the onnx package (pip install "
        "'graphspec[onnx]').",
    )
    p.add_argument("file", metavar="MODEL", help="the ONNX model (.onnx)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="spec to write (.yaml)")
    p.add_argument(
        "--params",
        metavar="NPZ",
        help="parameter file to write (default: OUT with the suffix .npz)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    done = import_onnx(args.file, args.output, args.params)
    print(
        f"wrote {done.spec} ({done.nodes} nodes, {done.blocks} block"
        f"{'s' if done.blocks != 1 else ''})",
        file=sys.stderr,
    )
    print(f"wrote {done.params} ({done.param_count:,} parameters)", file=sys.stderr)
    return 0
