"""Pausing Python's cyclic garbage collector while a large structure is built."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Building an IR or generating a module allocates a few dozen long-lived objects per
    node and frees no cycles; the cyclic collector's full passes over that growing heap made
    both superlinear (1e5 nodes: 40% of the build, most of the code generator's growth).
    Collection resumes afterwards, as it was."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
