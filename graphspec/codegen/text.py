"""Generated source: the one way user text enters it, and executing it.

Every string that reaches a generated module (spec file names, ids, names, docs, attribute
values, metric names) is hostile: a quote, a newline or a ``\\r`` in a file name would end a
docstring or a ``#`` comment and run what follows.  So nothing is pasted into generated code
as it is: values become literals through :func:`literal`, text in comments through
:func:`comment`, text in docstrings through :func:`docstring`.  All three write printable
ASCII only and escape everything else (``\\n``, ``\\r``, U+2028, NUL, lone surrogates, ...),
so no character can end the construct it sits in, and what user text adds to a module is
plain ASCII whatever the file system's or the terminal's encoding.
"""

from __future__ import annotations

import hashlib
import linecache
import math
import types
from typing import Any


def literal(value: Any) -> str:
    """Python source that evaluates to ``value``: a str, number, bool or None, or tuples,
    lists and dicts of them (a pydantic model as its fields).  Non-finite floats become
    ``float('inf')``, ``float('-inf')``, ``float('nan')`` (``repr`` would write a bare ``inf``,
    a NameError in the generated module)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, str):
        return "'" + _escape(value, keep_newlines=False) + "'"
    if isinstance(value, float):
        if math.isnan(value):
            return "float('nan')"
        if math.isinf(value):
            return "float('inf')" if value > 0 else "float('-inf')"
        return repr(float(value))
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, tuple):
        return "(" + ", ".join(literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if hasattr(value, "model_dump"):
        return literal(value.model_dump())
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # a numpy scalar
        return literal(value.item())
    raise TypeError(f"no Python literal for a value of type {type(value).__name__}")


def comment(text: object) -> str:
    """``text`` made safe to follow ``#``: one line of printable ASCII (line breaks and every
    other character outside it written as escapes)."""
    return _escape(str(text), keep_newlines=False, quote="")


def docstring(text: str, indent: str = "") -> str:
    """A triple-quoted literal whose value is ``text``: its newlines stay line breaks
    (continuation lines indented by ``indent``), quotes and backslashes are escaped, and
    every other character outside printable ASCII is written as an escape."""
    body = _escape(text, keep_newlines=True, quote='"')
    return '"""' + body.replace("\n", "\n" + indent) + '"""'


def _escape(text: str, *, keep_newlines: bool, quote: str = "'") -> str:
    if text.isascii() and text.isprintable() and "\\" not in text and not (quote and quote in text):
        return text  # nothing to escape: the common case, without a loop per character
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n" and keep_newlines:
            out.append("\n")
        elif quote and ch == quote:
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            code = ord(ch)
            if code < 0x100:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    return "".join(out)


def load_module(source: str, name: str) -> types.ModuleType:
    """Compile ``source`` as a module named ``name`` whose lines tracebacks can show."""
    digest = hashlib.sha1(source.encode("utf-8", "backslashreplace")).hexdigest()[:12]
    filename = f"<graphspec:{comment(name)}:{digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)
    return module
