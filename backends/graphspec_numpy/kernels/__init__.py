"""NumPy kernels: a forward and a hand-written VJP per op, side by side.

Rules for kernel modules (the code generator copies kernels into standalone modules):

* a kernel is a plain function that uses only ``np`` and the helpers of ``_prelude``;
* register it with ``@kernel("op")`` and its VJP with ``@vjp("op")``, each VJP with a
  one-line math comment;
* its function name must not be a Python builtin: every kernel shares one namespace in a
  generated module, where ``def sum`` would break another kernel's ``sum(...)``; name it
  ``sum_`` (generated code calls a kernel by its function name);
* a VJP returns one gradient (or None) per positional argument, in the shape of the
  broadcast result for elementwise ops (the driver undoes broadcasting).
"""

from __future__ import annotations

import builtins
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

KERNELS: dict[str, Callable[..., Any]] = {}
VJPS: dict[str, Callable[..., Any]] = {}


def kernel(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in KERNELS:
            raise ValueError(f"numpy kernel for '{name}' is defined twice")
        _check_name(fn)
        KERNELS[name] = fn
        return fn

    return register


def vjp(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in VJPS:
            raise ValueError(f"numpy VJP for '{name}' is defined twice")
        _check_name(fn)
        VJPS[name] = fn
        return fn

    return register


def _check_name(fn: Callable[..., Any]) -> None:
    """Kernels share one namespace in generated modules: no builtins, no duplicates."""
    if hasattr(builtins, fn.__name__):
        raise ValueError(
            f"numpy kernel function '{fn.__name__}' would shadow the builtin in generated "
            f"modules; name it '{fn.__name__}_'"
        )
    for other in (*KERNELS.values(), *VJPS.values()):
        if other.__name__ == fn.__name__ and other is not fn:
            raise ValueError(f"two numpy kernel functions are named '{fn.__name__}'")


for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _mod.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod}")
