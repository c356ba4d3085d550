"""NumPy kernels: a forward and a hand-written VJP per op, side by side.

Rules for kernel modules (the code generator copies kernels into standalone modules):

* a kernel is a plain function that uses only ``np`` and the helpers of ``_prelude``;
* register it with ``@kernel("op")`` and its VJP with ``@vjp("op")``, each VJP with a
  one-line math comment;
* its function name must not be a Python builtin: every kernel shares one namespace in a
  generated module, where ``def sum`` would break another kernel's ``sum(...)``; name it
  ``sum_`` (generated code calls a kernel by its function name);
* a VJP returns one gradient (or None) per positional argument, in the shape of the
  broadcast result for elementwise ops (the driver undoes broadcasting); one registered
  ``@vjp("op", input_shaped=True)`` promises each gradient in its argument's own shape, so
  generated code skips the driver's ``unbroadcast`` for it;
* a VJP may take a keyword-only ``needs=None``: generated code then passes a tuple of
  booleans, one per positional argument, when some gradient is not wanted (a first layer's
  input), and the VJP may skip computing those and return None in their place;
* generated code passes None for any argument a VJP never reads (``y`` of ``linear``), so
  activations are freed as soon as the backward pass no longer needs them.

:func:`forward`, :func:`backward` and ``unbroadcast`` make this package a kernel table for
the reference interpreter (``graphspec.ir.interpret.Interpreter(ir, graphspec_numpy.kernels)``).
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Sequence
from typing import Any

# Re-exported: the interpreter undoes broadcasting with the kernels' own helper.
from graphspec_numpy.kernels._prelude import unbroadcast as unbroadcast

KERNELS: dict[str, Callable[..., Any]] = {}
VJPS: dict[str, Callable[..., Any]] = {}
INPUT_SHAPED: set[str] = set()  # ops whose VJP returns every gradient in its argument's shape


def kernel(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in KERNELS:
            raise ValueError(f"numpy kernel for '{name}' is defined twice")
        _check_name(fn)
        KERNELS[name] = fn
        return fn

    return register


def vjp(
    name: str, *, input_shaped: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in VJPS:
            raise ValueError(f"numpy VJP for '{name}' is defined twice")
        _check_name(fn)
        VJPS[name] = fn
        if input_shaped:
            INPUT_SHAPED.add(name)
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


def forward(op: str, args: Sequence[Any], kwargs: dict[str, Any], save: bool = False) -> Any:
    """Call ``op``'s kernel as generated code does; with ``save``: ``(out, None)`` (no op
    keeps residuals for its VJP yet)."""
    out = KERNELS[op](*args, **kwargs)
    return (out, None) if save else out


def backward(
    op: str, g: Any, y: Any, args: Sequence[Any], kwargs: dict[str, Any], res: Any = None,
    needs: Sequence[bool] | None = None,
) -> tuple[Any, ...]:
    """Call ``op``'s VJP as generated code does, with ``needs`` when given and taken."""
    fn = VJPS[op]
    p = inspect.signature(fn).parameters.get("needs")
    extra = {"needs": tuple(needs)} if needs is not None and p is not None else {}
    return tuple(fn(g, y, *args, **kwargs, **extra))


for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _mod.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod}")
