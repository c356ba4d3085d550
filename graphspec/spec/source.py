"""Reading YAML safely, keeping the ``line:col`` of every key and value.

We compose the YAML into nodes (no Python objects are ever constructed from tags) and turn
the node tree into plain dicts, lists and scalars ourselves.  That lets us:

* refuse every tag but the core schema's (``!!python/object`` and friends never run),
* reject duplicate keys, which ``yaml.safe_load`` silently merges,
* bound alias expansion (a "billion laughs" document is refused after a fixed budget),
* record where each value and each key stands, keyed by its path in the document.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from graphspec import regular_file
from graphspec.errors import Location, SpecError

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_VALUES = 200_000  # values after alias expansion; a real spec has a few thousand
MAX_DEPTH = 100  # nested mappings and lists; a real spec nests fewer than ten

PathKey = tuple[Any, ...]

_CORE_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:timestamp",  # read back as the string the user wrote
}


@dataclass
class SourceMap:
    """Where each value (``values``) and each mapping key (``keys``) of a document stands."""

    file: str
    text: str = ""
    values: dict[PathKey, Location] = field(default_factory=dict)
    keys: dict[PathKey, Location] = field(default_factory=dict)

    def locate(self, path: PathKey, *, key: bool = False) -> Location:
        """The location of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), Location(self.file))

    def point_into(self, where: Location, pattern: re.Pattern[str]) -> Location:
        """``where`` (the start of a value) moved to the first match of ``pattern`` on its
        line from there, so that a caret marks the part of the value at fault (``$widht``
        in ``units: $width * $widht``); ``where`` itself when it is not in this text or
        nothing matches."""
        if where.file != self.file or not self.text or where.line is None or where.col is None:
            return where
        starts = _line_starts(self.text)
        if where.line > len(starts):
            return where
        begin = starts[where.line - 1] + where.col - 1
        end = starts[where.line] if where.line < len(starts) else len(self.text)
        found = pattern.search(self.text, begin, end)
        if found is None:
            return where
        return dataclasses.replace(where, col=where.col + found.start() - begin)


_NEWLINE = re.compile(r"\r\n|\r|\n")


@functools.lru_cache(maxsize=8)
def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in _NEWLINE.finditer(text)]


def position(text: str, index: int) -> tuple[int, int]:
    """The 1-based ``(line, col)`` of character ``index`` of ``text``, lines ending at
    ``\n``, ``\r\n`` or ``\r`` as editors count them.  (PyYAML's marks also break lines
    at U+0085, U+2028 and U+2029, which would point past the line a user sees.)"""
    starts = _line_starts(text)
    line = bisect.bisect_right(starts, max(index, 0))
    return line, index - starts[line - 1] + 1


def _at(file: str, text: str, mark: Any) -> Location:
    if mark is None:
        return Location(file)
    return Location(file, *position(text, mark.index))


def read_text(path: str | Path, name: str | None = None) -> tuple[str, str]:
    """Read a spec file as UTF-8 text with clear errors; returns (display name, text).
    ``name`` is what messages call the file (default: ``path`` as given)."""
    p = Path(path)
    name = str(path) if name is None else name
    if not p.exists():
        raise SpecError(f"no such file: {name}", Location(name))
    if p.is_dir():
        raise SpecError(f"{name} is a directory, not a spec file", Location(name))
    limit = f"specs are limited to {MAX_FILE_BYTES // 2**20} MiB"
    hint = "large data belongs in a .npz or .csv file referenced from train.data"
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SpecError(f"file is {size / 2**20:.1f} MiB; {limit}", Location(name), hint=hint)
    try:
        # Regular files only (a FIFO would block, /dev/zero never ends), and bounded.
        with regular_file.open_regular(p) as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except regular_file.NotARegularFile as e:
        raise SpecError(f"{name} is not a regular file ({e.kind})", Location(name)) from None
    except OSError as e:
        raise SpecError(f"cannot read {name}: {e.strerror or e}", Location(name)) from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(f"file holds more than {MAX_FILE_BYTES // 2**20} MiB; {limit}",
                        Location(name), hint=hint)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError(
            f"file is not valid UTF-8 (byte 0x{raw[e.start]:02x})",
            Location(name, line, col),
            hint="save the spec as UTF-8",
        ) from None
    return name, text


