"""Data-parallel training (graphspec_torch.distributed): N processes train as one.

Every multi-process test runs gloo over the loopback interface (127.0.0.1) on the CPU; the
NCCL variants are marked ``cuda`` and skip without GPUs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch_helpers import cuda, needs_cuda

import graphspec as gs
from graphspec.cli import main
from graphspec.errors import SpecError
from graphspec.train import checkpoint
from graphspec_torch.distributed import once_terms, problems_with_rows, share
from graphspec_torch.kernels.normalization import batch_norm

GRAPHSPEC = [sys.executable, "-m", "graphspec"]
TOL = 1e-10

MLP = """
graphspec: 1
name: ddp-mlp
seed: 3
inputs:
  x: [batch, 2]
  y: [batch, 1]
graph:
  - {id: hidden, op: linear, in: x, units: 8}
  - {id: act, op: tanh}
  - {id: logit, op: linear, units: 1}
outputs: [logit]
loss:
  - {op: bce_with_logits, in: [logit, y]}
  - {op: l2_penalty, weight: 1.0e-3}
train:
  data: {source: xor, samples: 125, noise: 0.1, val_split: 0.2}
  optimizer: {name: sgd, lr: 0.5, momentum: 0.9}
  epochs: 4
  batch_size: 9
  metrics: [binary_accuracy]
"""
# 100 training rows in batches of 9: eleven batches split 5 + 4 rows, and a last batch of
# one row, which leaves rank 1 with none.

BATCH_NORM = """
graphspec: 1
name: ddp-bn
seed: 1
inputs:
  x: [batch, 2]
  y: [batch, 1]
graph:
  - {id: s1, op: linear, in: x, units: 6}
  - {id: n1, op: batch_norm}
  - {id: h1, op: sigmoid}
  - {id: s2, op: linear, units: 6}
  - {id: n2, op: batch_norm, momentum: 0.2}
  - {id: h2, op: tanh}
  - {id: logit, op: linear, units: 1}
outputs: [logit]
loss:
  - {op: bce_with_logits, in: [logit, y]}
train:
  data: {source: moons, samples: 100, noise: 0.1, val_split: 0.2}
  optimizer: {name: sgd, lr: 0.2, momentum: 0.9}
  epochs: 3
  batch_size: 11
  metrics: [binary_accuracy]
  adversarial: {epsilon: 0.05, input: x, mix: 0.5}
"""
# 80 training rows in batches of 11: shares of 6 and 5 rows, and a last batch of 3 (2 + 1).
# FGSM (adversarial) makes each step two passes, the second outside DDP's forward, and its
# input gradient crosses the synchronized statistics.
# SGD, not Adam: the bias before a batch norm has a gradient of exactly zero, computed as
# rounding noise, which Adam's normalization would turn into steps of size lr.

DROPOUT = """
graphspec: 1
name: ddp-dropout
seed: 5
inputs:
  x: [batch, 2]
  y: [batch, 1]
graph:
  - {id: hidden, op: linear, in: x, units: 16}
  - {id: act, op: relu}
  - {id: drop, op: dropout, p: 0.3}
  - {id: logit, op: linear, units: 1}
outputs: [logit]
loss:
  - {op: bce_with_logits, in: [logit, y]}
train:
  data: {source: xor, samples: 80, noise: 0.1, val_split: 0.25}
  optimizer: {name: sgd, lr: 0.3}
  epochs: 3
  batch_size: 8
