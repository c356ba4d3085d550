"""Run every benchmark and print a table; with ``--write``, rewrite BENCHMARKS.md.

    python tools/bench/run.py [--quick] [--threads N] [--write] [--only numpy,torch,...]

Each benchmark runs in its own interpreter (NumPy's and torch's thread pools never compete,
a stuck ``torch.compile`` is cut off by a timeout) and reports JSON; this script collects the
figures, checks them against the targets of issue 17 and writes the report.  Every training
figure is a ratio against a baseline timed in the same process: the median step time of the
contender over the median step time of the baseline, contenders alternating repetition by
repetition after a warm-up; the spread is the interquartile range of the per-repetition
ratios.  ``--quick`` is a smoke run that finishes in under a minute: one model size per
backend (``small``, float32) with few repetitions, no memory, ``torch.compile``, flat-spec or
gallery-verify jobs, and compile cost at 1e3 and 1e4 nodes; its figures are too short to
publish, so it never writes unless asked.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from common import machine  # noqa: E402

# Issue 17's targets (issue 8's were 1.10 big, 1.5 small/deep numpy, 1.15 small/deep torch):
# (section, arch, comparison) -> the largest ratio allowed, for both dtypes.
TARGETS = {
    ("numpy", "big", "vs_hand"): 1.05,
    ("numpy", "big", "vs_matmul"): 1.25,
    ("numpy", "small", "vs_hand"): 1.20,
    ("numpy", "deep", "vs_hand"): 1.20,
    ("torch", "big", "vs_hand"): 1.05,
    ("torch", "small", "vs_hand"): 1.05,
    ("torch", "deep", "vs_hand"): 1.05,
}
COMPILE_TARGET_S = 10.0  # 1e5 nodes to typed IR
# Issue 13's LSTM step (bench_recurrent.py): comparison -> the largest ratio allowed.
RECURRENT_TARGETS = {"numpy_vs_torch_eager": 3.0, "torch_vs_hand": 1.10}
# Issue 13's conv2d step (bench_conv.py): the largest numpy / torch eager ratio allowed.
CONV_TARGET = 2.0
# Peak memory of a numpy step over its activations before issue 17's fused update
# (bench_numpy.py --memory at commit 090dd54), for the report's comparison.
MEMORY_BEFORE = {"big": 4.16, "deep": 1.07, "small": 2.90}
# bench_conv.py's models -> (repetitions, steps per repetition).
CONV_RUNS = {"digits": (21, 10), "large": (11, 2)}


def plan(quick: bool, cuda: bool, clock: str) -> list[dict[str, Any]]:
    """The benchmark jobs: (section, argv, timeout)."""
    py = [sys.executable]
    jobs: list[dict[str, Any]] = []
    dtypes = ("float32", "float64")
    numpy_runs = [(arch, dtype) for arch in ("big", "small", "deep") for dtype in dtypes]
    if quick:
        numpy_runs = [("small", "float32")]
    reps_steps = {"big": (7, 2) if quick else (21, 3), "small": (7, 20) if quick else (21, 60),
                  "deep": (9, 5) if quick else (15, 12)}
    for arch, dtype in numpy_runs:
        reps, steps = reps_steps[arch]
        jobs.append({"section": "numpy", "label": f"numpy {arch} {dtype}", "timeout": 900,
                     "argv": py + [str(HERE / "bench_numpy.py"), "--arch", arch, "--dtype", dtype,
                                   "--reps", str(reps), "--steps", str(steps), "--clock", clock,
                                   "--json"]})
    for arch in () if quick else ("big", "deep", "small"):
        jobs.append({"section": "memory", "label": f"memory {arch}", "timeout": 300,
                     "argv": py + [str(HERE / "bench_numpy.py"), "--arch", arch, "--memory",
                                   "--json"]})
    t_reps = {"big": (5, 2) if quick else (21, 3), "small": (7, 20) if quick else (15, 60),
              "deep": (7, 5) if quick else (11, 10)}
    devices = ["cpu"] + (["cuda"] if cuda else [])
    modes = [False] if quick else [False, True]
    for device in devices:
        for compiled in modes:
            for arch in ("small",) if quick else ("big", "small", "deep"):
                # Eager mode in both dtypes (issue 17's targets); compiled in float32.
                for dtype in ("float32",) if quick or compiled else dtypes:
                    reps, steps = t_reps[arch]
                    if device == "cuda":
                        reps, steps = max(reps, 11), max(steps, 20)
                    argv = py + [str(HERE / "bench_torch_archs.py"), "--arch", arch,
                                 "--device", device, "--dtype", dtype, "--reps", str(reps),
                                 "--steps", str(steps), "--clock", clock, "--json"]
                    if compiled:
                        argv.append("--compile")
                    jobs.append({"section": "torch", "label": f"torch {arch} {dtype} {device}"
                                 f"{' compile' if compiled else ''}", "argv": argv,
                                 "timeout": 600})
    sizes = "1000,10000" if quick else "1000,10000,100000"
    jobs.append({"section": "compile", "label": "compile cost", "timeout": 600,
                 "argv": py + [str(HERE / "bench_compile.py"), "--sizes", sizes,
                               "--flat-sizes", "" if quick else "1000,10000",
                               "--memory-max", "0" if quick else "100000", "--json"]})
    if not quick:
        jobs.append({"section": "verify", "label": "verify gallery", "timeout": 900,
                     "argv": py + [str(HERE / "bench_compile.py"), "--sizes", "",
                                   "--flat-sizes", "", "--verify", "--json"]})
        jobs.append({"section": "recurrent", "label": "lstm step", "timeout": 900,
                     "argv": py + [str(HERE / "bench_recurrent.py"), "--reps", "11", "--steps",
                                   "3", "--clock", clock, "--json"]})
        for model, (reps, steps) in CONV_RUNS.items():
            jobs.append({"section": "conv", "label": f"conv {model}", "timeout": 900,
                         "argv": py + [str(HERE / "bench_conv.py"), "--model", model, "--reps",
                                       str(reps), "--steps", str(steps), "--clock", clock,
                                       "--json"]})
    return jobs


def run_job(job: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="graphspec-bench-") as tmp:
            # A cold torch.compile each time: inductor's on-disk caches start empty.
            env = {**env, "TORCHINDUCTOR_CACHE_DIR": tmp}
            p = subprocess.run(job["argv"], capture_output=True, text=True,
                               timeout=job["timeout"], env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {job['timeout']} s", "seconds": job["timeout"]}
    seconds = time.perf_counter() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {p.returncode}: " + " | ".join(tail), "seconds": seconds}
    out = json.loads(lines[-1])
    out["seconds"] = seconds
    return out


# ---- the report ------------------------------------------------------------------------------


def _fig(f: dict[str, Any]) -> str:
    return f"{f['ratio']:.3f} ({f['q1']:.3f}-{f['q3']:.3f})"


def _target(section: str, arch: str, key: str, ratio: float) -> tuple[str, str]:
    t = TARGETS.get((section, arch, key))
    if t is None:
        return "", ""
    return f"<= {t:.2f}", "yes" if ratio <= t else "**no**"


def training_rows(results: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[list[str]]:
    rows = []
    for job, r in results:
        if job["section"] not in ("numpy", "torch"):
            continue
        if "error" in r or "skipped" in r:
            rows.append([job["label"], "", "", r.get("error") or r.get("skipped"), "", "", ""])
            continue
        comps = [("vs_hand", "hand-written")]
        if job["section"] == "numpy":
            comps += [("vs_matmul", "matmul bound"), ("hand_vs_matmul", "matmul bound")]
        for key, base in comps:
            f = r[key]
            who = "hand-written" if key == "hand_vs_matmul" else "graphspec"
            target, met = _target(job["section"], r["arch"], key, f["ratio"])
            if job["section"] == "torch" and r.get("compile"):
                target, met = "", ""  # the targets are for eager mode
            what = f"{job['section']} {r['arch']} {r['dtype']}"
            if job["section"] == "torch":
                what += f" {r['device']}{' compile' if r.get('compile') else ''}"
            rows.append([what, f"{who} / {base}", _fig(f),
                         f"{f['num_ms']:.3f} / {f['den_ms']:.3f}", str(f["reps"]), target, met])
    return rows


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def report(info: dict[str, Any], results: list[tuple[dict[str, Any], dict[str, Any]]],
           args: argparse.Namespace, started: str, total_s: float) -> str:
    by = {j["label"]: r for j, r in results}
    lines = [
        "# Benchmarks",
        "",
        f"Written by `python tools/bench/run.py --write{' --quick' if args.quick else ''}"
        f"{f' --threads {args.threads}' if args.threads else ''}"
        f"{' --clock cpu' if args.clock == 'cpu' else ''}` on {started} "
        f"({total_s / 60:.1f} min). Rerun it to refresh this file.",
        "",
        "## Machine",
        "",
        f"- CPU: {info['cpu']}, {info['cores']} cores; {info['platform']}",
        f"- Python {info['python']}, NumPy {info['numpy']} ({info.get('blas')}), "
        f"torch {info.get('torch')}",
        f"- threads: {args.threads or 'library defaults'} (torch uses "
        f"{info.get('torch_threads')}); GPU: {info.get('cuda') or 'none (CUDA rows skipped)'}",
        f"- clock: {'CPU time of the process' if args.clock == 'cpu' else 'wall time'}",
        f"- load average before / after: {_load(info.get('load_average'))} / "
        f"{_load(os.getloadavg() if hasattr(os, 'getloadavg') else None)} (other work on the "
        "machine widens the spreads)",
        "",
        *_busy_note(info, args),
        "## Training step (ratios; lower is better)",
        "",
        "Ratio = median seconds per step of the first over the second, measured in one process "
        "with the contenders alternating; in parentheses the interquartile range of the "
        "per-repetition ratios. `big` = 784-1024x4-10 batch 256, `small` = 2-16-16-1 batch 64, "
        "`deep` = 64-64x50-10 batch 128; ReLU MLPs, softmax cross-entropy (binary "
        "cross-entropy for `small`), plain SGD. graphspec runs its trainers' `train_epoch` "
        "(batch gather, generated forward and backward, optimizer), the hand-written "
        "contenders the same steps written directly (tools/bench/models.py and "
        "bench_torch_archs.py), the matmul bound only the step's matrix products.",
        "",
        *table(["benchmark", "comparison", "ratio (IQR)", "ms/step", "reps", "target", "met"],
               training_rows(results)),
        "",
    ]
    compiled = [(j, r) for j, r in results if j["section"] == "torch" and "compile" in j["label"]]
    if compiled:
        lines += ["torch.compile, first step (compilation included), seconds; graphspec "
                  "compiles first, from empty caches, and the hand-written model may reuse "
                  "kernels it built:", ""]
        rows = []
        for j, r in compiled:
            if "first_step_s" in r:
                fs = r["first_step_s"]
                rows.append([j["label"], f"{fs['graphspec']:.1f}", f"{fs['hand']:.1f}"])
            else:
                rows.append([j["label"], r.get("error") or r.get("skipped", ""), ""])
        lines += table(["benchmark", "graphspec", "hand-written"], rows) + [""]
    elif args.quick:
        lines += ["`--quick` skips `torch.compile` (compiling takes minutes on a small CPU).", ""]
    mem = [(j, r) for j, r in results if j["section"] == "memory"]
    if mem:
        lines += [
            "## Peak memory of a numpy training step",
            "",
            "Peak bytes allocated during one step (tracemalloc, which sees NumPy's buffers) over "
            "the activations the backward pass must keep (the input of every linear layer "
            "and the logits, at the batch size). graphspec frees each activation after its "
            "last use and, with `train.fused_update` (the default where exact, issue 17), "
            "updates each parameter inside the backward pass as soon as its gradient is "
            "final, so it holds about one layer's gradient at a time, as the hand-written "
            "step does. Before that it handed every parameter gradient to the optimizer at "
            "once, and where the parameters outweigh the activations (`big`) its peak was "
            "about activations + gradients: the figures in parentheses, measured with "
            "`bench_numpy.py --memory` on the code before issue 17 (commit 090dd54).",
            "",
        ]
        rows = []
        for j, r in mem:
            if "error" in r:
                rows.append([j["label"], r["error"], "", "", ""])
                continue
            before = MEMORY_BEFORE.get(r["arch"])
            rows.append([f"{r['describe']} {r['dtype']}",
                         f"{r['activations_bytes'] / 2**20:.2f} MiB",
                         f"{r['graphspec_vs_activations']:.2f}x"
                         + (f" ({before:.2f}x)" if before else ""),
                         f"{r['hand_vs_activations']:.2f}x",
                         f"{r['param_grad_bytes'] / r['activations_bytes']:.2f}x"])
        lines += table(["model", "activations", "graphspec peak (before)", "hand-written peak",
                        "(parameter gradients)"], rows) + [""]
    cc = by.get("compile cost", {})
    if cc:
        lines += [
            "## Compile cost: load, validate, expand, build, shape inference, checks",
            "",
            "Generated specs: a residual cell (linear, tanh, add: five IR nodes) repeated with "
            "`repeat` to 1e3, 1e4 and 1e5 IR nodes, and listed cell by cell (\"flat\"). CPU "
            "seconds of the process (wall seconds in parentheses); memory is tracemalloc's "
            "peak during loading and building (a separate run) and what the IR keeps.",
            "",
        ]
        if "error" in cc:
            lines += [f"error: {cc['error']}", ""]
        else:
            rows = []
            for r in cc["compile"]:
                mem_cell = (f"{r['peak_bytes_per_node'] / 1024:.2f} / "
                            f"{r['kept_bytes_per_node'] / 1024:.2f}" if "peak_bytes" in r else "-")
                note = " (limit raised)" if "raised_limit_from" in r else ""
                rows.append([r["style"] + note, f"{r['nodes']:,}",
                             f"{r['cpu_s']:.2f} ({r['wall_s']:.2f})",
                             f"{r['us_per_node']:.1f}", mem_cell])
            lines += table(["spec", "IR nodes", "seconds", "us/node", "KiB/node peak / kept"],
                           rows)
            big = [r for r in cc["compile"] if r["style"] == "repeat" and r["nodes"] >= 99_000]
            rep = [r for r in cc["compile"] if r["style"] == "repeat"]
            if big and len(rep) > 1:
                growth = rep[-1]["us_per_node"] / rep[0]["us_per_node"]
                ok = big[0]["wall_s"] < COMPILE_TARGET_S
                lines += ["", f"1e5 nodes to typed IR: {big[0]['wall_s']:.2f} s wall "
                          f"(target < {COMPILE_TARGET_S:.0f} s: {'met' if ok else '**not met**'});"
                          f" per-node time at {rep[-1]['nodes']:,} nodes / at "
                          f"{rep[0]['nodes']:,} nodes = {growth:.2f} (1.0 = linear)."]
            if any("raised_limit_from" in r for r in cc["compile"]):
                old = next(r["raised_limit_from"] for r in cc["compile"]
                           if "raised_limit_from" in r)
                lines += ["", f"The expander refuses specs of more than {old:,} expanded nodes "
                          "(`graphspec.spec.expand.MAX_EXPANDED_NODES`); the benchmark raises "
                          "that bound to measure the 1e5-node series."]
            lines += [""]
    ver = by.get("verify gallery", {})
    if ver:
        lines += ["## `graphspec verify` on the gallery", ""]
        if "error" in ver:
            lines += [f"error: {ver['error']}", ""]
        else:
            lines += [f"Seconds per spec in one warmed-up process (`graphspec.verify`: numpy "
                      f"and torch, float64, 3 training steps, finite differences); a fresh "
                      f"`graphspec "
                      f"verify` process adds {ver['startup_s']:.1f} s of interpreter start and "
                      "imports.", ""]
            rows = [[v["spec"], f"{v['seconds']:.2f}", "ok" if v["ok"] is True else str(v["ok"])]
                    for v in ver["verify"]]
            total = sum(v["seconds"] for v in ver["verify"])
            rows.append(["**total**", f"{total:.1f}", ""])
            lines += table(["spec", "seconds", "result"], rows) + [""]
    lines += recurrent_section(by.get("lstm step", {}))
    lines += conv_section([(j["label"], r) for j, r in results if j["section"] == "conv"])
    return "\n".join(lines) + "\n"


def recurrent_section(r: dict[str, Any]) -> list[str]:
    """The LSTM training step (bench_recurrent.py): both backends against nn.LSTM."""
    if not r:
        return []
    lines = ["## LSTM training step (ratios; lower is better)", ""]
    if "error" in r:
        return lines + [f"error: {r['error']}", ""]
    lines += [f"{r['describe']}, {r['dtype']}, a linear head, mse, SGD: graphspec's trainers "
              "against a hand-written `nn.LSTM` module in eager mode, in one process.", ""]
    rows = []
    for key, what in (("numpy_vs_torch_eager", "numpy backend / nn.LSTM"),
                      ("torch_vs_hand", "torch backend / nn.LSTM")):
        f, target = r[key], RECURRENT_TARGETS[key]
        rows.append([what, _fig(f), f"{f['num_ms']:.2f} / {f['den_ms']:.2f}", str(f["reps"]),
                     f"<= {target:.2f}", "yes" if f["ratio"] <= target else "**no**"])
    return lines + table(["comparison", "ratio (IQR)", "ms/step", "reps", "target", "met"],
                         rows) + [""]


def conv_section(results: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The conv2d training step (bench_conv.py): the numpy backend against torch eager and
    against the GEMM bound of an im2col step."""
    if not results:
        return []
    lines = ["## conv2d training step (ratios; lower is better)", "",
             "`conv2d(3x3, same) -> relu -> max_pool2d(2)` twice, `flatten -> linear` to 10 "
             "classes, softmax cross-entropy, SGD, float32: the numpy backend's "
             "`train_epoch` against a hand-written `nn.Sequential` in eager mode, and both "
             "against the GEMM bound (the step's im2col matrix products alone, into "
             "preallocated buffers), in one process.", ""]
    rows = []
    for label, r in results:
        if "error" in r:
            rows.append([label, r["error"], "", "", "", "", ""])
            continue
        for key, what, target in (("vs_torch", "numpy backend / torch eager", CONV_TARGET),
                                  ("vs_gemm", "numpy backend / GEMM bound", None),
                                  ("torch_vs_gemm", "torch eager / GEMM bound", None)):
            f = r[key]
            met = "" if target is None else "yes" if f["ratio"] <= target else "**no**"
            rows.append([r["describe"], what, _fig(f), f"{f['num_ms']:.2f} / {f['den_ms']:.2f}",
                         str(f["reps"]), "" if target is None else f"<= {target:.2f}", met])
    return lines + table(["model", "comparison", "ratio (IQR)", "ms/step", "reps", "target",
                          "met"], rows) + [""]


