"""One thread or every core: the measurement behind ``--threads auto`` (graphspec.threads,
docs/training.md).

For ReLU MLPs of growing size (bench_backends.py's series), graphspec's numpy trainer and its
torch trainer (CPU) each run the same SGD steps with one thread and with every core
(``os.cpu_count()``: the machine's, whatever its load), the two interleaved repetition by
repetition in one process (common.py's method, wall clock: CPU time would count the
threads' spinning).  The figure per
model and backend is the ratio of median step times all cores / one thread next to the
model's FLOPs per training step (``backend_choice.step_flops``); below 1 the cores help.

The threshold printed at the end is the smallest measured size from which every larger model
gains from the cores on both backends (ratio below ``--gain``): a step at most the size
before it takes one thread.

    python tools/bench/bench_threads.py [--reps 7] [--steps 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backends import SERIES  # noqa: E402
from common import machine, paired, ratio, shown  # noqa: E402
from models import Arch, dataset, spec_text  # noqa: E402

import graphspec as gs  # noqa: E402
from graphspec.backend_choice import step_flops  # noqa: E402
from graphspec.threads import limited  # noqa: E402

BACKENDS = ("numpy", "torch")


def measure(arch: Arch, backend: str, reps: int, steps: int, dtype: str) -> dict[str, Any]:
    ir = gs.build(gs.loads(spec_text(arch), f"<bench-{arch.name}>"))
    params = gs.init_params(ir, seed=0)
    rows = 4 * arch.batch
    opts = {"device": "cpu"} if backend == "torch" else {}
    trainer = gs.compile(ir, backend, dtype=dtype, **opts).trainer(params, ir.spec.train, 0)
    trainer.set_data("train", dataset(arch, rows, 0))
    rng = np.random.default_rng(1)
    epoch = [0]
    all_cores = os.cpu_count() or 1

    def runner(threads: int) -> Any:
        def run(n: int) -> None:
            batches = [rng.choice(rows, arch.batch, replace=False) for _ in range(n)]
            with limited(threads, torch_too=backend == "torch"):
                trainer.train_epoch(batches, epoch[0])
            epoch[0] += 1

        return run

    with np.errstate(all="ignore"):
        times = paired({"all": runner(all_cores), "one": runner(1)}, reps, steps)
    return {
        "arch": arch.describe(),
        "backend": backend,
        "dtype": dtype,
        "cores": all_cores,
        "flops_per_step": step_flops(ir, arch.batch),
        "all_vs_one": ratio(times, "all", "one"),
    }


def threshold(results: list[dict[str, Any]], gain: float) -> int | None:
    """The largest size at or below which some backend did not gain from the cores (a
    step up to it takes one thread); None when even the smallest model gained."""
    worst: dict[int, float] = {}
    for r in results:
        f = r["flops_per_step"]
        worst[f] = max(worst.get(f, 0.0), r["all_vs_one"]["ratio"])
    below = [f for f, w in worst.items() if w >= gain]
    return max(below) if below else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument(
        "--gain",
        type=float,
        default=0.95,
        help="a ratio below this counts as a gain (default: 0.95)",
    )
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args()
    print(f"# {machine()}", flush=True)
    results = []
    for arch in SERIES:
        for backend in BACKENDS:
            r = measure(arch, backend, a.reps, a.steps, a.dtype)
            results.append(r)
            if a.json:
                print(json.dumps(r), flush=True)
                continue
            f = r["all_vs_one"]
            print(
                f"{r['arch']:32s} {backend:5s} {r['flops_per_step']:>14,d} FLOPs/step  "
                f"{r['cores']} threads / 1: {shown(f)}",
                flush=True,
            )
    print(f"# load average after: {os.getloadavg()}", flush=True)
    t = threshold(results, a.gain)
    print(
        f"# one thread up to {t:,d} FLOPs per step"
        if t is not None
        else "# every model gained from the cores",
        flush=True,
    )


if __name__ == "__main__":
    main()