"""

SLOW_MLP = MLP.replace("samples: 125", "samples: 3000").replace("batch_size: 9", "batch_size: 8")
SLOW_MLP = SLOW_MLP.replace("epochs: 4", "epochs: 200")
# Epochs of 300 steps: long enough that a signal or a kill lands in the middle of one.


def _spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _train(spec: Path, out: Path, **kw: Any) -> Any:
    return gs.train(spec, backend="torch", out=out, progress=False, **kw)


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def _close_records(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        for k in ra:
            if k != "time":
                assert rb[k] == pytest.approx(ra[k], rel=TOL, abs=TOL), k


# ---- pieces, in one process ----------------------------------------------------------------


@pytest.mark.parametrize("n, world", [(9, 2), (1, 2), (0, 3), (10, 3), (7, 7), (3, 4)])
def test_shares_cover_each_row_once_and_differ_by_at_most_one(n: int, world: int) -> None:
    bounds = [share(n, world, r) for r in range(world)]
    assert [lo for lo, _ in bounds] == [0] + [hi for _, hi in bounds[:-1]]
    assert bounds[-1][1] == n
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_penalties_count_once_and_losses_per_example(tmp_path: Path) -> None:
    ir = gs.build(gs.load(_spec(tmp_path, MLP)))
    penalties = {lid for lid, _ in ir.losses if ir.node(lid).op == "l2_penalty"}
    assert len(penalties) == 1 and len(ir.losses) == 2
    assert once_terms(ir) == penalties and problems_with_rows(ir) == []


def test_batch_norm_is_synchronized_not_refused(tmp_path: Path) -> None:
    assert problems_with_rows(gs.build(gs.load(_spec(tmp_path, BATCH_NORM)))) == []


@pytest.mark.parametrize(
    "node, why",
    [
        ("{id: m, op: softmax, in: h, axis: 0}", "works along the batch axis"),
        ("{id: m, op: mean, in: h, axis: 0, keepdims: true}", "has no batch axis first"),
        ("{id: m, op: sum, in: h}", "has no batch axis first"),
        ("{id: m, op: leave_one_out_mean, in: h}", "works along the batch axis"),
    ],
)
def test_graphs_that_mix_examples_are_refused_with_the_node(
    tmp_path: Path, node: str, why: str
) -> None:
    text = MLP.replace(
        "  - {id: logit, op: linear, units: 1}",
        f"  - {{id: h, op: linear, units: 1}}\n  - {node}\n  - {{id: logit, op: add, in: [h, m]}}",
    )
    spec = gs.load(_spec(tmp_path, text))
    problems = problems_with_rows(gs.build(spec))
    assert problems and problems[0][0] == "m" and why in problems[0][1]
    with pytest.raises(SpecError) as e:
        gs.train(spec, backend="torch", out=tmp_path / "run", nproc=1, progress=False)
    assert (
        e.value.location is not None
        and e.value.location.line == text.splitlines().index(f"  - {node}") + 1
    )
    assert "node 'm'" in e.value.message and not (tmp_path / "run").exists()


@pytest.fixture
def one_rank_group(tmp_path: Path) -> Any:
    """A gloo process group of one rank (a file store: no network) for kernel checks."""
    dist.init_process_group(
        "gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1
    )
    try:
        yield dist.group.WORLD
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("shape", [(7, 3), (4, 5, 3)])
def test_synced_batch_norm_matches_torch_in_values_gradients_and_running_stats(
    one_rank_group: Any, shape: tuple[int, ...]
) -> None:
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 3 + 5).requires_grad_(True)
    gamma = torch.rand(3, generator=g, dtype=torch.float64).requires_grad_(True)
    beta = torch.randn(3, generator=g, dtype=torch.float64).requires_grad_(True)
    rm, rv = torch.randn(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64) + 0.5
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    out = {}
    for group in (None, one_rank_group):
        y, (m, v) = batch_norm(
            x, gamma, beta, rm, rv, momentum=0.1, eps=1e-5, training=True, group=group
        )
        grads = torch.autograd.grad((y * w).sum(), [x, gamma, beta])
        out[group is None] = (y.detach(), m, v, *grads)
    for ref, got in zip(out[True], out[False]):
        assert torch.allclose(ref, got, rtol=1e-12, atol=1e-12)
    xt = x.detach() if len(shape) == 2 else x.detach().movedim(-1, 1)
    assert torch.allclose(
        out[True][0].movedim(-1, 1) if len(shape) == 3 else out[True][0],
        F.batch_norm(xt, rm.clone(), rv.clone(), gamma, beta, True, 0.1, 1e-5),
    )


def test_synced_batch_norm_in_evaluation_uses_running_stats(one_rank_group: Any) -> None:
    x = torch.randn(5, 3, dtype=torch.float64)
    rm, rv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    one = torch.ones(3, dtype=torch.float64)
    y, (m, v) = batch_norm(
        x, one, 0 * one, rm, rv, momentum=0.1, eps=0.0, training=False, group=one_rank_group
    )
    assert torch.equal(y, x) and torch.equal(m, rm) and torch.equal(v, rv)


# ---- N processes train as one (gloo on 127.0.0.1) ------------------------------------------


def test_two_processes_train_an_mlp_as_one(tmp_path: Path) -> None:
    spec = _spec(tmp_path, MLP)
    one = _train(spec, tmp_path / "one", dtype="float64")
    two = _train(spec, tmp_path / "two", dtype="float64", nproc=2)
    assert two.epochs == one.epochs == 4
    assert _max_diff(one.params, two.params) < TOL
    _close_records(one.history, two.history)
    assert two.final == pytest.approx(one.final, rel=TOL, abs=TOL)
    # Rank 0 alone wrote the run directory, and says how many processes trained.
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir()
    )
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["nproc"] == 2 and summary["batch_size"] == 9
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [1, 2, 3, 4]


# slow (~10-40 s on 2 cores): the default run keeps the equality, kill and bad-input tests
@pytest.mark.slow
def test_a_one_process_checkpoint_resumes_in_two_processes(tmp_path: Path) -> None:
    spec = _spec(tmp_path, MLP)
    reference = _train(spec, tmp_path / "one", epochs=5)
    _train(spec, tmp_path / "run", epochs=3)
    resumed = _train(spec, tmp_path / "run", epochs=5, resume=True, nproc=2)
    assert resumed.epochs == 5
    assert _max_diff(reference.params, resumed.params) < TOL
    _close_records(reference.history, resumed.history)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["nproc"] == 2 and summary["epochs"] == 5


@pytest.mark.slow  # 14 s: the default run keeps the plain two-process check
def test_two_processes_with_batch_norm_and_fgsm_train_as_one(tmp_path: Path) -> None:
    spec = _spec(tmp_path, BATCH_NORM)
    one = _train(spec, tmp_path / "one")
    two = _train(spec, tmp_path / "two", nproc=2)
    assert any("running" in k or "mean" in k for k in one.params)  # state compared too
    assert _max_diff(one.params, two.params) < TOL
    _close_records(one.history, two.history)


# slow (~10-40 s on 2 cores): the default run keeps the equality, kill and bad-input tests
@pytest.mark.slow
def test_early_stopping_restore_best_and_claims_are_decided_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No later epoch beats the first by min_delta: stop after epoch 2, restore epoch 1.
    text = (
        MLP.replace(
            "  metrics: [binary_accuracy]",
            "  metrics: [binary_accuracy]\n"
            "  early_stopping: {monitor: val_loss, patience: 1, min_delta: 10.0,\n"
            "                   restore_best: true}",
        )
        + "expect:\n  - val_loss < 100\n"
    )
    spec, out = _spec(tmp_path, text), tmp_path / "two"
    one = _train(spec, tmp_path / "one")
    assert (
        main(
            ["train", str(spec), "--backend", "torch", "--nproc", "2", "--out", str(out), "--check"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert printed.count("expected outcome:") == 1 and "early_stopped after 2 epochs" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == one.status == "early_stopped"
    assert summary["epochs"] == one.epochs == 2 and summary["restored_best"] is True
    assert summary["best"] == {**one.best, "value": pytest.approx(one.best["value"], rel=TOL)}
    ck = checkpoint.load(out / checkpoint.FILENAME)
    assert _max_diff(one.params, ck.param) < TOL  # the restored (epoch 1) parameters


@pytest.mark.slow  # 14 s: the default run keeps the plain two-process check
def test_dropout_runs_repeat_exactly_for_the_same_nproc_and_seed(tmp_path: Path) -> None:
    spec = _spec(tmp_path, DROPOUT)
    a = _train(spec, tmp_path / "a", nproc=2)
    b = _train(spec, tmp_path / "b", nproc=2)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    # Each rank draws its own masks: rank 1 does not repeat rank 0's stream, so the run
    # differs from one process drawing for the whole batch.
    one = _train(spec, tmp_path / "one")
    assert _max_diff(one.params, a.params) > 1e-6


# slow (~10-40 s on 2 cores): the default run keeps the equality, kill and bad-input tests
@pytest.mark.slow
def test_torchrun_runs_the_unchanged_command(tmp_path: Path) -> None:
    spec, out = _spec(tmp_path, MLP), tmp_path / "run"
    one = _train(spec, tmp_path / "one")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "1",
            "--nproc-per-node",
            "2",
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            f"127.0.0.1:{_closed_port()}",
            "--local-addr",
            "127.0.0.1",
            "-m",
            "graphspec",
            "train",
            str(spec),
            "--backend",
            "torch",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("run saved in") == 1  # rank 0 speaks for the run
    saved = checkpoint.load(out / checkpoint.FILENAME)
    assert _max_diff(one.params, saved.param) < TOL
    assert json.loads((out / "summary.json").read_text())["nproc"] == 2


# ---- faults ----------------------------------------------------------------------------------


def _children(pid: int) -> dict[int, int]:
    """{rank: pid} of the worker processes under the launcher ``pid``."""
    ranks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            for item in env:
                if item.startswith(b"RANK="):
                    ranks[int(item[5:])] = int(entry.name)
    return ranks


def _epochs_logged(run: Path) -> int:
    try:
        return len((run / "metrics.jsonl").read_text().splitlines())
    except OSError:
        return 0


@pytest.fixture
def start() -> Any:
    """Start ``graphspec train --nproc 2`` in the background; stopped after the test."""
    procs: list[subprocess.Popen[str]] = []

    def run(spec: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [
                *GRAPHSPEC,
                "train",
                str(spec),
                "--backend",
                "torch",
                "--nproc",
                "2",
                "--out",
                str(out),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        procs.append(proc)
        return proc

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def _finish(proc: subprocess.Popen[str], timeout: float) -> str:
    """The launcher's stderr once it exits; a launcher still running after ``timeout`` is
    a hang: stopped (with its workers, by SIGTERM then SIGKILL) and reported."""
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            err = proc.communicate(timeout=60)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            err = proc.communicate()[1]
        pytest.fail(f"the run did not end within {timeout} s; stderr:\n{err}")


def _wait_for_epochs(proc: subprocess.Popen[str], run: Path, n: int) -> None:
    deadline = time.monotonic() + 120
    while _epochs_logged(run) < n or not (run / checkpoint.FILENAME).exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.1)


needs_proc = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")


@needs_proc
@pytest.mark.slow  # 36 s of workers killed and restarted
def test_killing_a_worker_stops_the_others_and_the_run_resumes(tmp_path: Path, start: Any) -> None:
    spec, run = _spec(tmp_path, SLOW_MLP), tmp_path / "run"
    proc = start(spec, run)
    _wait_for_epochs(proc, run, 1)
    workers = _children(proc.pid)
    assert sorted(workers) == [0, 1]
    os.kill(workers[1], signal.SIGKILL)
    err = _finish(proc, 90)  # bounded: the others stop, nothing hangs
    assert proc.returncode == 1, err
    assert "worker rank 1" in err and "SIGKILL" in err and "--resume" in err
    assert "Traceback" not in err
    saved = checkpoint.load(run / checkpoint.FILENAME)  # intact: the last complete one
    done = int(saved.meta["epoch"])
    assert done >= 1 and saved.meta["status"] == "running"
    for line in (run / "metrics.jsonl").read_text().splitlines():
        json.loads(line)
    again = subprocess.run(
        [
            *GRAPHSPEC,
            "train",
            str(spec),
            "--backend",
            "torch",
            "--nproc",
            "2",
            "--out",
            str(run),
            "--resume",
            "--epochs",
            str(done + 1),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert again.returncode == 0, again.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == done + 1
    assert _epochs_logged(run) == done + 1


# slow (~10-40 s on 2 cores): the default run keeps the equality, kill and bad-input tests
@pytest.mark.slow
@needs_proc
def test_sigterm_to_the_launcher_saves_and_prints_the_resume_command(
    tmp_path: Path, start: Any
) -> None:
    spec, run = _spec(tmp_path, SLOW_MLP), tmp_path / "run"
    proc = start(spec, run)
    _wait_for_epochs(proc, run, 1)
    proc.send_signal(signal.SIGTERM)
    err = _finish(proc, 90)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    assert "--resume" in err and "--nproc 2" in err
    saved = checkpoint.load(run / checkpoint.FILENAME)
    assert saved.meta["status"] == "interrupted"
    assert int(saved.meta["epoch"]) == _epochs_logged(run)
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"


# slow (~10-40 s on 2 cores): the default run keeps the equality, kill and bad-input tests
@pytest.mark.slow
@needs_proc
def test_max_restarts_resumes_a_restarted_group_by_itself(tmp_path: Path, start: Any) -> None:
    spec, run = _spec(tmp_path, SLOW_MLP), tmp_path / "run"
    proc = start(spec, run, "--max-restarts", "1", "--epochs", "4")
    _wait_for_epochs(proc, run, 1)
    epoch1 = (run / "metrics.jsonl").read_text().splitlines()[0]
    first = _children(proc.pid)
    os.kill(first[1], signal.SIGKILL)
    err = _finish(proc, 180)
    assert proc.returncode == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 4
    epochs = [json.loads(s)["epoch"] for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]
    # Resumed from the checkpoint, not from scratch: epoch 1's record (its wall time too)
    # comes from the checkpoint's history.
    assert (run / "metrics.jsonl").read_text().splitlines()[0] == epoch1
    assert "restarted" in err and "resuming from epoch" in err


# ---- bad input -----------------------------------------------------------------------------


def test_nproc_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec(tmp_path, MLP)
    assert main(["train", str(spec), "--backend", "torch", "--nproc", "0"]) == 2
    assert "--nproc" in capsys.readouterr().err
    with pytest.raises(gs.GraphspecError, match="positive"):
        gs.train(gs.load(spec), backend="torch", nproc=0, out=tmp_path / "r")


def test_nproc_beyond_the_machine_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path, MLP)
    many = str(max(64, 4 * (os.cpu_count() or 1)) + 1)
    assert (
        main(["train", str(spec), "--backend", "torch", "--nproc", many, "--dist-backend", "gloo"])
        == 2
    )
    err = capsys.readouterr().err
    assert f"--nproc {many}" in err and "core" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_nproc_with_the_numpy_backend_says_why_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path, MLP)
    assert main(["train", str(spec), "--backend", "numpy", "--nproc", "2"]) == 2
    assert "single-process reference" in capsys.readouterr().err
    with pytest.raises(gs.GraphspecError, match="single-process reference"):
        gs.train(gs.load(spec), backend="numpy", nproc=2, out=tmp_path / "r")


def test_max_restarts_needs_nproc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["train", str(_spec(tmp_path, MLP)), "--backend", "torch", "--max-restarts", "2"]) == 2
    )
    assert "--max-restarts needs --nproc" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_nccl_without_gpus_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path, MLP)
    assert (
        main(
            [
                "train",
                str(spec),
                "--backend",
                "torch",
                "--nproc",
                "1",
                "--dist-backend",
                "nccl",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "nccl needs a CUDA GPU" in err and "gloo" in err and "Traceback" not in err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_rendezvous_is_a_clear_error_in_bounded_time(tmp_path: Path) -> None:
    port = _closed_port()  # nothing listens there any more
    env = {
        **os.environ,
        "RANK": "1",
        "WORLD_SIZE": "2",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [
            *GRAPHSPEC,
            "train",
            str(_spec(tmp_path, MLP)),
            "--backend",
            "torch",
            "--dist-timeout",
            "3",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    assert f"cannot join the process group at 127.0.0.1:{port} within 3 s" in done.stderr
    assert "rank 1 of 2" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()  # rank 1 never writes the run directory


def test_torchrun_environment_must_be_numbers(tmp_path: Path) -> None:
    env = {**os.environ, "RANK": "one", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    done = subprocess.run(
        [*GRAPHSPEC, "train", str(_spec(tmp_path, MLP)), "--backend", "torch"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 2 and "RANK must be a non-negative integer" in done.stderr


# ---- GPUs (NCCL) ---------------------------------------------------------------------------


@cuda
@needs_cuda
def test_nccl_ranks_train_as_one_process(tmp_path: Path) -> None:
    n = min(2, torch.cuda.device_count())
    spec = _spec(tmp_path, BATCH_NORM)
    one = _train(spec, tmp_path / "one", device="cuda")
    many = _train(spec, tmp_path / "many", nproc=n, dist_backend="nccl")
    assert _max_diff(one.params, many.params) < 1e-9
    assert json.loads((tmp_path / "many" / "summary.json").read_text())["device"].startswith("cuda")
