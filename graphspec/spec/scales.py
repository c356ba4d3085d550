"""Scales (``graphspec: 2``): named sets of var values, one spec for several model sizes.

::

    vars: {width: 32, depth: 2}
    scales:
      n: {width: 16, depth: 1}
      s: {width: 32, depth: 2}
      m: {width: 64, depth: 4}

``--scale m`` sets the vars to scale ``m``'s values before they are read (so a var
computed from ``width`` follows it, and ``--set vars.width=...`` still wins).  Without
``--scale`` the vars keep the values written under ``vars:``; no scale is special.  A
scale that names a var the spec does not define is an error at that name, for every
scale, chosen or not.
"""

from __future__ import annotations

import copy
from typing import Any

from graphspec.errors import Location, SpecError, did_you_mean
from graphspec.spec.source import SourceMap

KEY = "scales"


def scale_location(name: str) -> Location:
    """Where an error about the ``--scale`` argument points."""
    return Location(f"--scale {name}")


def select(data: dict[str, Any], smap: SourceMap, name: str | None) -> None:
    """Check the spec's scales and apply scale ``name`` (None: none) to ``data['vars']``,
    its locations pointing at the scale's entries."""
    scales = data.get(KEY)
    if scales is not None:
        _check(scales, data.get("vars"), smap)
    if name is None:
        return
    if not scales:
        raise SpecError(
            "the spec has no 'scales:' to choose from",
            scale_location(name),
            hint="define scales: {NAME: {VAR: VALUE, ...}, ...} next to 'vars:'",
        )
    if name not in scales:
        raise SpecError(
            f"no scale '{name}'",
            scale_location(name),
            notes=[("scales are defined here", smap.locate((KEY,), key=True))],
            hint=did_you_mean(name, scales) or "scales: " + ", ".join(map(str, scales)),
        )
    for var, value in scales[name].items():
        data["vars"][var] = copy.deepcopy(value)
        _relocate(smap, (KEY, name, var), ("vars", var))


def _check(scales: Any, defined: Any, smap: SourceMap) -> None:
    if not isinstance(scales, dict):
        raise SpecError(
            "'scales' must be a mapping of scale names to var values",
            smap.locate((KEY,)),
            hint="scales: {s: {width: 32}, m: {width: 64}}",
        )
    defined = defined if isinstance(defined, dict) else {}
    for name, values in scales.items():
        if not isinstance(values, dict):
            raise SpecError(
                f"scale '{name}' must be a mapping of vars to values",
                smap.locate((KEY, name)),
                hint="{width: 32, depth: 2}",
            )
        for var in values:
            if var not in defined:
                notes = [("vars are defined here", smap.locate(("vars",), key=True))]
                raise SpecError(
                    f"scale '{name}' sets '{var}', which is not a var of this spec",
                    smap.locate((KEY, name, var), key=True),
                    notes=notes if defined else [],
                    hint=did_you_mean(str(var), defined)
                    or (
                        "vars: " + ", ".join(defined)
                        if defined
                        else "a scale sets vars: define them under a top-level 'vars:'"
                    ),
                )


def _relocate(smap: SourceMap, src: tuple, dst: tuple) -> None:
    """Point the value at ``dst`` (and the items of a list there) where ``src`` was
    written; the var's name keeps its place under ``vars:``."""
    table = smap.values
    for key in [k for k in table if k[: len(dst)] == dst and len(k) > len(dst)]:
        del table[key]
    for key, loc in list(table.items()):
        if key[: len(src)] == src:
            table[dst + key[len(src) :]] = loc
