"""Includes: the blocks of other files, a block library shared by several specs.

A version-2 spec names the files whose blocks it uses::

    graphspec: 2
    include: [blocks/layers.yaml, blocks/shortcuts.yaml]

An included file is a *block library*: ``graphspec: 2``, ``blocks:``, and optionally
``doc:`` and an ``include:`` of its own; anything else in it is refused where it stands.
Its blocks join the spec's own in one namespace, as if written under the spec's
``blocks:``; the rest of the pipeline (overrides, variants, expansion) sees one document.

* Paths are relative to the including file.  A path that is absolute, or that leads
  outside the directory of the spec being loaded (by ``..`` or through a symbolic link),
  is refused unless the caller allows it (``--allow-outside``, ``allow_outside=True``).
* A file reached twice along different paths is read once; a file that includes itself,
  directly or not, is a cycle, reported at the include entry with the chain of files.
* A block name defined twice (in two files, or in a file and the spec) is an error
  naming both places.
* Variants and ``--set`` patch the blocks brought in, but not ``include:`` itself: the
  files are read before either applies.
* Reads are bounded: each file as a spec is (graphspec.spec.source.read_text), all of
  them together to the size of one spec, and the number of files and their nesting too.

Locations: the source-map entries of each included block are copied into the spec's map,
still pointing into the included file and carrying the include entry that brought it in
(``Location.included_from``), so an error found at any later stage (validation,
expansion, build, shapes) names the library's line and column, and the chain of includes.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from graphspec.errors import Location, SpecError
from graphspec.spec.overrides import argument_location
from graphspec.spec.source import MAX_FILE_BYTES, PathKey, SourceMap, parse_yaml, read_text

KEY = "include"
# What a block library may hold.
LIBRARY_KEYS = ("graphspec", "doc", KEY, "blocks")
LIBRARY_VERSION = 2
MAX_FILES = 64  # files included in all; a real spec includes a handful
MAX_DEPTH = 16  # libraries including libraries
MAX_TOTAL_BYTES = MAX_FILE_BYTES  # all included files together: as much as one spec
ALLOW_HINT = "--allow-outside (allow_outside=True) permits it"


def include_blocks(
    data: dict[str, Any],
    smap: SourceMap,
    base: Path | None,
    allow_outside: bool = False,
    overrides: Iterable[str] = (),
) -> tuple[str, ...]:
    """Merge the blocks of the files ``data['include']`` names into ``data['blocks']``
    (in place), and their locations into ``smap``; the names of the files read, in order.

    ``base`` is the spec file's path (include paths are relative to its directory; without
    one, to the current directory).  ``overrides`` (``--set``, applied after this) may not
    change ``include:``: it would change nothing."""
    for text in overrides:
        if text.partition("=")[0].split(".")[0].strip() == KEY:
            raise SpecError(
                "--set cannot change include: (the included files are read before overrides apply)",
                argument_location(text),
                hint="--set may change the blocks they bring in: blocks.NAME...",
            )
    if KEY not in data:
        return ()
    return _Includer(smap, base, allow_outside).run(data)


def standalone(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of the spec's data, its includes merged in, that stands alone: without
    ``include:`` (its blocks are in ``blocks:`` already)."""
    return {k: copy.deepcopy(v) for k, v in data.items() if k != KEY}


@dataclasses.dataclass(frozen=True)
class _File:
    display: str  # the name messages use
    path: Path  # as found, from the spec's path on (includes inside start from its directory)
    real: Path | None  # resolved: the file's identity (cycles, a file read once)
    smap: SourceMap
    via: Location | None  # the include entry that brought it in; None: the spec itself


