"""Command-line overrides of a spec: ``--set train.optimizer.lr=0.05``.

An override is a dotted path into the spec's YAML data and a value parsed as YAML (with
the same safe, bounded reader as spec files).  Overrides are applied to the loaded YAML
tree *before* validation, so an overridden value is checked exactly like one written in
the file; its source-map entries point at the ``--set`` argument, so an error in it reads
``--set train.optimizer.lr=abc: error: ...``.

Paths: mapping keys by name; list items by index (``loss.0.weight``); under ``graph:``,
``loss:`` and a block's ``graph:`` a name addresses the node with that id (a loss term
without an id answers to its op name, as in variants).  A missing key is added (an
unknown one is then reported by validation, with a "did you mean" hint); a path that
runs through a scalar, a node id that does not exist or an index out of range is an error
at the argument.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from graphspec.errors import Location, SpecError, did_you_mean
from graphspec.spec.source import PathKey, SourceMap, parse_yaml

MAX_OVERRIDE_CHARS = 10_000  # one argument; a spec value longer than this belongs in the file
MAX_OVERRIDES = 1_000
MAX_PATH_PARTS = 32


@dataclass(frozen=True)
class Override:
    text: str  # the argument as given: 'train.optimizer.lr=0.05'
    parts: tuple[str, ...]  # ('train', 'optimizer', 'lr')
    value: Any
    value_map: SourceMap  # locations inside a structured value ({a: 1}), relative to it

    @property
    def location(self) -> Location:
        return argument_location(self.text)


def argument_location(text: str) -> Location:
    """Where an override's errors point: the argument itself, shown as ``--set PATH=VALUE``."""
    shown = text if len(text) <= 120 else text[:117] + "..."
    return Location(f"--set {shown}")


def parse(text: str) -> Override:
    """``PATH=VALUE`` as an :class:`Override`; a SpecError at the argument when malformed."""
    where = argument_location(text)
    if len(text) > MAX_OVERRIDE_CHARS:
        raise SpecError(
            f"the override is longer than {MAX_OVERRIDE_CHARS:,} characters",
            where,
            hint="put large values in the spec file",
        )
    path, eq, value_text = text.partition("=")
    path = path.strip()
    if not eq or not path:
        raise SpecError("an override is PATH=VALUE, e.g. train.optimizer.lr=0.05", where)
    parts = tuple(p.strip() for p in path.split("."))
    if any(not p for p in parts):
        raise SpecError(f"'{path}' has an empty part; parts are separated by single dots", where)
    if len(parts) > MAX_PATH_PARTS:
        raise SpecError(f"the path has more than {MAX_PATH_PARTS} parts", where)
    if not value_text.strip():
        raise SpecError(
            f"'{path}' has no value", where, hint="give a value after '=' (null for none)"
        )
    try:
        value, vmap = parse_yaml(value_text, str(where))
    except SpecError as e:  # located inside the value text, which is not a file: say so
        raise SpecError(f"the value is not valid YAML: {e.message}", where, hint=e.hint) from None
    if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value_text.strip()):
        value = float(value)  # YAML 1.1 reads 1e-3 as a string; on a command line it is a number
    return Override(text, parts, value, vmap)


_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def apply(data: dict[str, Any], smap: SourceMap, args: Iterable[str]) -> tuple[str, ...]:
    """Apply the overrides ``args`` to the YAML ``data`` in order (later ones win), pointing
    ``smap`` at the arguments for every value they set; returns the arguments applied."""
    applied = tuple(args)
    if len(applied) > MAX_OVERRIDES:
        raise SpecError(f"more than {MAX_OVERRIDES} overrides")
    for text in applied:
        _apply_one(data, smap, parse(text))
    return applied


def _apply_one(data: dict[str, Any], smap: SourceMap, ov: Override) -> None:
    where = ov.location
    node: Any = data
    path: PathKey = ()
    for i, part in enumerate(ov.parts):
        last = i == len(ov.parts) - 1
        key: Any
        if isinstance(node, list):
            key = _list_key(node, path, part, ov)
            if last:
                node[key] = ov.value
        elif isinstance(node, dict):
            key = part
            if last:
                node[key] = ov.value
            elif not isinstance(node.get(key), dict | list):
                if key in node and node[key] is not None:
                    raise SpecError(
                        f"'{'.'.join(ov.parts[: i + 1])}' is {node[key]!r}, not a mapping, so "
                        f"'{'.'.join(ov.parts)}' cannot be set",
                        where,
                    )
                node[key] = {}  # a missing section: validation says whether it may exist
        else:  # pragma: no cover - the branches above never step into a scalar
            raise SpecError(f"'{'.'.join(ov.parts[:i])}' is not a mapping", where)
        path = path + (key,)
        smap.keys[path] = where
        smap.values[path] = where
        node = node[key]
    _forget_below(smap, path)
    for sub, _ in ov.value_map.values.items():
        if sub:
            smap.values[path + sub] = where
    for sub in ov.value_map.keys:
        smap.keys[path + sub] = where


def _list_key(items: list[Any], path: PathKey, part: str, ov: Override) -> int:
    """The index ``part`` names in the list at ``path``: a number, or a node's id."""
    where = ov.location
    dotted = ".".join(str(p) for p in path) or "the spec"
    if part.lstrip("-").isdigit():
        index = int(part)
        if not -len(items) <= index < len(items):
            raise SpecError(
                f"{dotted} has {len(items)} items; index {index} is out of range", where
            )
        return index % len(items)
    if _is_node_list(path):
        names = [_node_name(n, path) for n in items]
        if part in names:
            return names.index(part)
        known = [n for n in names if n]
        raise SpecError(
            f"{dotted} has no node '{part}'",
            where,
            hint=did_you_mean(part, known)
            or ("nodes: " + ", ".join(known) if known else "no node has an id"),
        )
    raise SpecError(f"{dotted} is a list; address its items by index (0, 1, ...)", where)


def _is_node_list(path: PathKey) -> bool:
    return path in (("graph",), ("loss",)) or (
        len(path) == 3 and path[0] == "blocks" and path[2] == "graph"
    )


def _node_name(node: Any, path: PathKey) -> str | None:
    if not isinstance(node, dict):
        return None
    if isinstance(node.get("id"), str):
        return str(node["id"])
    if path == ("loss",) and isinstance(node.get("op"), str):
        return str(node["op"])
    return None


def _forget_below(smap: SourceMap, path: PathKey) -> None:
    """Locations of what the file had under a replaced value no longer apply."""
    n = len(path)
    for table in (smap.values, smap.keys):
        for key in [k for k in table if len(k) > n and k[:n] == path]:
            del table[key]
