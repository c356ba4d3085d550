"""NumPy kernels: a forward and a hand-written VJP per op, side by side.

Rules for kernel modules (the code generator copies kernels into standalone modules):

* a kernel is a plain function over ``np``; it may call helpers defined in its own module
  (its family) or in ``_prelude``, and read literal constants defined there. The code
  generator copies exactly the helpers a module's kernels call, transitively, and refuses
  (at generation, naming the kernel and the name) anything else a kernel reads;
* register it with ``@kernel("op")`` and its VJP with ``@vjp("op", reads=(...))``, each VJP
  with a one-line math comment;
* its function name must not be a Python builtin: every kernel shares one namespace in a
  generated module, where ``def sum`` would break another kernel's ``sum(...)``; name it
  ``sum_`` (generated code calls a kernel by its function name);
* a VJP is called ``vjp(g, y, *args, **kernel keywords)`` and returns one gradient (or None)
  per positional argument of the forward, in the shape of the broadcast result for
  elementwise ops (the driver undoes broadcasting); one registered with
  ``input_shaped=True`` promises each gradient in its argument's own shape, so generated
  code skips the driver's ``unbroadcast`` for it;
* ``reads`` declares which of the VJP's positional parameters it reads (``g`` always is):
  the output by its parameter's name (``"y"``), the forward's arguments by theirs, the
  variadic ones by the ``*`` name. Every other argument is passed as None, so generated code
  frees an activation as soon as nothing declared needs it. A name that is not a parameter of
  the VJP fails at import;
* residuals: forward work the VJP would redo (normalized values, gates) is handed over once.
  The forward kernel is registered ``@kernel("op", residuals=True)`` and takes a keyword
  ``save=False``; with ``save=True`` it returns ``(out, res)``, ``out`` being what it returns
  otherwise (``(y, new_state)`` for stateful ops) and ``res`` anything the VJP wants. The VJP
  then lists ``"res"`` in ``reads`` and takes a keyword-only ``res``;
* a VJP may take a keyword-only ``needs=None``: generated code then passes a tuple of
  booleans, one per positional argument, when some gradient is not wanted (a first layer's
  input), and the VJP may skip computing those and return None in their place;
* buffer reuse, declared: ``fresh=True`` (on ``@kernel`` or ``@vjp``) promises that the
  output (every gradient) is a new array nothing else references, whatever the arguments
  (``x @ w`` is; ``identity``'s ``x`` or a view is not); ``in_place=True`` means the function
  takes a keyword-only ``own=False`` and, given ``own=True``, may write its result into its
  first argument (a kernel's ``x``, a VJP's ``g``) and return that array. Generated code
  passes ``own=True`` only where that argument is a fresh array whose last use is this call,
  so the result is the same, bit for bit, without the allocation (the hand-written step's
  ``np.maximum(h, 0, out=h)`` and ``g *= h > 0``).

What a VJP needs is data (:data:`SPECS`), so a reference interpreter calls kernels exactly as
generated code does: :func:`forward`, :func:`backward` and ``unbroadcast`` make this package
the kernel table of ``graphspec.ir.interpret.Interpreter(ir, graphspec_numpy.kernels)``.
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# Re-exported: the interpreter undoes broadcasting with the kernels' own helper.
from graphspec_numpy.kernels._prelude import unbroadcast as unbroadcast

KERNELS: dict[str, Callable[..., Any]] = {}
VJPS: dict[str, Callable[..., Any]] = {}


@dataclass(frozen=True)
class VjpSpec:
    """What an op's VJP (``VJPS[op]``) reads from the forward pass, as declared by ``@vjp``."""

    output: str  # the name of its output parameter (second positional: "y")
    args: tuple[str, ...]  # the names of the forward's positional arguments it takes
    variadic: str | None  # the ``*`` parameter's name, if any
    reads: frozenset[str]  # declared: names of the above it reads, and "res"
    input_shaped: bool  # every gradient comes back in its argument's own shape
    takes_needs: bool  # has a keyword-only ``needs``
    fresh: bool = False  # every gradient a new array nothing else references
    in_place: bool = False  # takes ``own``: may overwrite ``g`` (see the module's rules)

    @property
    def reads_output(self) -> bool:
        return self.output in self.reads

    @property
    def reads_residuals(self) -> bool:
        return "res" in self.reads

    def reads_arg(self, k: int) -> bool:
        """Whether the VJP reads the forward's positional argument number ``k``."""
        name = self.args[k] if k < len(self.args) else self.variadic
        return name in self.reads


SPECS: dict[str, VjpSpec] = {}  # op name -> its VJP's declaration
RESIDUALS: set[str] = set()  # ops whose forward takes ``save`` and returns ``(out, res)``
FRESH: set[str] = set()  # ops whose forward returns a new array nothing else references
IN_PLACE: set[str] = set()  # ops whose forward takes ``own`` (may overwrite its first argument)


