"""Variables (``graphspec: 2``): a top-level ``vars:`` mapping used as ``$name`` anywhere.

::

    vars:
      width: 64
      half: $width // 2          # a var may use the vars above it
    graph:
      - {op: linear, units: $width}
      - {op: linear, units: $half * 3}

A string value that is an expression over ``$names`` (graphspec.spec.expr) is replaced by
its value before validation, so a substituted value is checked exactly like a literal and
an error in it points at the use.  Prose is left alone: a string is an expression only if
the whole of it reads as one, and ``doc:`` values are never read.

Inside a block, a ``$name`` that is one of the block's parameters is the parameter (it
shadows a var of that name) and is left for expansion (graphspec.spec.expand); an
expression mixing parameters and vars has its vars filled in here and is computed when
the block is used.  ``$in`` is the block's input, never a var.  The ``variants:`` patches
are substituted when each variant is built (a variant may change the vars).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from graphspec.errors import Location, SpecError, did_you_mean
from graphspec.spec import expr
from graphspec.spec.overrides import argument_location
from graphspec.spec.overrides import parse as parse_override
from graphspec.spec.source import PathKey, SourceMap

KEY = "vars"
MAX_VARS = 1_000
# Where ``$names`` are not read: the vars themselves (read in order first), the scales
# (values for the vars), prose, and the variants' patches (read per variant).
SKIPPED = ("scales", "variants", "doc")
RESERVED = ("in",)  # '$in' is a block's input
MAX_NOTES = 4  # "'width' is defined here" notes on one error

VarWarning = tuple[str, Location | None]


def check_overrides(data: dict[str, Any], overrides: Iterable[str]) -> None:
    """``--set vars.NAME=...`` may only change a var the spec defines (a new name would be
    a var nothing uses, most likely a typo)."""
    defined = data.get(KEY)
    for text in overrides:
        parts = parse_override(text).parts
        if parts[0] != KEY or len(parts) < 2:
            continue
        if not isinstance(defined, dict):
            raise SpecError(
                "the spec has no 'vars:' to override",
                argument_location(text),
                hint="vars need 'graphspec: 2' and a top-level 'vars:' mapping",
            )
        if parts[1] not in defined:
            raise SpecError(
                f"'{parts[1]}' is not a var of this spec",
                argument_location(text),
                hint=did_you_mean(parts[1], defined) or "vars: " + ", ".join(defined),
            )


def substitute(data: dict[str, Any], smap: SourceMap) -> list[VarWarning]:
    """Evaluate the vars, write their values back into ``data['vars']`` and replace every
    ``$name`` use in ``data``; returns warnings (a var nothing uses)."""
    sub = _Substituter(data, smap)
    sub.define()
    for key in list(data):
        if key not in (KEY, *SKIPPED):
            data[key] = sub.walk(data[key], (key,), {})
    sub.count_uses(data.get("variants"))
    return [
        (f"var '{name}' is never used", smap.locate((KEY, name), key=True))
        for name in sub.values
        if name not in sub.used
    ]


class _Substituter:
    def __init__(self, data: dict[str, Any], smap: SourceMap) -> None:
        self.data = data
        self.smap = smap
        self.values: dict[str, Any] = {}
        self.used: set[str] = set()
        self.defined_at = smap.keys.get((KEY,))

    def define(self) -> None:
        raw = self.data.get(KEY)
        if raw is None:
            return
        if not isinstance(raw, dict):
            raise SpecError(
                "'vars' must be a mapping of names to values",
                self.smap.locate((KEY,)),
                hint="vars: {width: 64, depth: 2}",
            )
        if len(raw) > MAX_VARS:
            raise SpecError(f"more than {MAX_VARS:,} vars", self.smap.locate((KEY,), key=True))
        for name, value in raw.items():
            path = (KEY, name)
            if not isinstance(name, str) or not name.isidentifier() or name in RESERVED:
                raise SpecError(
                    f"'{name}' cannot be a var name",
                    self.smap.locate(path, key=True),
                    hint="a var name is an identifier (letters, digits, '_'), not 'in'",
                )
            self.check_value(value, path)
            # A var sees the vars above it only: the order of the mapping is the order of
            # definition, so there are no cycles to look for.
            self.values[name] = self.walk(value, path, {})
        raw.update(self.values)

    def check_value(self, value: Any, path: PathKey) -> None:
        items = value if isinstance(value, list) else [value]
        if all(v is not None and not isinstance(v, dict | list) for v in items):
            return
        raise SpecError(
            f"var '{path[-1]}' must be a number, a string, a boolean or a list of them",
            self.smap.locate(path),
        )

    def walk(self, value: Any, path: PathKey, params: dict[str, Any]) -> Any:
        """``value`` with its ``$names`` replaced; ``params`` are the enclosing block's
        parameters, left for expansion."""
        if isinstance(value, str):
            return self.use(value, path, params)
        if isinstance(value, list):
            return [self.walk(v, path + (i,), params) for i, v in enumerate(value)]
        if isinstance(value, dict):
            if path[:1] == ("blocks",) and len(path) == 2 and isinstance(value.get("params"), dict):
                # The block's graph sees its parameters; their defaults see the vars only.
                inner = dict(value["params"])
                return {
                    k: self.walk(v, path + (k,), inner if k == "graph" else {})
                    for k, v in value.items()
                }
            return {
                k: v if k == "doc" else self.walk(v, path + (k,), params) for k, v in value.items()
            }
        return value

    def use(self, text: str, path: PathKey, params: dict[str, Any]) -> Any:
        if text == "$in":
            return text
        tokens = expr.tokenize(text)
        if tokens is None:
            return text
        used = expr.names(tokens)
        for name in used:
            if name not in params:
                self.lookup(name, path, params)
        if any(n in params for n in used):
            # Computed when the block is used: fill in the vars, keep the parameters.
            if len(tokens) == 1:
                return text
            return expr.render(tokens, {n: self.values[n] for n in used if n not in params})
        if len(tokens) == 1 and tokens[0].kind == "var":
            return self.values[tokens[0].value]  # a bare '$name': any value, lists too
        try:
            return expr.evaluate(text, tokens, lambda n: self.values[n])
        except expr.ExprError as e:
            notes = [(f"'{n}' is defined here", self.smap.locate((KEY, n))) for n in used]
            raise SpecError(str(e), self.smap.locate(path), notes=notes[:MAX_NOTES]) from None

    def lookup(self, name: str, path: PathKey, params: dict[str, Any]) -> Any:
        if name in self.values:
            self.used.add(name)
            return self.values[name]
        # At the name inside the value, not at the value's start.
        use = re.compile(rf"\${re.escape(name)}(?![A-Za-z0-9_])")
        where = self.smap.point_into(self.smap.locate(path), use)
        raw = self.data.get(KEY)
        later = isinstance(raw, dict) and name in raw and path[:1] == (KEY,)
        if later and name == path[1]:
            raise SpecError(f"var '{name}' uses itself", where)
        if later:
            raise SpecError(
                f"var '{path[1]}' uses '${name}', which is defined after it",
                where,
                notes=[(f"'{name}' is defined here", self.smap.locate((KEY, name), key=True))],
                hint="a var may use the vars above it; move it up",
            )
        known = list(self.values) + list(params)
        inside = " of this block nor a var" if params else ""
        notes = [("vars are defined here", self.defined_at)] if self.defined_at else []
        raise SpecError(
            f"'${name}' is not a parameter{inside}" if params else f"undefined var '${name}'",
            where,
            notes=notes,
            hint=did_you_mean(name, known)
            or (
                "vars: " + ", ".join(self.values)
                if self.values
                else "define it under a top-level 'vars:'"
            ),
        )

    def count_uses(self, value: Any) -> None:
        """Mark the vars a variant's patch uses (it is substituted when built)."""
        if isinstance(value, str):
            tokens = expr.tokenize(value)
            self.used.update(n for n in expr.names(tokens or []) if n in self.values)
        elif isinstance(value, list):
            for v in value:
                self.count_uses(v)
        elif isinstance(value, dict):
            for k, v in value.items():
                if k != "doc":
                    self.count_uses(v)
