"""Data-parallel training throughput: 1 process against N (gloo on this machine, or NCCL).

The model is bench_torch's 784-1024x4-10 ReLU MLP (softmax cross-entropy, SGD with
momentum, global batch 256, float32) trained on the ``blobs`` source through
``gs.train``, the real API: ``nproc=None`` (one process, no process group), then
``nproc=1`` (the launcher and DistributedDataParallel around one rank) and ``nproc=N``.
Throughput is training samples per second over the epochs after the first (each epoch's
own time, which the run's metrics log records: steps, the record's all-reduce, no start-up);
scaling efficiency is N-process throughput over N times the one-process throughput at the
same threads per process.  Start-up (the workers' interpreters, torch's import, the
rendezvous) is reported apart, as the wall time of the whole call minus the epochs.

Communication per step is computed from the model: DDP all-reduces every gradient once
(4 bytes per float32 parameter; a ring all-reduce sends and receives 2 (N - 1) / N times
that per rank); this MLP has no batch norm, whose statistics would add two all-reduces of
(1 + features) and (features) numbers per layer in the forward pass and as many in the
backward pass.  Per epoch the ranks also sum the step records and the evaluation sums (a
few numbers per step), which the figures include.

    python tools/bench/bench_ddp.py [--nproc 2] [--epochs 4] [--rows 8192] [--threads 1]
        [--rounds 3] [--dist-backend auto] [--write]   # --write: replace the section in
                                                       # BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_torch import spec_text  # noqa: E402  (tools/bench is not a package)
from common import write_section  # noqa: E402

import graphspec as gs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- begin: bench_ddp -->", "<!-- end: bench_ddp -->"


def spec(rows: int) -> Any:
    text = spec_text().replace("data: {source: blobs}",
                               f"data: {{source: blobs, samples: {rows}, val_split: 0}}")
    return gs.loads(text, "<bench-ddp>")


def one_run(rows: int, epochs: int, nproc: int | None, dist_backend: str) -> dict[str, Any]:
    s = spec(rows)
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as out:
        t0 = time.perf_counter()
        kw: dict[str, Any] = {}
        if nproc is not None:
            kw = {"nproc": nproc, "dist_backend": dist_backend}
        result = gs.train(s, backend="torch", out=out, epochs=epochs, dtype="float32",
                          progress=False, **kw)
        wall = time.perf_counter() - t0
    times = [float(r["time"]) for r in result.history]
    steady = statistics.median(times[1:]) if len(times) > 1 else times[0]
    return {"nproc": nproc, "epoch_s": steady, "samples_per_s": rows / steady,
            "startup_s": wall - sum(times), "epochs": times}


def _all_reduce_worker(rank: int, world: int, store_path: str, numel: int, reps: int,
                       out: str) -> None:
    """One rank of the all-reduce timing (torch.multiprocessing.spawn calls it)."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", store=dist.FileStore(store_path, world), rank=rank,
                            world_size=world)
    t = torch.ones(numel, dtype=torch.float32)
    times = []
    for _ in range(reps + 2):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(t)
        times.append(time.perf_counter() - t0)
    if rank == 0:
        Path(out).write_text(str(statistics.median(times[2:])))
    dist.destroy_process_group()


def all_reduce_seconds(numel: int, world: int, reps: int = 9) -> float:
    """Median seconds of one gloo all-reduce of ``numel`` float32 over ``world`` local
    processes (loopback): the gradient exchange of one step, alone."""
    import torch.multiprocessing as mp

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    with tempfile.TemporaryDirectory(prefix="bench-ddp-ar-") as tmp:
        out = str(Path(tmp) / "seconds")
        mp.spawn(_all_reduce_worker, args=(world, str(Path(tmp) / "store"), numel, reps, out),
                 nprocs=world)
        return float(Path(out).read_text())


