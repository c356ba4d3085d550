"""NumPy kernels: a forward and a hand-written VJP per op, side by side.

Rules for kernel modules (the code generator copies kernels into standalone modules):

* a kernel is a plain function that uses only ``np`` and the helpers of ``_prelude``;
* register it with ``@kernel("op")`` and its VJP with ``@vjp("op")``, each VJP with a
  one-line math comment;
* a VJP returns one gradient (or None) per positional argument, in the shape of the
  broadcast result for elementwise ops (the driver undoes broadcasting).
"""

from __future__ import annotations

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
        KERNELS[name] = fn
        return fn

    return register


def vjp(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in VJPS:
            raise ValueError(f"numpy VJP for '{name}' is defined twice")
        VJPS[name] = fn
        return fn

    return register


for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _mod.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod}")
