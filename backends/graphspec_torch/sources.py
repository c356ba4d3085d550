"""Copy kernels into a generated module: each kernel's source with its ``@kernel`` decorator
stripped, preceded by the helpers and constants it reads.

What a function reads is taken from its bytecode (``LOAD_GLOBAL``), not from its text, so a
helper defined next to a kernel in its family module (or in ``_prelude``) comes along without
anyone listing it.  Globals are checked: ``torch``, ``F``, ``nn`` and ``math`` must be those
modules under those names (the generated header imports exactly them), functions must come
from ``graphspec_torch.kernels``, constants must be plain literals.  A kernel that breaks the
rule fails here with its name, not later with a NameError in a user's model file.
"""

from __future__ import annotations

import builtins
import dis
import inspect
import math
import re
import textwrap
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from graphspec.codegen.text import literal
from graphspec.errors import BackendError

HEADER_MODULES = {"torch": torch, "F": F, "nn": nn, "math": math}
KERNEL_PACKAGE = "graphspec_torch.kernels"
_LITERALS = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class Library:
    source: str
    names: list[str]  # every top-level name the source defines


def collect(kernels: Iterable[types.FunctionType]) -> Library:
    funcs: dict[str, types.FunctionType] = {}  # insertion order = dependencies first
    consts: dict[str, object] = {}

    def visit(fn: types.FunctionType) -> None:
        name = fn.__name__
        if name in funcs:
            if funcs[name] is not fn:
                raise BackendError(
                    f"two torch kernel helpers are both called '{name}' "
                    f"({funcs[name].__module__} and {fn.__module__}); generated modules hold "
                    "one namespace, so rename one"
                )
            return
        funcs[name] = fn  # placeholder against recursion; re-inserted below to order deps
        for g in sorted(set(_global_loads(fn.__code__))):
            if g not in fn.__globals__:
                if hasattr(builtins, g):
                    continue
                raise BackendError(f"torch kernel '{name}' reads an undefined global '{g}'")
            value = fn.__globals__[g]
            if isinstance(value, types.ModuleType):
                if HEADER_MODULES.get(g) is not value:
                    raise BackendError(
                        f"torch kernel '{name}' uses module '{value.__name__}' as '{g}'; "
                        "kernels may use only torch, F (torch.nn.functional), nn and math"
                    )
            elif isinstance(value, types.FunctionType):
                if not value.__module__.startswith(KERNEL_PACKAGE):
                    raise BackendError(
                        f"torch kernel '{name}' calls '{g}' from {value.__module__}; kernels may "
                        f"call only helpers defined in {KERNEL_PACKAGE}"
                    )
                visit(value)
            elif _is_literal(value):
                if g in consts and consts[g] != value:
                    raise BackendError(f"two torch kernel constants are both called '{g}'")
                consts[g] = value
            else:
                raise BackendError(
                    f"torch kernel '{name}' reads global '{g}' of type {type(value).__name__}; "
                    "only modules, kernel helpers and literal constants can be copied"
                )
        del funcs[name]
        funcs[name] = fn

    for k in kernels:
        visit(k)
    parts = [f"{k} = {literal(v)}" for k, v in consts.items()]  # float('inf'), not inf
    parts += [function_source(f) for f in funcs.values()]
    return Library("\n\n\n".join(parts), list(consts) + list(funcs))


def function_source(fn: types.FunctionType) -> str:
    src = textwrap.dedent(inspect.getsource(fn))
    return re.sub(r"^@kernel\([^)]*\)\n", "", src, flags=re.M).rstrip()


def _global_loads(code: types.CodeType) -> Iterator[str]:
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            yield str(ins.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_loads(const)


def _is_literal(value: object) -> bool:
    if isinstance(value, tuple):
        return all(_is_literal(v) for v in value)
    return isinstance(value, _LITERALS)
