"""Test-session settings shared by every test module."""

from __future__ import annotations

import os
import sys

# The networks under test are small: one BLAS thread is fastest, and BLAS threads spinning
# for a core make numpy several times slower on a busy 2-core machine (the gallery's
# training tests ran 2.5x longer).  Must be set before numpy loads its BLAS.
if "numpy" not in sys.modules:
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


MAX_WORKERS = 8  # each worker imports torch (~0.4 GiB); many tests start subprocesses too


def pytest_xdist_auto_num_workers(config):  # type: ignore[no-untyped-def]
    """``-n auto``: the cores this process may run on (its CPU affinity, not the machine's
    count, which a container may not give it), at most MAX_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """Tests marked ``slow`` are opt-in: they run only when ``-m`` selects them."""
    import pytest

    if config.getoption("-m"):
        return
    skip = pytest.mark.skip(reason="slow: opt in with `pytest -m slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