def parse_yaml(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document into plain Python data and its source map."""
    if text.startswith("\ufeff"):  # a byte-order mark: editors do not show it as a column
        text = text[1:]
    smap = SourceMap(file=file, text=text)
    if not text.strip():
        raise SpecError(
            "the file is empty", Location(file, 1, 1), hint="a spec starts with 'graphspec: 1'"
        )
    try:
        _check_flow_depth(text, file)
        node = _compose(text, file)
    except yaml.MarkedYAMLError as e:
        raise _yaml_error(e, text, file) from None
    except yaml.reader.ReaderError as e:  # a character YAML forbids (NUL, most controls)
        line, col = position(text, min(max(e.position, 0), len(text)))
        char = e.character if isinstance(e.character, int) else ord(str(e.character)[:1] or " ")
        raise SpecError(
            f"invalid YAML: the control character U+{char:04X} is not allowed",
            Location(file, line, col),
            hint="remove control characters from the spec",
        ) from None
    except yaml.YAMLError as e:  # composer errors without marks
        raise SpecError(f"invalid YAML: {e}", Location(file)) from None
    if node is None:
        raise SpecError("the file holds no YAML document", Location(file, 1, 1))
    _check_expansion(node, file, text)
    builder = _Builder(smap)
    return builder.build(node, ()), smap


def _yaml_error(e: yaml.MarkedYAMLError, text: str, file: str) -> SpecError:
    """PyYAML's problem as the headline, its context ("while parsing a flow sequence") as a
    note at the place that context started (where an unclosed bracket was opened)."""
    loc = _at(file, text, e.problem_mark or e.context_mark)
    problem = str(e.problem or e.context or "invalid YAML")
    if problem.startswith("but "):  # "expected a single document..., but found another"
        problem = problem[4:]
    notes = []
    if e.context and e.problem and e.context_mark is not None:
        notes.append((str(e.context), _at(file, text, e.context_mark)))
    hint = None
    if "\\t" in problem or "tab" in problem.lower():
        hint = "YAML indentation must use spaces, not tabs"
    return SpecError(f"invalid YAML: {problem}", loc, notes=notes, hint=hint)


# Quoted strings and comments (skipped), and flow brackets (counted), for _check_flow_depth.
_FLOW_TOKENS = re.compile(
    r'"(?:[^"\\]|\\.)*"'  # a double-quoted string, escapes included
    r"|'(?:[^']|'')*'"  # a single-quoted string ('' is a quote)
    r"|(?:^|(?<=\s))#[^\n]*"  # a comment
    r"|[\[\]{}]",
    re.M,
)


def _check_flow_depth(text: str, file: str) -> None:
    """Refuse deeply nested flow collections (``[[[[...``) from the raw text.

    PyYAML's scanner slows down with every open flow level, so such a document would take
    seconds before the event check below saw its depth.  Counting brackets outside quotes
    and comments is a close over-approximation that costs milliseconds.
    """
    depth = 0
    for m in _FLOW_TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise SpecError(
                    f"the document nests more than {MAX_DEPTH} levels deep",
                    Location(file, *position(text, m.start())),
                )
        elif c in "]}":
            depth = max(depth - 1, 0)


class _Budget:
    """Counts a document's values and nesting as they are parsed, and refuses it the moment
    either passes its limit: before the rest is read, so an oversized document costs at most
    MAX_VALUES values of work and memory, whatever its length."""

    def __init__(self, text: str, file: str) -> None:
        self.text, self.file = text, file
        self.values = 0
        self.open: list[Any] = []  # start marks of the collections being read

    def value(self, mark: Any) -> None:
        self.values += 1
        if self.values > MAX_VALUES:
            # At the collection being filled: where the bulk is, and a column people can see.
            raise SpecError(
                f"the document holds more than {MAX_VALUES:,} values (the limit for a spec)",
                _at(self.file, self.text, self.open[-1] if self.open else mark),
                hint="large data belongs in a .npz or .csv file referenced from train.data",
            )

    def enter(self, mark: Any) -> None:
        self.open.append(mark)
        if len(self.open) > MAX_DEPTH:
            raise SpecError(
                f"the document nests more than {MAX_DEPTH} levels deep (the limit for a spec)",
                _at(self.file, self.text, mark),
            )

    def leave(self) -> None:
        self.open.pop()


class _Bounded(yaml.composer.Composer):
    """PyYAML's safe composer (no object is constructed from a tag), counting values and
    nesting as each node is composed.  The composer recurses once per nesting level; the
    depth is refused at MAX_DEPTH, long before Python's recursion limit, and the parser
    beneath it (PyYAML's or libyaml's) keeps its own states on the heap, so a deeply nested
    document is refused at level MAX_DEPTH + 1 whatever follows it."""

    budget: _Budget
    check_event: Callable[..., bool]  # from the parser it is mixed with
    peek_event: Callable[[], Any]

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):  # an existing node again: sized later
            return super().compose_node(parent, index)
        event = self.peek_event()
        self.budget.value(event.start_mark)
        if not isinstance(event, yaml.CollectionStartEvent):
            return super().compose_node(parent, index)
        self.budget.enter(event.start_mark)
        node = super().compose_node(parent, index)
        self.budget.leave()
        return node


class _BoundedLoader(_Bounded, yaml.SafeLoader):
    """PyYAML's own scanner and parser: the reference, and the one whose messages users see."""

    def __init__(self, text: str, file: str) -> None:
        yaml.SafeLoader.__init__(self, text)  # its reader refuses control characters
        self.budget = _Budget(text, file)


_CSafeLoader: Any = getattr(yaml, "CSafeLoader", None)  # None: PyYAML built without libyaml

if _CSafeLoader is not None:

    class _CBoundedLoader(_Bounded, _CSafeLoader):  # type: ignore[misc, valid-type]
        """libyaml's scanner and parser (in C, 3-4x faster on a large spec) under the same
        Python composer and budget: the same nodes, and marks at the same character index
        (libyaml counts characters, as PyYAML does)."""

        def __init__(self, text: str, file: str) -> None:
            _CSafeLoader.__init__(self, text)
            self.anchors = {}  # Composer.__init__'s one field (CParser's __init__ runs instead)
            self.budget = _Budget(text, file)


# Where libyaml and PyYAML read the same text differently (found by comparing both on
# thousands of mutated specs): libyaml accepts tabs in scalars, '?' inside a flow plain
# scalar, ',' in a tag and any character after a block scalar's '|' or '>', all of which
# PyYAML refuses; it reads a byte-order mark past the start as nothing, and marks an empty
# value in a flow collection one column later.  A text with any of these (or anything that
# looks like them) is left to PyYAML alone.
_LIBYAML_DIFFERS = re.compile(r"[\t?!\ufeff]|:(?:\s|#[^\n]*)*[,}\]]|[|>][-+0-9]*[^-+0-9\s]")


def _compose(text: str, file: str) -> Any:
    """The document's node tree, composed in one pass with the value and depth budget.

    libyaml parses when PyYAML has it (and the text has none of the constructs the two
    read differently).  On any problem, PyYAML's own parser reads the
    document again and reports it: its messages are the ones the bad-spec corpus fixes, and
    a document libyaml refuses but PyYAML accepts is still read.  The budget's refusals (too
    many values, too deep) stand from the first pass: they are at the same marks."""
    if _CSafeLoader is not None and not _LIBYAML_DIFFERS.search(text):
        try:
            return _compose_with(_CBoundedLoader, text, file)
        except SpecError:
            raise
        except Exception:  # noqa: BLE001 - a syntax error, a lone surrogate libyaml cannot
            pass  # encode...: PyYAML's parse below decides and reports
    return _compose_with(_BoundedLoader, text, file)


def _compose_with(loader_class: Any, text: str, file: str) -> Any:
    loader = loader_class(text, file)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node, file: str, text: str) -> None:
    """Refuse, before building anything, a document whose aliases multiply it past
    MAX_VALUES values (a "billion laughs"): sizes are computed once per distinct node, so
    this takes time proportional to the text, not to the expansion."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            total = 1 + sum(size[id(c)] for c in _children(node))
            size[key] = min(total, MAX_VALUES + 1)
            if size[key] > MAX_VALUES:
                raise SpecError(
                    f"the document expands through its aliases to more than {MAX_VALUES:,} "
                    "values (the limit for a spec)",
                    _at(file, text, node.start_mark),
                    hint="aliases (*name) may not multiply a document beyond the limit",
                )
            continue
        if key in size:
            continue
        if key in on_path:
            raise SpecError("an alias refers to a node that contains it (a recursive alias)",
                            _at(file, text, node.start_mark))
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)


class _Builder:
    def __init__(self, smap: SourceMap) -> None:
        self.smap = smap
        self.scalars = yaml.SafeLoader("")

    def loc(self, node: yaml.Node) -> Location:
        return _at(self.smap.file, self.smap.text, node.start_mark)

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        if node.tag not in _CORE_TAGS:
            shown = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise SpecError(
                f"YAML tag '{shown}' is not allowed",
                self.loc(node),
                hint="specs use plain YAML: mappings, lists, strings, numbers, booleans and null",
            )
        self.smap.values.setdefault(path, self.loc(node))
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for knode, vnode in node.value:
                if knode.tag == "tag:yaml.org,2002:merge":
                    raise SpecError("YAML merge keys (<<) are not supported", self.loc(knode))
                if not isinstance(knode, yaml.ScalarNode):
                    raise SpecError("mapping keys must be plain scalars", self.loc(knode))
                key = self.build_scalar(knode)
                if isinstance(key, float | bool) or key is None:
                    key = knode.value
                if key in out:
                    first = self.smap.keys.get(path + (key,))
                    raise SpecError(
                        f"duplicate key '{key}'",
                        self.loc(knode),
                        notes=[("first defined here", first)] if first else (),
                    )
                self.smap.keys[path + (key,)] = self.loc(knode)
                out[key] = self.build(vnode, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self.build_scalar(node)

    def build_scalar(self, node: yaml.Node) -> Any:
        if node.tag == "tag:yaml.org,2002:timestamp":
            return node.value
        try:
            return self.scalars.construct_object(node, deep=True)
        except yaml.YAMLError as e:
            raise SpecError(f"invalid YAML value: {e}", self.loc(node)) from None
        except ValueError as e:
            # int() of a literal past Python's digit limit (sys.get_int_max_str_digits)
            digits = sum(c.isdigit() for c in str(node.value))
            limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
            if limit and digits > limit:
                message = (f"the integer has {digits:,} digits; integers are limited to "
                           f"{limit:,} digits")
            else:  # pragma: no cover - the resolver's patterns make other values valid
                message = f"invalid number: {e}"
            raise SpecError(
                message, self.loc(node), hint="no setting needs a number that long"
            ) from None
