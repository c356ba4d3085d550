"""What every command shares: loading a spec to an IR, printing diagnostics, writing files."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from graphspec import threads
from graphspec.errors import GraphspecError, Location, UsageError, render_diagnostic
from graphspec.ir.build import build
from graphspec.ir.counts import check_param_budget
from graphspec.ir.graph import IR
from graphspec.spec.load import load
from graphspec.spec.models import Spec

DTYPES = ("float32", "float64")
DEFAULT_BACKEND = "numpy"  # what a user gets without --backend (no backend is special)


def add_backend(p: argparse.ArgumentParser) -> None:
    """``-b/--backend``, defaulting to :data:`DEFAULT_BACKEND`."""
    help = f"backend name, or auto: by model size and device (default: {DEFAULT_BACKEND})"
    p.add_argument("-b", "--backend", default=DEFAULT_BACKEND, help=help)


def add_threads(p: argparse.ArgumentParser) -> None:
    """``--threads N|auto``: the CPU threads of numpy's BLAS and of torch (graphspec.threads)."""
    p.add_argument(
        "--threads",
        type=threads.parse,
        metavar="N|auto",
        help="CPU threads for numpy's BLAS and torch (default: by model size, as auto: one "
        "for a small model, every free core for a large one; auto also says its choice; "
        "docs/training.md)",
    )


# ---- color -----------------------------------------------------------------------------

_COLORS = {"error": "1;31", "warning": "1;35", "note": "1;36", "hint": "1;32"}
_SEVERITY = re.compile(r"^(.*?)\b(error|warning|note|hint):", re.M)


def use_color(stream: IO[str]) -> bool:
    """Color only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def colorize(text: str, stream: IO[str]) -> str:
    if not use_color(stream):
        return text
    return _SEVERITY.sub(lambda m: f"{m[1]}\033[{_COLORS[m[2]]}m{m[2]}:\033[0m", text)


def eprint(text: str) -> None:
    print(colorize(text, sys.stderr), file=sys.stderr)


def print_warnings(ir: IR) -> None:
    for message, loc in ir.warnings:
        eprint(render_diagnostic("warning", message, loc))


# ---- loading ---------------------------------------------------------------------------


def load_spec(
    path: str,
    overrides: list[str] | None = None,
    scale: str | None = None,
    allow_outside: bool = False,
) -> Spec:

    return load(path, overrides or (), scale, allow_outside=allow_outside)


def build_ir(spec: Spec, max_params: int | None = None) -> IR:

    ir = build(spec)
    if max_params is not None:
        check_param_budget(ir, max_params)
    return ir


def load_ir(
    path: str,
    max_params: int | None = None,
    overrides: list[str] | None = None,
    scale: str | None = None,
    allow_outside: bool = False,
) -> tuple[Spec, IR]:
    spec = load_spec(path, overrides, scale, allow_outside)
    return spec, build_ir(spec, max_params)


# ---- arguments ---------------------------------------------------------------------------


def add_max_params(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-params",
        type=positive_int,
        metavar="N",
        help="fail when the model has more than N trainable parameters",
    )


def add_overrides(p: argparse.ArgumentParser) -> None:
    """``--set PATH=VALUE`` (repeatable) and ``--scale NAME``: change the spec without
    editing the file."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a spec value, e.g. --set train.optimizer.lr=0.05 --set "
        "graph.hidden.units=32 (dotted path, graph nodes by id, value in YAML; repeatable)",
    )
    p.add_argument(
        "--scale",
        metavar="NAME",
        help="use the spec's scale NAME: its values for the vars (a 'scales:' entry)",
    )


def add_allow_outside(p: argparse.ArgumentParser) -> None:
    """``--allow-outside``: let the spec's ``include:`` read files outside its directory."""
    p.add_argument(
        "--allow-outside",
        action="store_true",
        help="let include: read files outside the spec's directory (absolute paths, '..' "
        "or symbolic links leading out); refused by default",
    )


def positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def float_in(
    low: float,
    high: float,
    *,
    low_open: bool = False,
    number: str = "a number",
    within: str = "a number",
) -> Callable[[str], float]:
    """An argparse type: a float in ``[low, high]`` (``(low, high]`` with ``low_open``);
    ``number`` and ``within`` name what is expected in the two messages."""
    bracket = "(" if low_open else "["

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {number}, got {text!r:.40}") from None
        above = low < value if low_open else low <= value
        if not (above and value <= high):  # NaN fails both comparisons
            raise argparse.ArgumentTypeError(
                f"expected {within} in {bracket}{low:g}, {high:g}], got {text!r:.40}"
            )
        return value

    return parse


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


# ---- output -----------------------------------------------------------------------------


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_or_print(text: str, output: str | None) -> None:
    """A command's text result: into the file ``--output`` names (saying so), else stdout."""
    if output:
        write_text(output, text)
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def write_bytes(path: str | Path, data: bytes) -> Path:
    p = Path(path)
    try:
        if p.is_dir():
            raise GraphspecError(f"cannot write {p}: it is a directory", Location(str(p)))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    except OSError as e:
        raise GraphspecError(f"cannot write {p}: {e.strerror or e}", Location(str(p))) from None
    return p


# ---- commands implemented in modules written elsewhere ------------------------------------


def import_feature(module: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``; a clear error when it is not installed (yet).

    Only the absence of ``module`` itself is turned into an error: an ImportError raised
    from inside it is a bug and must surface as one.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if module == missing or module.startswith(missing + "."):
            raise GraphspecError(
                f"{feature} is not available: module '{module}' is not installed",
                hint="update graphspec (pip install -e .) or check that the backend is installed",
            ) from None
        raise


def require_attr(module: ModuleType, name: str, feature: str) -> Any:
    fn = getattr(module, name, None)
    if fn is None:
        raise GraphspecError(
            f"{feature} is not available: '{module.__name__}' has no '{name}'",
        )
    return fn


def parse_backends(text: str) -> tuple[str, ...]:
    names = tuple(b.strip() for b in text.split(",") if b.strip())
    if not names:
        raise UsageError("--backends needs at least one backend name (e.g. numpy,torch)")
    return names
