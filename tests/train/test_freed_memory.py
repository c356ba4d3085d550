"""graphspec.freed_memory: once a trainer exists, a step's freed arrays stay mapped for the
next step (no fresh page faults per step); GRAPHSPEC_KEEP_FREED_MEMORY=0 leaves malloc's
defaults alone.  malloc's thresholds are process-wide, so each case runs in its own
interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from paths import XOR

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="glibc's malloc thresholds: Linux with glibc only",
)

# Builds a trainer of the given backend (or none), then frees and reallocates six touched
# 8 MiB arrays five times, as a training step of a large model does; prints whether the
# thresholds were set and the minor page faults per round.
PROBE = """
import json, resource, sys
import numpy as np
import graphspec as gs
from graphspec.freed_memory import keep_freed_memory

backend = sys.argv[1]
if backend != "none":
    ir = gs.build(gs.loads(open(sys.argv[2]).read(), "xor.yaml"))
    prog = gs.compile(ir, backend)
    prog.trainer(gs.init_params(ir, seed=0), ir.spec.train, 0)

def churn():
    arrays = [np.ones(1 << 20) for _ in range(6)]
    del arrays

churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    churn()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
print(json.dumps({"set": keep_freed_memory(), "faults": faults}))
"""


def _probe(backend: str, keep: str | None) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "GRAPHSPEC_KEEP_FREED_MEMORY"}
    if keep is not None:
        env["GRAPHSPEC_KEEP_FREED_MEMORY"] = keep
    out = subprocess.run(
        [sys.executable, "-c", PROBE, backend, str(XOR)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_trainer_keeps_freed_memory_for_the_next_step(backend: str) -> None:
    kept = _probe(backend, None)
    # 48 MiB freed and taken again each round: without the thresholds that is ~3000 fresh
    # pages a round (measured), with them none.
    assert kept["set"] is True
    assert kept["faults"] < 100, kept


def test_malloc_defaults_hand_memory_back_and_the_opt_out_keeps_them() -> None:
    plain = _probe("none", None)  # no trainer: nothing has set the thresholds
    opted_out = _probe("numpy", "0")
    assert plain["set"] is True  # the probe's own call sets them at the end
    assert opted_out["set"] is False
    assert plain["faults"] > 1000, plain
    assert opted_out["faults"] > 1000, opted_out
