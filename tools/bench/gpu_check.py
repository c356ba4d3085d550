"""The GPU figures of issue 17 item 5, for someone with a CUDA GPU: ``--capture cuda_graph``
against eager steps and a hand-written ``nn.Module``, and ``--amp`` speed and accuracy.

1. Speed: for the small, deep and big benchmark MLPs (tools/bench/models.py, float32, SGD),
   the time per training step of a hand-written eager ``nn.Module`` (nn.Linear + ReLU,
   torch.optim.SGD, batches sliced on the device), graphspec's eager torch trainer, the same
   with the whole step captured as a CUDA graph, and with bf16 autocast (eager and
   captured), interleaved repetition by repetition in one process (common.py's method;
   CUDA synchronised around each repetition).  Figures: median ms per step and the ratio to
   the hand-written module (below 1: graphspec is faster).
2. Accuracy: specs/cnn_digits.yaml's CNN (schedule constant: a captured step keeps its lr)
   trained with amp none, bf16 and fp16, each eager and (but fp16, whose loss scaling cannot
   be captured) captured: validation accuracy, final training loss, seconds per epoch.

Both tables are printed as Markdown, ready for BENCHMARKS.md, and written to ``--out``.

    python tools/bench/gpu_check.py [--reps 11] [--steps 20] [--epochs 10] [--out FILE]

Without a CUDA GPU it says so and exits with status 1, measuring nothing.  ``--device cpu``
is a smoke run of the script itself (the captured contenders left out: capture is refused
on the CPU); its figures mean nothing for a GPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, paired, ratio  # noqa: E402
from models import ARCHS, LR, Arch, dataset, layer_names, spec_text  # noqa: E402

import graphspec as gs  # noqa: E402
from graphspec.spec.variants import expand_variants  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "specs" / "cnn_digits.yaml"
# name -> graphspec compile options (the contenders beside the hand-written module)
GRAPHSPEC = {
    "eager": {},
    "captured": {"capture": "cuda_graph"},
    "bf16": {"amp": "bf16"},
    "bf16 captured": {"amp": "bf16", "capture": "cuda_graph"},
}


class HandMLP(nn.Module):
    def __init__(self, sizes: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-2], sizes[1:-1]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-2], sizes[-1]))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def contenders(device: str) -> dict[str, dict[str, Any]]:
    """GRAPHSPEC's contenders that run on ``device`` (no capture on the CPU)."""
    return {k: v for k, v in GRAPHSPEC.items() if device == "cuda" or "capture" not in v}


def speed(arch: Arch, reps: int, steps: int, device: str) -> dict[str, dict[str, Any]]:
    ir = gs.build(gs.loads(spec_text(arch), f"<gpu-{arch.name}>"))
    params = gs.init_params(ir, seed=0)
    rows = 8 * arch.batch
    data = dataset(arch, rows, 0)
    dev = torch.device(device)
    names = contenders(device)
    rng = np.random.default_rng(1)

    def batches(n: int) -> list[np.ndarray]:
        # Full batches only: an epoch's ragged last batch would record a second graph.
        return [rng.choice(rows, arch.batch, replace=False) for _ in range(n)]

    runners: dict[str, Any] = {}
    for name, opts in names.items():
        prog = gs.compile(ir, "torch", device=device, dtype="float32", **opts)
        trainer = prog.trainer(params, ir.spec.train, 0)
        trainer.set_data("train", data)
        epoch = [0]

        def run(n: int, trainer: Any = trainer, epoch: list[int] = epoch) -> None:
            trainer.train_epoch(batches(n), epoch[0])
            epoch[0] += 1

        runners[name] = run

    hand = HandMLP(arch.sizes).to(dev)
    with torch.no_grad():
        linears = [m for m in hand.net if isinstance(m, nn.Linear)]
        for lin, name in zip(linears, layer_names(arch)):
            lin.weight.copy_(torch.as_tensor(params[f"{name}.weight"]).T)
            lin.bias.copy_(torch.as_tensor(params[f"{name}.bias"]))
    opt = torch.optim.SGD(hand.parameters(), lr=LR)  # models.spec_text's SGD
    X = torch.as_tensor(data["x"], dtype=torch.float32, device=dev)
    Y = torch.as_tensor(data["y"], device=dev)
    Y = Y.float() if arch.binary else Y.long()
    lossf = F.binary_cross_entropy_with_logits if arch.binary else F.cross_entropy

    def hand_run(n: int) -> None:
        index = torch.from_numpy(np.concatenate(batches(n))).to(dev).split(arch.batch)
        total = torch.zeros((), device=dev)
        for ix in index:
            loss = lossf(hand(X.index_select(0, ix)), Y.index_select(0, ix))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        float(total)  # one host sync, as the trainer's epoch

    runners["hand"] = hand_run
    sync = torch.cuda.synchronize if device == "cuda" else None
    times = paired(runners, reps, steps, sync=sync)
    return {name: ratio(times, name, "hand") for name in names}


