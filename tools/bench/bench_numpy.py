"""The numpy backend's training step against hand-written NumPy, in one process.

Three contenders run the same SGD steps on the same batches: graphspec (``NumpyTrainer
.train_epoch``, the real API: batch gather, generated ``loss_and_grads``, the numpy
optimizer), the hand-written MLP of ``models.py`` (batch gather, forward, backward, update)
and the matrix products alone (the lower bound).

``memory(...)`` measures the peak memory a training step allocates (tracemalloc sees NumPy's
buffers) relative to the activations the backward pass must keep: the input of every linear
layer and the logits, which is also what the hand-written step keeps.

    python tools/bench/bench_numpy.py [--arch big] [--dtype float32] [--reps 15] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import paired, ratio, shown  # noqa: E402
from models import ARCHS, Arch, HandNumpyMLP, MatmulBound, dataset, spec_text  # noqa: E402

import graphspec as gs  # noqa: E402


def setup(arch: Arch, dtype: str, rows: int, seed: int = 0) -> dict[str, Any]:
    ir = gs.build(gs.loads(spec_text(arch), f"<bench-{arch.name}>"))
    params = gs.init_params(ir, seed=seed)
    prog = gs.compile(ir, "numpy", dtype=dtype)
    data = dataset(arch, rows, seed)
    trainer = prog.trainer(params, ir.spec.train, seed)
    trainer.set_data("train", data)
    X = data["x"].astype(dtype)
    Y = data["y"].astype(dtype) if arch.binary else data["y"]
    return {"ir": ir, "params": params, "prog": prog, "trainer": trainer, "X": X, "Y": Y}


def run_benchmark(
    arch_name: str = "big", dtype: str = "float32", reps: int = 15, steps: int = 3,
    warmup: int = 2, rows: int = 4096, seed: int = 0, clock: str = "wall",
) -> dict[str, Any]:
    arch = ARCHS[arch_name]
    s = setup(arch, dtype, rows, seed)
    trainer, X, Y = s["trainer"], s["X"], s["Y"]
    hand = HandNumpyMLP(arch, s["params"], dtype)
    bound = MatmulBound(arch, s["params"], dtype)
    rng = np.random.default_rng(seed + 1)
    epoch = [0]

    def batches(n: int) -> list[np.ndarray]:
        return [rng.choice(rows, arch.batch, replace=False) for _ in range(n)]

    def graphspec(n: int) -> None:
        b = batches(n)
        trainer.train_epoch(b, epoch[0])
        epoch[0] += 1

    def handwritten(n: int) -> None:
        for idx in batches(n):
            hand.step(X[idx], Y[idx])

    xb, yb = X[: arch.batch], Y[: arch.batch]

    def matmuls(n: int) -> None:
        for _ in range(n):
            bound.step(xb, yb)

    with np.errstate(all="ignore"):
        times = paired({"graphspec": graphspec, "hand": handwritten, "matmul": matmuls},
                       reps, steps, warmup, clock=clock)
    return {
        "arch": arch.name,
        "describe": arch.describe(),
        "dtype": dtype,
        "clock": clock,
        "threads": _blas_threads(),
        "steps_per_rep": steps,
        "vs_hand": ratio(times, "graphspec", "hand"),
        "vs_matmul": ratio(times, "graphspec", "matmul"),
        "hand_vs_matmul": ratio(times, "hand", "matmul"),
    }


def _blas_threads() -> str:
    return os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "default"


def _peak(fn: Any) -> int:
    """Bytes allocated at the peak of ``fn()`` above what was allocated before it."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def memory(arch_name: str = "big", dtype: str = "float32", seed: int = 0) -> dict[str, Any]:
    arch = ARCHS[arch_name]
    s = setup(arch, dtype, arch.batch * 2, seed)
    trainer, X, Y = s["trainer"], s["X"], s["Y"]
    hand = HandNumpyMLP(arch, s["params"], dtype)
    idx = np.arange(arch.batch)
    item = np.dtype(dtype).itemsize
    # The backward pass needs each linear layer's input (x and every hidden activation) and
    # the cotangent of the logits; parameters' gradients are an extra copy of the parameters.
    keep = arch.batch * (sum(arch.sizes[:-1]) + arch.sizes[-1]) * item
    grads = sum(a * b + b for a, b in zip(arch.sizes, arch.sizes[1:])) * item
    with np.errstate(all="ignore"):
        trainer.train_epoch([idx], 0)  # warm: optimizer state, caches
        hand.step(X[idx], Y[idx])
        g_peak = _peak(lambda: trainer.train_epoch([idx], 1))
        h_peak = _peak(lambda: hand.step(X[idx], Y[idx]))
    return {
        "arch": arch.name,
        "describe": arch.describe(),
        "dtype": dtype,
        "activations_bytes": keep,
        "param_grad_bytes": grads,
        "graphspec_peak_bytes": g_peak,
        "hand_peak_bytes": h_peak,
        "graphspec_vs_activations": g_peak / keep,
        "hand_vs_activations": h_peak / keep,
        "graphspec_vs_hand": g_peak / h_peak,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="big", choices=sorted(ARCHS))
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--memory", action="store_true", help="measure peak memory instead")
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="cpu: the process's CPU time (with one thread; see common.py)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args()
    if a.memory:
        r = memory(a.arch, a.dtype)
    else:
        r = run_benchmark(a.arch, a.dtype, a.reps, a.steps, a.warmup, clock=a.clock)
    if a.json:
        print(json.dumps(r))
        return
    if a.memory:
        print(f"{r['describe']} {r['dtype']}: activations {r['activations_bytes'] / 2**20:.2f} MiB;"
              f" peak graphspec {r['graphspec_vs_activations']:.2f}x,"
              f" hand-written {r['hand_vs_activations']:.2f}x")
        return
    print(f"{r['describe']}, {r['dtype']}")
    for key, label in [("vs_hand", "graphspec / hand-written"),
                       ("vs_matmul", "graphspec / matmul bound"),
                       ("hand_vs_matmul", "hand-written / matmul bound")]:
        f = r[key]
        print(f"  {label:28s} {shown(f, gap='  ')}")


if __name__ == "__main__":
    main()
