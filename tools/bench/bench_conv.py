"""The numpy backend's conv2d training step against torch eager on the CPU, and against its
GEMM bound, in one process.

Two models, both ``conv2d(3x3, same) -> relu -> max_pool2d(2)`` twice, then ``flatten ->
linear`` to 10 classes, softmax cross-entropy, plain SGD:

- ``digits``: the ``cnn_digits`` gallery model, ``[32, 1, 8, 8]``, 12 and 24 channels;
- ``large``: ``[64, 3, 32, 32]``, 32 and 64 channels.

Three contenders run one step each (forward, backward, SGD update) in alternating
repetitions (tools/bench/common.py): graphspec (``NumpyTrainer.train_epoch``, the real API),
a hand-written ``torch.nn.Module`` step in eager mode (``zero_grad``, forward, ``backward``,
``SGD.step``) with as many threads as NumPy's BLAS, and the GEMM bound: the matrix products
of an im2col convolution alone (forward, weight gradient, input gradient but the first
layer's; the linear layer's three) into preallocated buffers, what no im2col step can go under.

    OMP_NUM_THREADS=1 python tools/bench/bench_conv.py [--model digits] [--reps 15] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import paired, ratio, shown  # noqa: E402

import graphspec as gs  # noqa: E402

LR = 0.01
CLASSES = 10


@dataclass(frozen=True)
class ConvModel:
    name: str
    batch: int
    channels_in: int
    size: int  # height = width
    channels: tuple[int, int]

    def describe(self) -> str:
        c1, c2 = self.channels
        return (
            f"[{self.batch}, {self.channels_in}, {self.size}, {self.size}] "
            f"conv {c1}, conv {c2} (3x3), linear {CLASSES}"
        )

    @property
    def flat(self) -> int:
        return self.channels[1] * (self.size // 4) ** 2


MODELS = {
    "digits": ConvModel("digits", 32, 1, 8, (12, 24)),
    "large": ConvModel("large", 64, 3, 32, (32, 64)),
}


def spec_text(m: ConvModel) -> str:
    c1, c2 = m.channels
    return f"""graphspec: 1
name: bench-conv-{m.name}
seed: 0
inputs:
  x: {{shape: [batch, {m.channels_in}, {m.size}, {m.size}], differentiable: false}}
  y: {{shape: [batch], dtype: int}}
graph:
  - {{id: conv1, op: conv2d, in: x, channels: {c1}, kernel: 3, padding: same}}
  - {{id: relu1, op: relu}}
  - {{id: pool1, op: max_pool2d, kernel: 2}}
  - {{id: conv2, op: conv2d, channels: {c2}, kernel: 3, padding: same}}
  - {{id: relu2, op: relu}}
  - {{id: pool2, op: max_pool2d, kernel: 2}}
  - {{id: flat, op: flatten}}
  - {{id: logits, op: linear, units: {CLASSES}}}
outputs: [logits]
loss:
  - {{op: cross_entropy, in: [logits, y]}}
train:
  data: {{source: blobs}}
  optimizer: {{name: sgd, lr: {LR}}}
  batch_size: {m.batch}
"""


def torch_model(m: ConvModel) -> Any:
    import torch  # deferred: only the torch contender needs it
    from torch import nn

    c1, c2 = m.channels
    return nn.Sequential(
        nn.Conv2d(m.channels_in, c1, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(m.flat, CLASSES),
    ).to(torch.float32)


class GemmBound:
    """The matrix products of one im2col training step, into preallocated buffers."""

    def __init__(self, m: ConvModel, rng: np.random.Generator) -> None:
        c1, c2 = m.channels
        n, s = m.batch, m.size
        f32 = np.float32
        # (positions, in * 3 * 3, out, input gradient wanted) per layer; linear: one position
        # per row.
        shapes = [
            (n * s * s, m.channels_in * 9, c1, False),
            (n * (s // 2) ** 2, c1 * 9, c2, True),
            (n, m.flat, CLASSES, True),
        ]
        self.layers = []
        for p, k, o, grad_in in shapes:
            cols = rng.standard_normal((p, k)).astype(f32)
            w = rng.standard_normal((k, o)).astype(f32)
            g = rng.standard_normal((p, o)).astype(f32)
            self.layers.append(
                (
                    cols,
                    w,
                    g,
                    np.empty((p, o), f32),
                    np.empty((k, o), f32),
                    np.empty((p, k), f32) if grad_in else None,
                )
            )

    def step(self) -> None:
        for cols, w, g, y, gw, gx in self.layers:
            np.matmul(cols, w, out=y)
            np.matmul(cols.T, g, out=gw)
            if gx is not None:
                np.matmul(g, w.T, out=gx)


def run_benchmark(
    model: str = "digits",
    reps: int = 15,
    steps: int = 5,
    warmup: int = 2,
    clock: str = "wall",
    seed: int = 0,
) -> dict[str, Any]:
    import torch  # deferred: only the torch contender needs it

    m = MODELS[model]
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    rows = m.batch * 8
    x = rng.random((rows, m.channels_in, m.size, m.size)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=rows)

    ir = gs.build(gs.loads(spec_text(m), f"<bench-conv-{m.name}>"))
    prog = gs.compile(ir, "numpy", dtype="float32")
    trainer = prog.trainer(gs.init_params(ir, seed=seed), ir.spec.train, seed)
    trainer.set_data("train", {"x": x, "y": y})

    net = torch_model(m)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    bound = GemmBound(m, rng)
    epoch = [0]

    def batches(n: int) -> list[np.ndarray]:
        return [rng.choice(rows, m.batch, replace=False) for _ in range(n)]

    def graphspec(n: int) -> None:
        trainer.train_epoch(batches(n), epoch[0])
        epoch[0] += 1

    def torch_eager(n: int) -> None:
        for idx in batches(n):
            i = torch.from_numpy(idx)
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(tx[i]), ty[i])
            loss.backward()
            opt.step()

    def gemms(n: int) -> None:
        for _ in range(n):
            bound.step()

    times = paired(
        {"graphspec": graphspec, "torch": torch_eager, "gemm": gemms},
        reps,
        steps,
        warmup,
        clock=clock,
    )
    return {
        "model": m.name,
        "describe": m.describe(),
        "threads": threads,
        "clock": clock,
        "vs_torch": ratio(times, "graphspec", "torch"),
        "vs_gemm": ratio(times, "graphspec", "gemm"),
        "torch_vs_gemm": ratio(times, "torch", "gemm"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="digits", choices=sorted(MODELS))
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="cpu: the process's CPU time (with one thread; see common.py)",
    )
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args()
    r = run_benchmark(a.model, a.reps, a.steps, a.warmup, a.clock)
    if a.json:
        print(json.dumps(r))
        return
    print(f"{r['describe']}, float32, {r['threads']} thread(s), {r['clock']} clock")
    for key, label in [
        ("vs_torch", "graphspec / torch eager"),
        ("vs_gemm", "graphspec / GEMM bound"),
        ("torch_vs_gemm", "torch eager / GEMM bound"),
    ]:
        f = r[key]
        print(f"  {label:26s} {shown(f, gap='  ')}")


if __name__ == "__main__":
    main()