def accuracy(epochs: int, device: str) -> list[dict[str, Any]]:
    spec = next(
        iter(expand_variants(gs.load(DIGITS, ["train.schedule={name: constant}"])).values())
    )
    rows = []
    for amp in ("none", "bf16", "fp16"):
        captures = ("none", "cuda_graph") if amp != "fp16" and device == "cuda" else ("none",)
        for capture in captures:
            opts = {k: v for k, v in (("amp", amp), ("capture", capture)) if v != "none"}
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                run = gs.train(
                    spec,
                    backend="torch",
                    device=device,
                    dtype="float32",
                    epochs=epochs,
                    out=Path(out) / "run",
                    progress=False,
                    **opts,
                )
                seconds = time.perf_counter() - t0
            rows.append(
                {
                    "amp": amp,
                    "capture": capture,
                    "val_accuracy": run.final.get("val_accuracy"),
                    "train_loss": run.final.get("train_loss"),
                    "s_per_epoch": seconds / epochs,
                }
            )
    return rows


def markdown(
    info: dict[str, Any],
    speeds: dict[str, dict[str, dict[str, Any]]],
    accuracies: list[dict[str, Any]],
    args: argparse.Namespace,
) -> str:
    lines = [
        f"Measured with `python tools/bench/gpu_check.py --reps {args.reps} --steps "
        f"{args.steps} --epochs {args.epochs} --device {args.device}` on "
        f"{info.get('cuda') or info.get('cpu')} (torch {info.get('torch')}).",
        "",
        "Training step time, float32 SGD, ratio to a hand-written eager nn.Module (median ms "
        "per step in brackets; below 1: faster):",
        "",
        "| model | " + " | ".join(contenders(args.device)) + " | hand-written ms |",
        "|---|" + "---:|" * (len(contenders(args.device)) + 1),
    ]
    for arch, figures in speeds.items():
        cells = [f"{f['ratio']:.2f} ({f['num_ms']:.3f})" for f in figures.values()]
        hand_ms = next(iter(figures.values()))["den_ms"]
        lines.append(f"| {arch} | " + " | ".join(cells) + f" | {hand_ms:.3f} |")
    lines += [
        "",
        f"Mixed precision on specs/cnn_digits.yaml (cnn, schedule constant, {args.epochs} "
        "epochs, float32 master weights):",
        "",
        "| amp | capture | val accuracy | final train loss | s per epoch |",
        "|---|---|---:|---:|---:|",
    ]
    for r in accuracies:
        lines.append(
            f"| {r['amp']} | {r['capture']} | {_num(r['val_accuracy'])} | "
            f"{_num(r['train_loss'])} | {r['s_per_epoch']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", default="gpu_check.md", help="the Markdown file written")
    ap.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cpu: a smoke run of this script (module docstring)",
    )
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here: nothing measured", file=sys.stderr)
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False  # full float32: the eager figures' precision
    info = machine()
    speeds = {}
    for key in ("small", "deep", "big"):
        arch = ARCHS[key]
        speeds[arch.describe()] = speed(arch, args.reps, args.steps, args.device)
        print(f"speed: {arch.describe()} done", file=sys.stderr, flush=True)
    text = markdown(info, speeds, accuracy(args.epochs, args.device), args)
    Path(args.out).write_text(text)
    print(text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
