"""An LSTM training step: graphspec's numpy and torch backends against a hand-written
``nn.LSTM`` module, in one process (issue 13's figures).

The model: ``lstm`` (``returns: last``) over ``[batch, time, features]``, a ``linear`` head
to one output, ``mse``, plain SGD; by default batch 64, T = 50, 128 units, 32 features. All
three contenders start from the same parameters and run the same batches: graphspec's
trainers' ``train_epoch`` (batch gather, generated forward and backward, optimizer) on the
numpy and the torch backend, and by hand ``nn.LSTM(batch_first=True)`` + ``nn.Linear`` +
``F.mse_loss`` + ``torch.optim.SGD`` in eager mode on the same device. The method is
``common.paired``'s (contenders alternating, ratios of median step times). Run it with one
thread (``--threads 1`` of run.py, or ``OMP_NUM_THREADS=1``) for figures that a busy machine
disturbs least.

    python tools/bench/bench_recurrent.py [--batch 64] [--time 50] [--units 128] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import paired, ratio, shown  # noqa: E402

import graphspec as gs  # noqa: E402
from graphspec_torch.device import synchronize  # noqa: E402

LR = 0.01


def spec_text(batch: int, time: int, features: int, units: int) -> str:
    return (
        "\n".join(
            [
                "graphspec: 1",
                "name: bench-lstm",
                "seed: 0",
                "inputs:",
                f"  x: [batch, {time}, {features}]",
                "  y: [batch, 1]",
                "graph:",
                f"  - {{id: lstm, op: lstm, in: x, units: {units}, returns: last}}",
                "  - {id: head, op: linear, units: 1}",
                "outputs: [head]",
                "loss:",
                "  - {op: mse, in: [head, y]}",
                "train:",
                "  data: {source: blobs}",
                f"  optimizer: {{name: sgd, lr: {LR}, momentum: 0.0}}",
                f"  batch_size: {batch}",
            ]
        )
        + "\n"
    )


class HandLSTM(nn.Module):
    """What one would write by hand: nn.LSTM and a linear head on the last state."""

    def __init__(self, features: int, units: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, units, batch_first=True)
        self.head = nn.Linear(units, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x)
        return self.head(h[0])


def run_benchmark(
    batch: int = 64,
    time: int = 50,
    features: int = 32,
    units: int = 128,
    reps: int = 11,
    steps: int = 3,
    warmup: int = 2,
    dtype: str = "float32",
    rows: int = 1024,
    seed: int = 0,
    clock: str = "wall",
) -> dict[str, Any]:
    ir = gs.build(gs.loads(spec_text(batch, time, features, units), "<bench-lstm>"))
    params = gs.init_params(ir, seed=seed)
    rng = np.random.default_rng(seed)
    data = {"x": rng.normal(size=(rows, time, features)), "y": rng.normal(size=(rows, 1))}
    trainers = {}
    for backend in ("numpy", "torch"):
        prog = (
            gs.compile(ir, backend, dtype=dtype, device="cpu")
            if backend == "torch"
            else (gs.compile(ir, backend, dtype=dtype))
        )
        trainers[backend] = prog.trainer(dict(params), ir.spec.train, seed)
        trainers[backend].set_data("train", data)

    tdtype = getattr(torch, dtype)
    hand = HandLSTM(features, units).to(dtype=tdtype)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(hand.lstm, f"{name}_l0").copy_(torch.as_tensor(params[f"lstm.{name}"]))
        hand.head.weight.copy_(torch.as_tensor(params["head.weight"]).T)
        hand.head.bias.copy_(torch.as_tensor(params["head.bias"]))
    opt = torch.optim.SGD(hand.parameters(), lr=LR, momentum=0.0)
    X = torch.as_tensor(data["x"], dtype=tdtype)
    Y = torch.as_tensor(data["y"], dtype=tdtype)
    order = np.random.default_rng(seed + 1)
    epoch = [0]

    def batches(n: int) -> list[np.ndarray]:
        return [order.choice(rows, batch, replace=False) for _ in range(n)]

    def backend(name: str) -> Any:
        def run(n: int) -> None:
            trainers[name].train_epoch(batches(n), epoch[0])
            epoch[0] += 1

        return run

    def handwritten(n: int) -> None:
        total = torch.zeros((), dtype=tdtype)
        for b in batches(n):
            ix = torch.from_numpy(b)
            loss = F.mse_loss(hand(X.index_select(0, ix)), Y.index_select(0, ix))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        float(total)

    times = paired(
        {"numpy": backend("numpy"), "torch": backend("torch"), "hand": handwritten},
        reps,
        steps,
        warmup,
        sync=lambda: synchronize(torch.device("cpu")),
        clock=clock,
    )
    return {
        "describe": f"lstm batch {batch}, T {time}, {features} features, {units} units",
        "threads": torch.get_num_threads(),
        "dtype": dtype,
        "clock": clock,
        "steps_per_rep": steps,
        "numpy_vs_torch_eager": ratio(times, "numpy", "hand"),
        "torch_vs_hand": ratio(times, "torch", "hand"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--time", type=int, default=50)
    ap.add_argument("--features", type=int, default=32)
    ap.add_argument("--units", type=int, default=128)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="cpu: the process's CPU time (with one thread; see common.py)",
    )
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args()
    r = run_benchmark(
        a.batch, a.time, a.features, a.units, a.reps, a.steps, a.warmup, a.dtype, clock=a.clock
    )
    if a.json:
        print(json.dumps(r))
        return
    print(f"{r['describe']}, {r['dtype']}, CPU ({r['threads']} threads), {r['clock']} clock")
    for key, what in (
        ("numpy_vs_torch_eager", "numpy backend / hand-written nn.LSTM"),
        ("torch_vs_hand", "torch backend / hand-written nn.LSTM"),
    ):
        f = r[key]
        print(f"  {what}: {shown(f, ms_digits=2)}")


if __name__ == "__main__":
    main()
