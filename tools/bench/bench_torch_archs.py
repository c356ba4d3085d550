"""The torch backend's training step against a hand-written nn.Module, for every benchmark
architecture, on the CPU or CUDA, eager or under ``torch.compile``.

The method is ``bench_torch.py``'s (the same MLP there is ``big`` here): both sides start
from the same parameters, keep the dataset on the device and slice batches there with index
tensors, accumulate the loss on the device and synchronise once per repetition; graphspec
runs ``TorchTrainer.train_epoch`` (its real API), the hand-written side the loop one writes
with ``nn.Linear``, ``F.cross_entropy`` and ``torch.optim.SGD``.  With ``--compile`` both
sides go through ``torch.compile`` (graphspec's ``compile=True`` option, and
``torch.compile(module)`` by hand); compilation happens in the warm-up, which is timed and
reported separately.

    python tools/bench/bench_torch_archs.py [--arch big] [--device cpu] [--compile] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import paired, ratio, shown  # noqa: E402
from models import ARCHS, LR, Arch, dataset, layer_names, spec_text  # noqa: E402

import graphspec as gs  # noqa: E402
from graphspec_torch.device import synchronize  # noqa: E402


class HandMLP(nn.Module):
    """What one would write by hand: nn.Linear layers (weight [out, in]) and ReLUs."""

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        sizes = arch.sizes
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def run_benchmark(
    arch_name: str = "big", device: str = "cpu", compile: bool = False, reps: int = 11,
    steps: int = 5, warmup: int = 2, dtype: str = "float32", rows: int = 4096, seed: int = 0,
    clock: str = "wall",
) -> dict[str, Any]:
    arch = ARCHS[arch_name]
    ir = gs.build(gs.loads(spec_text(arch), f"<bench-{arch.name}>"))
    params = gs.init_params(ir, seed=seed)
    prog = gs.compile(ir, "torch", dtype=dtype, device=device, compile=compile)
    dev, tdtype = prog.device, prog.dtype
    data = dataset(arch, rows, seed)
    trainer = prog.trainer(params, ir.spec.train, seed)
    trainer.set_data("train", data)

    hand = HandMLP(arch).to(device=dev, dtype=tdtype)
    linears = [m for m in hand.net if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for lin, name in zip(linears, layer_names(arch)):
            lin.weight.copy_(torch.as_tensor(params[f"{name}.weight"]).T)
            lin.bias.copy_(torch.as_tensor(params[f"{name}.bias"]))
    opt = torch.optim.SGD(hand.parameters(), lr=LR, momentum=0.0)
    model = torch.compile(hand) if compile else hand
    X = torch.as_tensor(data["x"], dtype=tdtype, device=dev)
    Y = torch.as_tensor(data["y"], dtype=tdtype if arch.binary else torch.int64, device=dev)
    loss_fn = F.binary_cross_entropy_with_logits if arch.binary else F.cross_entropy
    rng = np.random.default_rng(seed + 1)
    epoch = [0]

    def batches(n: int) -> list[np.ndarray]:
        return [rng.choice(rows, arch.batch, replace=False) for _ in range(n)]

    def graphspec(n: int) -> None:
        trainer.train_epoch(batches(n), epoch[0])  # ends with its one host sync
        epoch[0] += 1

    def handwritten(n: int) -> None:
        b = batches(n)
        idx = torch.from_numpy(np.concatenate(b)).to(dev, non_blocking=True).split(arch.batch)
        total = torch.zeros((), dtype=tdtype, device=dev)
        model.train()
        for ix in idx:
            xb, yb = X.index_select(0, ix), Y.index_select(0, ix)
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        float(total)  # the one host sync, as the trainer's

    # Warm-up compiles (torch.compile) and fills caches; timed, reported apart.
    t0 = time.perf_counter()
    graphspec(1)
    t1 = time.perf_counter()
    handwritten(1)
    t2 = time.perf_counter()
    if dev.type == "cuda":
        clock = "wall"  # the host's CPU time says nothing about the GPU's
    times = paired({"graphspec": graphspec, "hand": handwritten}, reps, steps, warmup,
                   sync=lambda: synchronize(dev), clock=clock)
    return {
        "arch": arch.name,
        "describe": arch.describe(),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "dtype": dtype,
        "compile": compile,
        "clock": clock,
        "first_step_s": {"graphspec": t1 - t0, "hand": t2 - t1},
        "steps_per_rep": steps,
        "vs_hand": ratio(times, "graphspec", "hand"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="big", choices=sorted(ARCHS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="cpu: the process's CPU time (with one thread; see common.py)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args()
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        r: dict[str, Any] = {"arch": a.arch, "device": a.device, "skipped": "no CUDA GPU"}
        print(json.dumps(r) if a.json else "skipped: no CUDA GPU")
        return
    r = run_benchmark(a.arch, a.device, a.compile, a.reps, a.steps, a.warmup, a.dtype,
                      clock=a.clock)
    if a.json:
        print(json.dumps(r))
        return
    f = r["vs_hand"]
    mode = "torch.compile" if r["compile"] else "eager"
    print(f"{r['describe']}, {r['dtype']}, {r['device_name']} ({r['threads']} threads), {mode}")
    print(f"  graphspec / hand-written nn.Module {shown(f)}; first step "
          f"{r['first_step_s']['graphspec']:.1f} s vs {r['first_step_s']['hand']:.1f} s")


if __name__ == "__main__":
    main()
