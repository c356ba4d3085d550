"""``graphspec compile FILE --backend B -o model.py``: write the generated module and its
initial parameters."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import graphspec as gs
from graphspec.backend import Backend, capabilities, get_backend
from graphspec.backend_choice import resolve
from graphspec.cli.common import (
    DTYPES,
    add_allow_outside,
    add_backend,
    add_max_params,
    add_overrides,
    load_ir,
    print_warnings,
    write_text,
)
from graphspec.errors import GraphspecError, Location
from graphspec.ir.graph import IR
from graphspec.ir.memory import check_memory
from graphspec.train.checkpoint import load_params_for


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "compile",
        parents=parents,
        help="write a standalone Python module for a backend",
        description="Generate the backend's standalone module (numpy: forward and hand-written "
        "backward functions; torch: an nn.Module) and write the initial parameters next to "
        "it (numpy: <out>.npz with keys 'param/<name>', read by the module's "
        "load_initial_params).",
    )
    p.add_argument("file", metavar="FILE", help="spec file (YAML)")
    add_backend(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="module to write (.py)")
    p.add_argument("--dtype", choices=DTYPES, default="float64")
    p.add_argument("--device", default="auto", help="torch: auto, cpu, cuda, cuda:N")
    start = p.add_mutually_exclusive_group()
    start.add_argument(
        "--seed", type=int, help="seed of the initial parameters (default: the spec's)"
    )
    start.add_argument(
        "--params",
        metavar="NPZ",
        help="write these parameters instead of freshly drawn ones: a parameter file "
        "(graphspec import's, keys 'param/<name>'), a checkpoint or a run directory; "
        "checked against the spec by name and shape",
    )
    add_max_params(p)
    add_overrides(p)
    add_allow_outside(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    spec, ir = load_ir(args.file, args.max_params, args.overrides, args.scale, args.allow_outside)
    check_memory(ir, "compile", args.dtype)  # before the parameters are drawn
    print_warnings(ir)
    args.backend, args.device = resolve(args.backend, ir, args.device)  # auto: a choice
    prog = gs.compile(ir, backend=args.backend, dtype=args.dtype, device=args.device)
    out = Path(args.output)
    source = prog.source()
    write_text(out, source)
    print(f"wrote {out} ({source.count(chr(10))} lines)", file=sys.stderr)
    # A parameter file of another spec is an error listing every difference.
    params = load_params_for(ir, args.params) if args.params else gs.init_params(ir, seed=args.seed)
    written = write_initial_params(get_backend(args.backend), ir, params, out)
    if written is not None:
        print(f"wrote {written} ({ir.param_count():,} parameters)", file=sys.stderr)
    else:
        print(
            f"note: no initial parameters written: the {args.backend} backend declares no "
            "Capabilities.write_initial_params(ir, params, module_path)",
            file=sys.stderr,
        )
    return 0


def write_initial_params(
    backend: Backend, ir: IR, params: dict[str, np.ndarray], module: Path
) -> Path | None:
    """Write the initial parameters beside ``module`` in the format its code reads, with the
    backend's declared ``write_initial_params``; None when it declares none."""
    write = capabilities(backend).write_initial_params
    if write is None:
        return None
    try:
        return Path(write(ir, params, module))
    except OSError as e:  # the backend writes the file: its failure reads as ours do
        where = str(e.filename or module)
        raise GraphspecError(f"cannot write {where}: {e.strerror or e}", Location(where)) from None
