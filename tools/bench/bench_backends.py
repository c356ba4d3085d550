"""Where the numpy backend stops beating eager torch on the CPU: the measurement behind
``--backend auto`` (graphspec.backend_choice, docs/training.md).

For ReLU MLPs of growing size, graphspec's numpy trainer and its torch trainer (CPU, eager)
run the same SGD steps, interleaved repetition by repetition in one process (common.py's
method), each with one thread; the figure per model is the ratio of median step times
numpy / torch next to the model's FLOPs per training step (``backend_choice.step_flops``).
Below 1 numpy is faster.

    python tools/bench/bench_backends.py [--reps 11] [--steps 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import paired, ratio, shown  # noqa: E402
from models import ARCHS, Arch, dataset, spec_text  # noqa: E402

import graphspec as gs  # noqa: E402
from graphspec.backend_choice import step_flops  # noqa: E402

# From a few thousand FLOPs per step to the big benchmark model's ~6e9.
SERIES = [
    Arch("w16", (2, 16, 16, 1), 64),
    Arch("w64", (16, 64, 64, 2), 64),
    Arch("w128", (32, 128, 128, 10), 64),
    Arch("w256", (64, 256, 256, 10), 128),
    Arch("w512", (128, 512, 512, 10), 128),
    Arch("w1024", (256, 1024, 1024, 10), 128),
    Arch("w1024b", (784, 1024, 1024, 1024, 10), 256),
    ARCHS["deep"],
]


def measure(arch: Arch, reps: int, steps: int, dtype: str = "float32") -> dict[str, Any]:
    ir = gs.build(gs.loads(spec_text(arch), f"<bench-{arch.name}>"))
    params = gs.init_params(ir, seed=0)
    rows = 4 * arch.batch
    data = dataset(arch, rows, 0)
    trainers = {}
    for name, opts in (("numpy", {}), ("torch", {"device": "cpu"})):
        t = gs.compile(ir, name, dtype=dtype, **opts).trainer(params, ir.spec.train, 0)
        t.set_data("train", data)
        trainers[name] = t
    rng = np.random.default_rng(1)
    epochs = {"numpy": 0, "torch": 0}

    def runner(name: str) -> Any:
        def run(n: int) -> None:
            batches = [rng.choice(rows, arch.batch, replace=False) for _ in range(n)]
            trainers[name].train_epoch(batches, epochs[name])
            epochs[name] += 1

        return run

    with np.errstate(all="ignore"):
        times = paired({k: runner(k) for k in trainers}, reps, steps, clock="cpu")
    return {
        "arch": arch.describe(),
        "dtype": dtype,
        "flops_per_step": step_flops(ir, arch.batch),
        "numpy_vs_torch": ratio(times, "numpy", "torch"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args()
    torch.set_num_threads(1)  # one thread each: the clock is the process's CPU time
    for arch in SERIES:
        r = measure(arch, a.reps, a.steps, a.dtype)
        if a.json:
            print(json.dumps(r), flush=True)
            continue
        f = r["numpy_vs_torch"]
        print(
            f"{r['arch']:32s} {r['flops_per_step']:>14,d} FLOPs/step  numpy/torch {shown(f)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
