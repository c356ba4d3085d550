"""Execute generated source so that tracebacks show it (registered with linecache)."""

from __future__ import annotations

import hashlib
import linecache
import types


def load_module(source: str, name: str) -> types.ModuleType:
    """Compile ``source`` as a module named ``name`` whose lines tracebacks can show."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<graphspec:{name}:{digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)
    return module
