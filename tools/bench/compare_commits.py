"""The training-step ratios of another checkout's code, measured by today's benchmarks.

    git worktree add /tmp/before 090dd54
    python tools/bench/compare_commits.py /tmp/before

Runs run.py's eager training-step jobs (numpy and torch, every model and dtype, the same
repetitions) with the checkout's ``graphspec`` and backends first on the import path, one
thread, CPU clock, and prints the rows of run.py's table.  The scripts and the hand-written
baselines are today's, so a ratio of old code and one of new code compare the same thing:
how graphspec's step at that commit does against the same hand-written step, in one process.
Issue 17's "before" figures in BENCHMARKS.md come from this, on commit 090dd54.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import plan, run_job, table, training_rows  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tree", type=Path, help="a checkout of the code to measure")
    a = ap.parse_args()
    tree = a.tree.resolve()
    if not (tree / "graphspec" / "__init__.py").is_file():
        raise SystemExit(f"{tree}: not a graphspec checkout (no graphspec/__init__.py)")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree), str(tree / "backends"), str(HERE)])
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = "1"
    jobs = [
        j
        for j in plan(quick=False, cuda=False, clock="cpu")
        if j["section"] in ("numpy", "torch") and "--compile" not in j["argv"]
    ]
    results = []
    for job in jobs:
        print(f"  {job['label']} ...", file=sys.stderr, flush=True)
        results.append((job, run_job(job, env)))
    header = ["benchmark", "comparison", "ratio (IQR)", "ms/step", "reps", "target", "met"]
    print("\n".join(table(header, training_rows(results))))


if __name__ == "__main__":
    main()
