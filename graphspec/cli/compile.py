"""``graphspec compile FILE --backend B -o model.py``: write the generated module and its
initial parameters."""

from __future__ import annotations

import argparse
import importlib
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

from graphspec.cli.common import (
    DTYPES,
    add_max_params,
    add_overrides,
    load_ir,
    print_warnings,
    write_bytes,
    write_text,
)
from graphspec.ir.graph import IR

PARAMS_HOOK = "write_initial_params"


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
    p.add_argument("-b", "--backend", default="numpy", help="backend name (default: numpy)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="module to write (.py)")
    p.add_argument("--dtype", choices=DTYPES, default="float64")
    p.add_argument("--device", default="auto", help="torch: auto, cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, help="seed of the initial parameters (default: the spec's)")
    add_max_params(p)
    add_overrides(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import graphspec as gs
    from graphspec.ir.memory import check_memory

    spec, ir = load_ir(args.file, args.max_params, args.overrides)
    check_memory(ir, "compile", args.dtype)  # before the parameters are drawn
    print_warnings(ir)
    prog = gs.compile(ir, backend=args.backend, dtype=args.dtype, device=args.device)
    out = Path(args.output)
    source = prog.source()
    write_text(out, source)
    print(f"wrote {out} ({source.count(chr(10))} lines)", file=sys.stderr)
    params = gs.init_params(ir, seed=args.seed)
    written = write_initial_params(args.backend, ir, params, out)
    if written is not None:
        print(f"wrote {written} ({ir.param_count():,} parameters)", file=sys.stderr)
    else:
        print(
            f"note: no initial parameters written: the {args.backend} backend has no "
            f"codegen.{PARAMS_HOOK}(ir, params, module_path)",
            file=sys.stderr,
        )
    return 0


def write_initial_params(
    backend: str, ir: IR, params: dict[str, np.ndarray], module: Path
) -> Path | None:
    """Write the initial parameters beside ``module``, in the format its code reads.

    A backend package may provide ``<package>.codegen.write_initial_params(ir, params,
    module_path) -> Path``; numpy's format is an .npz with keys ``param/<name>`` (no pickle).
    """
    hook = _backend_hook(backend)
    if hook is not None:
        result: Any = hook(ir, params, module)
        return Path(result) if result is not None else None
    if backend == "numpy":
        path = module.with_suffix(".npz")
        buf = io.BytesIO()
        # (typed Any: numpy's stubs would take an ndarray value for savez's allow_pickle)
        arrays: dict[str, Any] = {f"param/{k}": np.asarray(v) for k, v in params.items()}
        np.savez(buf, **arrays)
        return write_bytes(path, buf.getvalue())
    return None


def _backend_hook(backend: str) -> Any:
    from graphspec.backend import available_backends

    ep = available_backends().get(backend)
    if ep is None:
        return None
    package = ep.value.split(":")[0].split(".")[0]
    try:
        codegen = importlib.import_module(f"{package}.codegen")
    except ModuleNotFoundError as e:
        if e.name and (e.name == package or e.name.startswith(package + ".")):
            return None
        raise
    return getattr(codegen, PARAMS_HOOK, None)