def kernel(
    name: str, *, residuals: bool = False, fresh: bool = False, in_place: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in KERNELS:
            raise ValueError(f"numpy kernel for '{name}' is defined twice")
        _check_name(fn)
        if in_place:
            _check_own(fn)
            IN_PLACE.add(name)
        if fresh:
            FRESH.add(name)
        if residuals:
            p = inspect.signature(fn).parameters.get("save")
            if p is None or p.kind is not inspect.Parameter.KEYWORD_ONLY or p.default is not False:
                raise ValueError(
                    f"numpy kernel '{fn.__name__}' declares residuals=True, so it must take a "
                    "keyword-only save=False"
                )
            RESIDUALS.add(name)
        KERNELS[name] = fn
        return fn

    return register


def vjp(
    name: str, *, reads: Sequence[str], input_shaped: bool = False, fresh: bool = False,
    in_place: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in VJPS:
            raise ValueError(f"numpy VJP for '{name}' is defined twice")
        _check_name(fn)
        if in_place:
            _check_own(fn)
        spec = _declare(fn, tuple(reads), input_shaped)
        SPECS[name] = dataclasses.replace(spec, fresh=fresh, in_place=in_place)
        VJPS[name] = fn
        return fn

    return register


def _check_own(fn: Callable[..., Any]) -> None:
    p = inspect.signature(fn).parameters.get("own")
    if p is None or p.kind is not inspect.Parameter.KEYWORD_ONLY or p.default is not False:
        raise ValueError(
            f"numpy kernel '{fn.__name__}' declares in_place=True, so it must take a "
            "keyword-only own=False"
        )


def _declare(fn: Callable[..., Any], reads: tuple[str, ...], input_shaped: bool) -> VjpSpec:
    """The declaration, checked against ``fn``'s signature."""
    params = list(inspect.signature(fn).parameters.values())
    positional = [p.name for p in params if p.kind in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    variadic = next((p.name for p in params if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
    keyword_only = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    if len(positional) < 2:
        raise ValueError(f"numpy VJP '{fn.__name__}' must take (g, y, *args)")
    known = set(positional[1:]) | ({variadic} if variadic else set())
    for r in reads:
        if r == "res":
            if "res" not in keyword_only:
                raise ValueError(
                    f"numpy VJP '{fn.__name__}' reads 'res' but takes no keyword-only res"
                )
        elif r not in known:
            raise ValueError(
                f"numpy VJP '{fn.__name__}' declares reads={reads!r}, but '{r}' is none of its "
                f"parameters ({', '.join(sorted(known))})"
            )
    if "res" in keyword_only and "res" not in reads:
        raise ValueError(f"numpy VJP '{fn.__name__}' takes res but does not declare it in reads")
    return VjpSpec(
        output=positional[1], args=tuple(positional[2:]), variadic=variadic,
        reads=frozenset(reads), input_shaped=input_shaped, takes_needs="needs" in keyword_only,
    )


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


def forward(
    op: str, args: Sequence[Any], kwargs: dict[str, Any], save: bool = False,
    fn: Callable[..., Any] | None = None,
) -> Any:
    """Call ``op``'s kernel as generated code does. With ``save``: ``(out, res)``, ``res``
    being None for an op that keeps no residuals. ``fn``: the kernel to call instead of the
    registered one (the same kernel copied into a generated module)."""
    fn = KERNELS[op] if fn is None else fn
    if not save:
        return fn(*args, **kwargs)
    if op in RESIDUALS:
        return fn(*args, save=True, **kwargs)
    return fn(*args, **kwargs), None


def backward(
    op: str, g: Any, y: Any, args: Sequence[Any], kwargs: dict[str, Any], res: Any = None,
    needs: Sequence[bool] | None = None, fn: Callable[..., Any] | None = None,
) -> tuple[Any, ...]:
    """Call ``op``'s VJP as generated code does: None for every argument it does not declare,
    ``res`` (from ``forward(..., save=True)``) when it reads residuals, ``needs`` when given
    and taken. ``fn``: the VJP to call instead of the registered one."""
    spec = SPECS[op]
    fn = VJPS[op] if fn is None else fn
    passed = [a if spec.reads_arg(k) else None for k, a in enumerate(args)]
    extra: dict[str, Any] = {}
    if spec.reads_residuals:
        extra["res"] = res
    if needs is not None and spec.takes_needs:
        extra["needs"] = tuple(needs)
    return tuple(fn(g, y if spec.reads_output else None, *passed, **kwargs, **extra))


for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _mod.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod}")