class _Includer:
    def __init__(self, smap: SourceMap, base: Path | None, allow_outside: bool) -> None:
        self.smap = smap
        self.allow_outside = allow_outside
        self.top = _File(
            display=str(base) if base is not None else smap.file,
            path=base if base is not None else Path("spec.yaml"),
            real=_real(base) if base is not None else None,
            smap=smap,
            via=None,
        )
        self.root = self.top.path.parent
        self.root_real = _real(self.root)
        self.root_shown = (
            f"{self.root} (the directory of {base})"
            if base is not None
            else "the current directory"
        )
        self.read: dict[Path, str] = {}  # resolved path -> display name, in reading order
        self.total = 0
        self.blocks: dict[str, Any] = {}
        self.defined: dict[str, Location] = {}  # block name -> where it is defined

    def run(self, data: dict[str, Any]) -> tuple[str, ...]:
        own = data.get("blocks")
        # Where the spec's own blocks are, before included ones' locations join the map.
        own_at = {
            name: self.at(self.top, ("blocks", name), key=True)
            for name in (own if isinstance(own, dict) else {})
        }
        self.include(self.top, data[KEY], [self.top])
        if not self.blocks or not isinstance(own, dict | None):
            return tuple(self.read.values())  # a malformed 'blocks:' is validation's to report
        for name, where in own_at.items():
            self.define(name, where)
        data["blocks"] = {**self.blocks, **(own or {})}
        return tuple(self.read.values())

    # ---- one file's include list ----------------------------------------------------------
    def include(self, owner: _File, entries: Any, stack: list[_File]) -> None:
        self.check_entries(owner, entries)
        for i, entry in enumerate(entries):
            at = self.at(owner, (KEY, i))
            file = self.find(owner, entry, at)
            cycle = [f for f in stack if f.real == file.real]
            if cycle:
                chain = stack[stack.index(cycle[0]) :] + [file]
                raise SpecError(
                    "include cycle: " + " -> ".join(f.display for f in chain),
                    at,
                    hint="a block library cannot include, directly or not, the file "
                    "that includes it",
                )
            if file.real in self.read:
                continue  # reached along another path too: its blocks are in already
            if len(self.read) >= MAX_FILES:
                raise SpecError(f"the spec includes more than {MAX_FILES} files (the limit)", at)
            if len(stack) > MAX_DEPTH:  # the chain of files shows in the notes of ``at``
                raise SpecError(f"includes nest more than {MAX_DEPTH} deep here (the limit)", at)
            self.library(file, stack)

    def check_entries(self, owner: _File, entries: Any) -> None:
        example = "include: [blocks/layers.yaml, ...]"
        if not isinstance(entries, list):
            raise SpecError(
                f"include: is a list of file paths, got {_shown(entries)}",
                self.at(owner, (KEY,)),
                hint=f"include: [{entries}]" if isinstance(entries, str) and entries else example,
            )
        for i, entry in enumerate(entries):
            if not isinstance(entry, str) or not entry:
                raise SpecError(
                    f"include: is a list of file paths, got {_shown(entry)}",
                    self.at(owner, (KEY, i)),
                    hint=example,
                )

    def find(self, owner: _File, entry: str, at: Location) -> _File:
        """The file ``entry`` names from ``owner``: checked against the spec's directory."""
        written = Path(entry)
        if written.is_absolute() and not self.allow_outside:
            raise SpecError(
                f"include path '{entry}' is absolute",
                at,
                hint="include paths are relative to the including file; " + ALLOW_HINT,
            )
        path = owner.path.parent / written
        display = os.path.normpath(path)  # as the user would reach it from here
        real = _real(path, entry, at)
        if not self.allow_outside and not real.is_relative_to(self.root_real):
            # As written (links not followed), is it inside?  Then a link leads out.
            plain = Path(os.path.abspath(path)).is_relative_to(os.path.abspath(self.root))
            how = " through a symbolic link" if plain else ""
            raise SpecError(
                f"include '{entry}' leads outside the spec's directory{how}",
                at,
                hint=f"includes stay under {self.root_shown}; " + ALLOW_HINT,
            )
        return _File(display, path, real, SourceMap(display), at)

    # ---- one library ----------------------------------------------------------------------
    def library(self, file: _File, stack: list[_File]) -> None:
        assert file.real is not None and file.via is not None  # not the spec itself
        try:
            _, text = read_text(file.real, name=file.display)
        except SpecError as e:
            if e.location is None or e.location.line is None:  # about the file as a whole
                raise SpecError(e.message, file.via, hint=e.hint) from None
            raise _inside(e, file.via) from None  # not UTF-8: at the byte, in the file
        self.total += len(text.encode("utf-8"))
        if self.total > MAX_TOTAL_BYTES:
            raise SpecError(
                f"the included files hold more than {MAX_TOTAL_BYTES // 2**20} MiB "
                "together (the limit for a spec)",
                file.via,
            )
        self.read[file.real] = file.display
        try:
            data, smap = parse_yaml(text, file.display)
        except SpecError as e:
            raise _inside(e, file.via) from None
        file = dataclasses.replace(file, smap=smap)
        if not isinstance(data, dict):
            raise SpecError(
                "an included file must be a block library, a YAML mapping "
                "(graphspec: 2, blocks: ...)",
                self.at(file, ()),
            )
        self.check_library(file, data)
        if KEY in data:
            self.include(file, data[KEY], stack + [file])
        for name in data.get("blocks") or {}:
            self.define(name, self.at(file, ("blocks", name), key=True))
            self.blocks[name] = data["blocks"][name]
        self.copy_locations(file)

    def check_library(self, file: _File, data: dict[str, Any]) -> None:
        for key in data:
            if key not in LIBRARY_KEYS:
                raise SpecError(
                    f"'{key}' does not belong in a block library",
                    self.at(file, (key,), key=True),
                    hint="an included file holds only "
                    + ", ".join(LIBRARY_KEYS)
                    + "; the rest of a spec stays in the spec",
                )
        if "graphspec" not in data:
            raise SpecError(
                "a block library starts with 'graphspec: 2'",
                self.at(file, ()),
                hint="an included file is a block library: graphspec: 2, blocks: ...",
            )
        if data["graphspec"] != LIBRARY_VERSION or type(data["graphspec"]) is not int:
            raise SpecError(
                f"a block library is format version {LIBRARY_VERSION}, not {data['graphspec']!r}",
                self.at(file, ("graphspec",)),
                hint=f"write 'graphspec: {LIBRARY_VERSION}'",
            )
        if not isinstance(data.get("doc", ""), str):
            raise SpecError("doc: must be text", self.at(file, ("doc",)))
        if not isinstance(data.get("blocks") or {}, dict):
            raise SpecError(
                "blocks: must be a mapping of block names to blocks", self.at(file, ("blocks",))
            )

    def define(self, name: str, where: Location) -> None:
        first = self.defined.get(name)
        if first is not None:
            raise SpecError(
                f"block '{name}' is defined twice",
                where,
                notes=[("first defined here", first)],
                hint="the spec and the files it includes share one namespace of blocks: rename one",
            )
        self.defined[name] = where

    def copy_locations(self, file: _File) -> None:
        """The included blocks' locations into the spec's map, pointing into ``file``."""
        assert file.via is not None
        for mine, theirs in (
            (self.smap.values, file.smap.values),
            (self.smap.keys, file.smap.keys),
        ):
            for path, loc in theirs.items():
                if len(path) >= 2 and path[0] == "blocks":
                    mine[path] = dataclasses.replace(loc, included_from=file.via)

    def at(self, file: _File, path: PathKey, *, key: bool = False) -> Location:
        loc = file.smap.locate(path, key=key)
        return loc if file.via is None else dataclasses.replace(loc, included_from=file.via)


def _real(path: Path, entry: str | None = None, at: Location | None = None) -> Path:
    """``path`` absolute, with every symbolic link resolved."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symbolic link loop (Python < 3.13)
        raise SpecError(
            f"cannot resolve the path '{entry or path}' (a symbolic link loop?)",
            at or Location(str(path)),
        ) from None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:56] + " ..."


def _inside(e: SpecError, via: Location) -> SpecError:
    """``e``, found in an included file, with the include entry on its locations."""

    def chained(loc: Location | None) -> Location | None:
        if loc is None or loc.included_from is not None:
            return loc
        return dataclasses.replace(loc, included_from=via)

    e.location = chained(e.location)
    e.notes = [(text, chained(loc)) for text, loc in e.notes]
    return e
