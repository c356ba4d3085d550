"""Errors that read like a compiler's: ``file:line:col: error: message``, the line, a caret, a hint.

Every error a user can cause derives from :class:`GraphspecError`; the CLI prints these
without a traceback and exits 1.  Anything else escaping is a bug in graphspec.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Location:
    """A place in a source file; line and col are 1-based."""

    file: str
    line: int | None = None
    col: int | None = None
    # In a file brought in by ``include:`` (graphspec.spec.includes): the include entry that
    # named it, itself perhaps in an included file.  Diagnostics show this chain as notes.
    included_from: Location | None = None

    def include_chain(self) -> list[Location]:
        """The include entries that led to this location, innermost first."""
        out: list[Location] = []
        at = self.included_from
        while at is not None:
            out.append(at)
            at = at.included_from
        return out

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)


class GraphspecError(Exception):
    """Base of every error caused by user input (specs, data, flags, checkpoints)."""

    def __init__(
        self,
        message: str,
        location: Location | None = None,
        hint: str | None = None,
        notes: Iterable[tuple[str, Location | None]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint
        self.notes = list(notes)

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.message}"

    def render(self, source: str | None = None) -> str:
        """The full diagnostic: headline, quoted source line with caret, notes, hint."""
        return render_diagnostic(
            "error", self.message, self.location, self.notes, self.hint, source=source
        )


class SpecError(GraphspecError):
    """The spec is malformed: YAML, schema, references, shapes, cycles."""


class DataError(GraphspecError):
    """A data file or data source is missing, malformed or does not fit the inputs."""


class TrainingError(GraphspecError):
    """Training cannot go on (non-finite loss, incompatible checkpoint...)."""


class NonFiniteLoss(TrainingError):
    """A loss became NaN or Inf; ``epoch`` and ``step`` say when (``node``: where, if known)."""

    def __init__(self, message: str, epoch: int, step: int, node: str | None = None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.node = node


class InputError(GraphspecError):
    """Arrays given to a compiled program do not fit the spec's inputs (names, shapes, dtypes)."""


class CheckpointError(GraphspecError):
    """A checkpoint is missing, truncated, tampered with or does not fit the spec."""


class BackendError(GraphspecError):
    """A backend is unknown, unavailable, or cannot run an op."""


class UsageError(GraphspecError):
    """The command line is wrong (exit status 2)."""


def render_diagnostic(
    severity: str,
    message: str,
    location: Location | None,
    notes: Iterable[tuple[str, Location | None]] = (),
    hint: str | None = None,
    *,
    source: str | None = None,
) -> str:
    """``file:line:col: <severity>: message``, the quoted line with a caret, notes, hint.

    ``source`` is the text of the spec when it is not on disk (``gs.loads``): the file of
    ``location``, or the outermost file of its include chain (graphspec.spec.includes).
    """
    top = location.include_chain()[-1] if location and location.included_from else location

    def text_of(loc: Location | None) -> str | None:
        return source if loc and top and loc.file == top.file else None

    out = [f"{location}: {severity}: {message}" if location else f"{severity}: {message}"]
    out += _quote(location, text_of(location))
    shown: set[Location] = set()  # include entries already shown
    out += _included_from(location, text_of, shown)
    for text, loc in notes:
        out.append(f"{loc}: note: {text}" if loc else f"note: {text}")
        out += _quote(loc, text_of(loc))
        out += _included_from(loc, text_of, shown)
    if hint:
        out.append(f"hint: {hint}")
    return "\n".join(_printable(line) for line in out)


def _included_from(
    loc: Location | None, text_of: Callable[[Location], str | None], shown: set[Location]
) -> list[str]:
    """A note per include entry that brought ``loc``'s file in (as C compilers say "In file
    included from"), innermost first, each entry once per diagnostic."""
    out: list[str] = []
    if loc is None:
        return out
    inner = loc
    for entry in loc.include_chain():
        if entry in shown:
            break
        shown.add(entry)
        out.append(f"{entry}: note: {inner.file} is included here")
        out += _quote(entry, text_of(entry))
        inner = entry
    return out


def _printable(line: str) -> str:
    """Control characters from a spec or a data file shown as U+FFFD: quoted input must not
    drive the terminal (an escape sequence in a CSV cell would otherwise be obeyed)."""
    if line.isprintable():
        return line
    return "".join(c if c.isprintable() or c == "\t" else "\ufffd" for c in line)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a misspelt name, or None when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _quote(loc: Location | None, source: str | None) -> list[str]:
    if loc is None or loc.line is None:
        return []
    if source is None:
        try:
            path = Path(loc.file)
            if not path.is_file() or path.stat().st_size > 20_000_000:
                return []
            source = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
    # Lines as editors (and graphspec.spec.source.position) count them: not str.splitlines,
    # which also breaks at form feeds, U+0085, U+2028...
    lines = re.split(r"\r\n|\r|\n", source)
    if not 1 <= loc.line <= len(lines):
        return []
    text = lines[loc.line - 1].replace("\t", " ")
    if len(text) > 200:
        text = text[:200] + " ..."
    gutter = f"{loc.line:>5} | "
    out = [gutter + text]
    if loc.col is not None:
        out.append(" " * (len(gutter) - 2) + "| " + " " * max(loc.col - 1, 0) + "^")
    return out
