"""Copy kernels into a generated module: each function's source with its registration
decorator stripped, and exactly the helpers and constants it reads, transitively.

What a function reads is taken from its bytecode (``LOAD_GLOBAL``), not from its text, so a
helper defined next to a kernel in its family module (or in the backend's ``_prelude``) comes
along without anyone listing it, and a helper nobody calls stays out.  Every global is
checked when the module is generated: a module must be one the generated header imports
under that name, a function must come from the backend's kernel package, a constant must be
a plain literal; a name that resolves to nothing (not defined, not a builtin) fails here,
naming the kernel and the name, instead of as a NameError in a user's model file.
"""

from __future__ import annotations

import ast
import builtins
import dis
import inspect
import textwrap
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from graphspec.codegen.text import literal
from graphspec.errors import BackendError

_LITERALS = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class Rules:
    """What a backend's kernels may read."""

    backend: str  # named in messages: "numpy kernel 'x' ..."
    package: str  # helpers must be defined in modules under this package
    modules: dict[str, types.ModuleType]  # the module globals the generated header binds
    decorators: frozenset[str]  # registration decorators, stripped from copied source


@dataclass(frozen=True)
class Library:
    source: str  # constants, then functions (each function's helpers before it)
    names: list[str]  # every top-level name the source defines


def collect(
    functions: Iterable[types.FunctionType], rules: Rules, separator: str = "\n\n\n"
) -> Library:
    """The source of ``functions`` and what they read, each function's helpers first;
    ``separator`` goes between two definitions."""
    funcs: dict[str, types.FunctionType] = {}  # insertion order = dependencies first
    consts: dict[str, object] = {}

    def visit(fn: types.FunctionType, root: str) -> None:
        name = fn.__name__
        if name in funcs:
            if funcs[name] is not fn:
                raise BackendError(
                    f"two {rules.backend} kernel helpers are both called '{name}' "
                    f"({funcs[name].__module__} and {fn.__module__}); generated modules hold "
                    "one namespace, so rename one"
                )
            return
        who = f"{rules.backend} kernel '{root}'" + ("" if name == root else f" (via '{name}')")
        funcs[name] = fn  # placeholder against recursion; re-inserted below to order deps
        for g in sorted(set(_global_loads(fn.__code__))):
            if g not in fn.__globals__:
                if hasattr(builtins, g):
                    continue
                raise BackendError(
                    f"{who} uses '{g}', which is neither defined in {fn.__module__} nor a "
                    "builtin; the generated module would fail with a NameError"
                )
            value = fn.__globals__[g]
            if isinstance(value, types.ModuleType):
                if rules.modules.get(g) is not value:
                    allowed = ", ".join(rules.modules)
                    raise BackendError(
                        f"{who} uses module '{value.__name__}' as '{g}'; {rules.backend} "
                        f"kernels may use only {allowed}"
                    )
            elif isinstance(value, types.FunctionType):
                if not value.__module__.startswith(rules.package):
                    raise BackendError(
                        f"{who} calls '{g}' from {value.__module__}; kernels may call only "
                        f"helpers defined in {rules.package}"
                    )
                visit(value, root)
            elif _is_literal(value):
                if g in consts and consts[g] != value:
                    raise BackendError(
                        f"two {rules.backend} kernel constants are both called '{g}'"
                    )
                consts[g] = value
            else:
                raise BackendError(
                    f"{who} reads global '{g}' of type {type(value).__name__}; only modules, "
                    "kernel helpers and literal constants can be copied"
                )
        del funcs[name]
        funcs[name] = fn

    for f in functions:
        visit(f, f.__name__)
    parts = [f"{k} = {literal(v)}" for k, v in consts.items()]  # float('inf'), not inf
    parts += [function_source(f, rules) for f in funcs.values()]
    return Library(separator.join(parts), list(consts) + list(funcs))


def function_source(fn: types.FunctionType, rules: Rules) -> str:
    """``fn``'s source without its registration decorator (any other fails: a copied
    function must mean what it says without the package around it)."""
    src = textwrap.dedent(inspect.getsource(fn))
    tree = ast.parse(src)
    node = tree.body[0]
    if not isinstance(node, ast.FunctionDef):  # pragma: no cover - getsource of a function
        raise BackendError(f"cannot copy {rules.backend} kernel '{fn.__name__}'")
    for dec in node.decorator_list:
        call = dec.func if isinstance(dec, ast.Call) else dec
        if not (isinstance(call, ast.Name) and call.id in rules.decorators):
            raise BackendError(
                f"{rules.backend} kernel '{fn.__name__}' has decorator "
                f"'{ast.unparse(dec)}'; only {', '.join(sorted(rules.decorators))} are stripped "
                "when kernels are copied, others cannot be"
            )
    return "\n".join(src.splitlines()[node.lineno - 1 :]).rstrip()


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
