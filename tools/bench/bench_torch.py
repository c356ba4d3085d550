"""The torch backend's training step against a hand-written nn.Module, in one process.

The model is a 784-1024x4-10 ReLU MLP with softmax cross-entropy, SGD with momentum, batch
256.  Both sides start from the same parameters, keep the dataset on the device and slice
batches there with index tensors, accumulate the loss on the device and synchronise once per
repetition (the graphspec side is ``TorchTrainer.train_epoch``, its real API).  Repetitions
alternate between the two sides so drift on a busy machine hits both alike; the figure is the
median time per step and the ratio of medians, with the spread of per-pair ratios.

    python tools/bench/bench_torch.py [--device auto] [--reps 11] [--steps 5] [--threads N]

``run_benchmark(...)`` returns the figures as a dict (for tools/bench/run.py).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import graphspec as gs
from graphspec_torch.device import synchronize

WIDTH, DEPTH, IN, OUT, BATCH = 1024, 4, 784, 10, 256
LR, MOMENTUM = 0.01, 0.9


def spec_text(width: int = WIDTH, depth: int = DEPTH) -> str:
    layers = []
    prev = "x"
    for i in range(depth):
        layers.append(f"  - {{id: fc{i}, op: linear, in: {prev}, units: {width}}}")
        layers.append(f"  - {{id: act{i}, op: relu}}")
        prev = f"act{i}"
    return "\n".join([
        "graphspec: 1",
        "name: bench-mlp",
        "seed: 0",
        "inputs:",
        f"  x: [batch, {IN}]",
        "  y: {shape: [batch], dtype: int}",
        "graph:",
        *layers,
        f"  - {{id: logits, op: linear, units: {OUT}}}",
        "outputs: [logits]",
        "loss:",
        "  - {op: cross_entropy, in: [logits, y]}",
        "train:",
        "  data: {source: blobs}",
        f"  optimizer: {{name: sgd, lr: {LR}, momentum: {MOMENTUM}}}",
        f"  batch_size: {BATCH}",
    ]) + "\n"


class HandMLP(nn.Module):
    """What one would write by hand: nn.Linear layers (weight [out, in]) and ReLUs."""

    def __init__(self, width: int = WIDTH, depth: int = DEPTH) -> None:
        super().__init__()
        sizes = [IN] + [width] * depth
        layers: list[nn.Module] = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(width, OUT))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def run_benchmark(
    device: str = "auto", reps: int = 11, steps: int = 5, warmup: int = 2,
    dtype: str = "float32", rows: int = 4096, seed: int = 0, threads: int | None = None,
    clock: str = "wall",
) -> dict[str, Any]:
    """Figures of one run; ``clock="process"`` counts this process's CPU time instead of wall
    time (steadier on a busy CPU machine; meaningless for GPU work)."""
    now = time.process_time if clock == "process" else time.perf_counter
    if threads:
        torch.set_num_threads(threads)
    ir = gs.build(gs.loads(spec_text(), "<bench-mlp>"))
    params = gs.init_params(ir, seed=seed)
    prog = gs.compile(ir, "torch", dtype=dtype, device=device)
    dev, tdtype = prog.device, prog.dtype
    rng = np.random.default_rng(seed)
    data = {"x": rng.normal(size=(rows, IN)).astype(np.float32),
            "y": rng.integers(0, OUT, size=rows)}

    trainer = prog.trainer(params, ir.spec.train, seed)
    trainer.set_data("train", data)

    hand = HandMLP().to(device=dev, dtype=tdtype)
    linears = [m for m in hand.net if isinstance(m, nn.Linear)]
    names = [f"fc{i}" for i in range(DEPTH)] + ["logits"]
    with torch.no_grad():
        for lin, name in zip(linears, names):
            lin.weight.copy_(torch.as_tensor(params[f"{name}.weight"]).T)
            lin.bias.copy_(torch.as_tensor(params[f"{name}.bias"]))
    opt = torch.optim.SGD(hand.parameters(), lr=LR, momentum=MOMENTUM)
    X = torch.as_tensor(data["x"], dtype=tdtype, device=dev)
    Y = torch.as_tensor(data["y"], dtype=torch.int64, device=dev)

    def batches() -> list[np.ndarray]:
        return [np.sort(rng.choice(rows, BATCH, replace=False)) for _ in range(steps)]

    def graphspec_rep(epoch: int) -> float:
        b = batches()
        synchronize(dev)
        t0 = now()
        trainer.train_epoch(b, epoch)  # ends with its one host sync
        return (now() - t0) / steps

    def hand_rep() -> float:
        b = batches()
        synchronize(dev)
        t0 = now()
        idx = torch.from_numpy(np.concatenate(b)).to(dev, non_blocking=True).split(BATCH)
        total = torch.zeros((), dtype=tdtype, device=dev)
        hand.train()
        for ix in idx:
            xb, yb = X.index_select(0, ix), Y.index_select(0, ix)
            loss = F.cross_entropy(hand(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        float(total)  # the one host sync, as the trainer's
        return (now() - t0) / steps

    for w in range(warmup):
        graphspec_rep(w)
        hand_rep()
    g_times, h_times = [], []
    for r in range(reps):
        if r % 2:  # alternate the order within a pair, too
            h_times.append(hand_rep())
            g_times.append(graphspec_rep(warmup + r))
        else:
            g_times.append(graphspec_rep(warmup + r))
            h_times.append(hand_rep())
    ratios = sorted(g / h for g, h in zip(g_times, h_times))
    g_med, h_med = statistics.median(g_times), statistics.median(h_times)
    q = max(len(ratios) // 4, 0)
    return {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "clock": clock,
        "dtype": dtype,
        "batch": BATCH,
        "steps_per_rep": steps,
        "reps": reps,
        "graphspec_ms": g_med * 1e3,
        "hand_ms": h_med * 1e3,
        "ratio": g_med / h_med,
        "ratio_median_of_pairs": statistics.median(ratios),
        "ratio_iqr": (ratios[q], ratios[-1 - q]),
        "ratio_min_max": (ratios[0], ratios[-1]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--clock", choices=["wall", "process"], default="wall",
                    help="process: CPU time of this process (steadier on a loaded machine)")
    a = ap.parse_args()
    r = run_benchmark(a.device, a.reps, a.steps, a.warmup, a.dtype, threads=a.threads,
                      clock=a.clock)
    print(f"784-1024x4-10 relu MLP, batch {r['batch']}, {r['dtype']}, on {r['device_name']} "
          f"({r['threads']} threads), {r['reps']} reps x {r['steps_per_rep']} steps, "
          f"{r['clock']} clock")
    print(f"  graphspec torch backend: {r['graphspec_ms']:.3f} ms/step (median)")
    print(f"  hand-written nn.Module:  {r['hand_ms']:.3f} ms/step (median)")
    lo, hi = r["ratio_iqr"]
    print(f"  ratio {r['ratio']:.3f} (median of pairs {r['ratio_median_of_pairs']:.3f}, "
          f"IQR {lo:.3f}-{hi:.3f}, range {r['ratio_min_max'][0]:.3f}-{r['ratio_min_max'][1]:.3f})")


if __name__ == "__main__":
    main()