def run_benchmark(nproc: int = 2, epochs: int = 4, rows: int = 8192, threads: int = 1,
                  dist_backend: str = "auto", rounds: int = 3) -> dict[str, Any]:
    os.environ["OMP_NUM_THREADS"] = str(threads)  # every worker, and this process
    import torch

    torch.set_num_threads(threads)
    ir = gs.build(spec(rows))
    params = ir.param_count()
    load_before = os.getloadavg()
    # Rounds alternate the three set-ups, so the machine's drifting load hits each alike;
    # each figure is the median over rounds (with the range).
    configs: list[int | None] = [None, 1, nproc]
    per: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(configs))}
    for r in range(rounds):
        order = range(len(configs)) if r % 2 == 0 else reversed(range(len(configs)))
        for i in order:
            per[i].append(one_run(rows, epochs, configs[i], dist_backend))
    runs = []
    for i in range(len(configs)):
        epoch_s = sorted(x["epoch_s"] for x in per[i])
        runs.append({"nproc": configs[i], "epoch_s": statistics.median(epoch_s),
                     "epoch_range": (epoch_s[0], epoch_s[-1]),
                     "samples_per_s": rows / statistics.median(epoch_s),
                     "startup_s": statistics.median(x["startup_s"] for x in per[i])})
    allreduce_s = all_reduce_seconds(params, nproc) if nproc > 1 else 0.0
    load_after = os.getloadavg()
    grad_bytes = 4 * params
    base = runs[0]["samples_per_s"]
    return {
        "params": params, "grad_bytes": grad_bytes, "threads": threads, "rows": rows,
        "epochs": epochs, "rounds": rounds, "batch": 256, "steps_per_epoch": -(-rows // 256),
        "nproc": nproc,
        "ring_bytes_per_rank": grad_bytes * 2 * (nproc - 1) / nproc,
        "runs": runs, "efficiency": runs[2]["samples_per_s"] / (nproc * base),
        "allreduce_s": allreduce_s,
        "ddp_overhead_1": base / runs[1]["samples_per_s"],
        "load": (load_before, load_after), "cores": os.cpu_count(),
        "torch": torch.__version__, "cuda": torch.cuda.is_available(),
        "dist_backend": dist_backend,
    }


def markdown(r: dict[str, Any]) -> str:
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    lb, la = (", ".join(f"{v:.1f}" for v in x) for x in r["load"])
    mib = r["grad_bytes"] / 2**20
    one_step = r["runs"][0]["epoch_s"] / r["steps_per_epoch"]
    lines = [
        BEGIN,
        "## Data-parallel training (DDP, `tools/bench/bench_ddp.py`)",
        "",
        f"Written by `python tools/bench/bench_ddp.py --write` on {when}: the 784-1024x4-10 "
        f"ReLU MLP ({r['params']:,} parameters), global batch {r['batch']}, float32, "
        f"{r['rows']} rows ({r['steps_per_epoch']} steps per epoch), {r['epochs']} epochs "
        f"(the first is warm-up), {r['rounds']} rounds alternating the set-ups (medians; "
        f"the s/epoch range in brackets); {r['threads']} thread per process, "
        f"`--dist-backend {r['dist_backend']}` on {r['cores']} cores "
        f"({'GPU' if r['cuda'] else 'no GPU'}; torch {r['torch']}). Load average before / "
        f"after: {lb} / {la} — the machine is shared, so the figures move with its load.",
        "",
        "| run | s/epoch | samples/s | start-up s |",
        "|---|---|---|---|",
    ]
    names = ["1 process (no process group)", "`--nproc 1` (launcher + DDP)",
             f"`--nproc {r['nproc']}`"]
    for name, run in zip(names, r["runs"]):
        lo, hi = run["epoch_range"]
        lines.append(f"| {name} | {run['epoch_s']:.3f} [{lo:.3f}-{hi:.3f}] | "
                     f"{run['samples_per_s']:.0f} | {run['startup_s']:.1f} |")
    lines += [
        "",
        f"Scaling efficiency of {r['nproc']} processes: {r['efficiency']:.2f} "
        f"(throughput over {r['nproc']} x the one-process throughput); DDP around a single "
        f"rank costs {100 * (r['ddp_overhead_1'] - 1):+.0f}%.",
        "",
        f"Communication per step: the gradient all-reduce carries {r['grad_bytes']:,} bytes "
        f"({mib:.1f} MiB, 4 bytes x {r['params']:,} parameters); with a ring all-reduce "
        f"each rank sends and receives {r['ring_bytes_per_rank'] / 2**20:.1f} MiB per step. "
        f"Alone (two processes, gloo over loopback, nothing else running in them) one such "
        f"all-reduce takes {1e3 * r['allreduce_s']:.0f} ms, against "
        f"{1e3 * r['runs'][0]['epoch_s'] / r['steps_per_epoch']:.0f} ms for a whole "
        f"one-process step and {1e3 * r['runs'][2]['epoch_s'] / r['steps_per_epoch']:.0f} ms "
        f"for a {r['nproc']}-process step. "
        "No batch norm here (each would add two all-reduces of about its feature count, "
        "forward and backward); per epoch the ranks also sum a few numbers per step (the "
        "step records) and the evaluation sums.",
        "",
        f"Reading the figures: with idle cores, a rank's step would be its 1/{r['nproc']} of "
        f"the compute plus the all-reduce, about "
        f"{1e3 * (one_step / r['nproc'] + r['allreduce_s']):.0f} ms, an efficiency near "
        f"{one_step / (one_step / r['nproc'] + r['allreduce_s']) / r['nproc']:.2f} (an "
        "estimate from the two measured parts, not a measurement). The measured efficiency "
        "falls short of it by what the machine's other work takes from the cores the ranks "
        "share (the load average above).",
        END,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--rows", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of the set-ups")
    ap.add_argument("--dist-backend", default="auto", choices=["auto", "gloo", "nccl"])
    ap.add_argument("--write", action="store_true", help="replace the section in BENCHMARKS.md")
    a = ap.parse_args()
    r = run_benchmark(a.nproc, a.epochs, a.rows, a.threads, a.dist_backend, a.rounds)
    text = markdown(r)
    print(text)
    if a.write:
        write_section("bench_ddp", text, ROOT / "BENCHMARKS.md")
        print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
