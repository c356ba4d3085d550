"""Keeping freed memory in the process while it trains, instead of handing it back each step.

A training step allocates the same large arrays every step (activations, their gradients,
each weight's gradient) and frees them before the next.  glibc's malloc gives memory at the
top of its heap back to the kernel once more than its trim threshold (by default twice the
largest block it has mapped, so 16 MiB after an 8 MiB one) is free there; the next step then
takes fresh pages, and the kernel faults and zeroes every one of them again.  On the big
benchmark model (784-1024x4-10, batch 256, float64, one thread) that was 6.7k-8.8k page faults
per step for graphspec's numpy step and 4.4k-7.2k for the hand-written one, which frees in
another order; with the thresholds raised both take none, and the steps took 196 and 194 ms
where they took 238 and 222 ms (``tools/bench/bench_numpy.py --arch big --dtype float64``, one
run each way, GRAPHSPEC_KEEP_FREED_MEMORY=0 for malloc's defaults; issue 17).

:func:`keep_freed_memory` raises the thresholds once, as torch's caching allocators do in
their own way: blocks up to :data:`MMAP_MAX` come from the heap, and up to :data:`TRIM_MAX`
of free heap stays mapped for the next step.  The process keeps at most the memory its peak
step already used.  It is a process-wide setting (there is no other kind), so everything in
the process gains from it, hand-written code included; it applies only under glibc, and the
environment variable ``GRAPHSPEC_KEEP_FREED_MEMORY=0`` leaves malloc's defaults alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

ENV = "GRAPHSPEC_KEEP_FREED_MEMORY"
# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks below this come from the heap (glibc's own ceiling for its dynamic threshold on
# 64-bit systems); larger ones are mapped and unmapped one by one, as before.
MMAP_MAX = 32 << 20
# Free memory at the heap's top beyond this goes back to the kernel.
TRIM_MAX = 1 << 30

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's thresholds (once per process); whether they are set.  A no-op that
    returns False off Linux, without glibc, or with ``GRAPHSPEC_KEEP_FREED_MEMORY=0``."""
    global _done
    if _done is None:
        _done = _set_thresholds()
    return _done


def _set_thresholds() -> bool:
    if os.environ.get(ENV, "1").strip() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (musl has no mallopt thresholds)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_MAX))