def _busy_note(info: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """A warning when other work competed for the cores of a multi-threaded wall-clock run:
    BLAS and OpenMP threads that wait for a busy core make such timings swing by 10x."""
    load = info.get("load_average")
    cores = info.get("cores") or 1
    if not load or args.clock == "cpu" or args.threads == 1 or load[0] < 0.5 * cores:
        return []
    return [f"**The machine was busy** (load {load[0]:.1f} on {cores} cores): multi-threaded "
            "wall-clock timings are unreliable there. `--threads 1 --clock cpu` measures what "
            "other work cannot inflate.", ""]


def _load(v: Any) -> str:
    return "n/a" if not v else ", ".join(f"{x:.1f}" for x in v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run in under a minute (small models, few repetitions)")
    ap.add_argument("--threads", type=int, help="BLAS and torch threads (default: libraries')")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="time steps by the wall clock, or by CPU time (robust against "
                    "other work on the machine; use it with --threads 1)")
    ap.add_argument("--only", default="", help="comma-separated sections: numpy,memory,torch,"
                    "compile,verify,recurrent,conv")
    ap.add_argument("--write", action="store_true", help="rewrite BENCHMARKS.md (--output)")
    ap.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    if args.threads:
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[k] = str(args.threads)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine()
    cuda = torch.cuda.is_available()
    jobs = plan(args.quick, cuda, args.clock)
    only = {s for s in args.only.split(",") if s}
    if only:
        jobs = [j for j in jobs if j["section"] in only]
    started = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    t0 = time.perf_counter()
    print(f"{info['cpu']}, {info['cores']} cores; Python {info['python']}, NumPy "
          f"{info['numpy']}, torch {info.get('torch')}; GPU: {info.get('cuda') or 'none'}")
    results = []
    for job in jobs:
        print(f"  {job['label']} ...", end="", flush=True)
        r = run_job(job, env)
        results.append((job, r))
        print(f" {r['seconds']:.0f} s" + (f"  [{r['error']}]" if "error" in r else ""))
    total = time.perf_counter() - t0
    text = report(info, results, args, started, total)
    print()
    print(text)
    if args.write:
        Path(args.output).write_text(text + kept_sections(Path(args.output)))
        print(f"wrote {args.output}")


def kept_sections(path: Path) -> str:
    """Sections other benchmark scripts maintain in the file (between ``<!-- begin: NAME
    -->`` and ``<!-- end: NAME -->``, e.g. bench_ddp.py's): kept when this one rewrites it."""
    import re

    old = path.read_text() if path.exists() else ""
    blocks = re.findall(r"<!-- begin: [\w.-]+ -->.*?<!-- end: [\w.-]+ -->\n?", old, re.S)
    return "".join("\n" + b.rstrip("\n") + "\n" for b in blocks)


if __name__ == "__main__":
    main()
