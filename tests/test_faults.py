"""Faults during training, through the command line: non-finite losses, signals, kill -9.

* A NaN or Inf loss stops the run with ``file:line:col: error:`` naming the epoch, the step
  and the first node that produced a non-finite value (numpy and torch); the last good
  checkpoint stays loadable.
* SIGINT or SIGTERM saves a checkpoint and exits cleanly: status 128 + the signal
  (130, 143), a message saying how to continue, no traceback.
* SIGKILL at any moment -- also exactly in the middle of a checkpoint write -- leaves the
  previous checkpoint loadable; ``--resume`` then repeats the uninterrupted run exactly on
  numpy and to 1e-10 (float64) on torch.

Real processes are started with ``python -m graphspec`` (or the CLI's ``main`` behind a
small prelude that sets the checkpoint interval); each waits for its first checkpoint, so
the tests depend on no fixed sleep for correctness.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from graphspec.cli import main
from graphspec.train import checkpoint, driver, train

PY = sys.executable
ENV = {**os.environ, "NO_COLOR": "1"}
START_TIMEOUT_S = 180  # a fresh interpreter importing torch on a loaded CI machine

# exp overflows to inf after a few epochs of too large a step: the culprit is node 'e'.
BLOWUP = """\
graphspec: 1
name: blowup
inputs:
  x: [batch, 3]
  t: [batch, 1]
graph:
  - {id: h, op: linear, in: x, units: 4}
  - {id: e, op: exp}
  - {id: out, op: linear, units: 1}
loss:
  - {op: mse, in: [out, t]}
train:
  data: {source: linear, samples: 64, features: 3}
  optimizer: {name: sgd, lr: 0.1}
  epochs: 200
  batch_size: 16
"""

# sqrt of a linear unit's negative outputs: NaN at the very first step, node 'r'.
NAN_AT_ONCE = """\
graphspec: 1
name: nan-at-once
inputs:
  x: [batch, 2]
  y: [batch, 1]
graph:
  - {id: h, op: linear, in: x, units: 4}
  - {id: r, op: sqrt}
  - {id: logit, op: linear, units: 1}
loss:
  - {op: bce_with_logits, in: [logit, y]}
train:
  data: {source: xor, samples: 64}
  epochs: 5
  batch_size: 16
"""

# Trains "forever" (until a signal); momentum and a step schedule give the optimizer state
# and the lr factor that a resume must restore.
LONG = """\
graphspec: 1
name: long
seed: 1
inputs:
  x: [batch, 2]
  y: [batch, 1]
graph:
  - {{id: hidden, op: linear, in: x, units: {units}}}
  - {{id: act, op: tanh}}
  - {{id: wide, op: linear, units: {units}}}
  - {{id: act2, op: tanh}}
  - {{id: logit, op: linear, units: 1}}
loss:
  - {{op: bce_with_logits, in: [logit, y]}}
train:
  data: {{source: xor, samples: 64, noise: 0.2, val_split: 0.25}}
  optimizer: {optimizer}
  schedule: {{name: step, step_size: 3, gamma: 0.9}}
  epochs: 100000
  batch_size: 16
  metrics: [binary_accuracy]
"""
SGD = "{name: sgd, lr: 0.1, momentum: 0.9}"
ADAM = "{name: adam, lr: 0.01}"


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def long_spec(tmp_path: Path, units: int = 8, optimizer: str = SGD) -> Path:
    return write(tmp_path, LONG.format(units=units, optimizer=optimizer), f"long{units}.yaml")


def backend_args(backend: str) -> list[str]:
    return ["--backend", backend] + (["--device", "cpu"] if backend == "torch" else [])


def spawn(argv: list[str], every_s: float | None = None, prelude: str = "") -> subprocess.Popen:
    """``graphspec ARGV`` in a new process; ``every_s`` overrides the checkpoint interval."""
    if every_s is None and not prelude:
        cmd = [PY, "-m", "graphspec", *argv]
    else:
        code = (f"import sys\nimport graphspec.train.driver as d\nd.CHECKPOINT_EVERY_S = "
                f"{every_s if every_s is not None else driver.CHECKPOINT_EVERY_S!r}\n{prelude}\n"
                "from graphspec.cli import main\nsys.exit(main(sys.argv[1:]))\n")
        cmd = [PY, "-c", code, *argv]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)


def wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not path.exists():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the process ended ({proc.returncode}) before {path.name}:\n"
                        f"{err.decode()}")
        assert time.monotonic() < deadline, f"no {path.name} after {START_TIMEOUT_S} s"
        time.sleep(0.01)


def kill9(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def strip_time(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in rec.items() if k != "time"} for rec in history]


def assert_same_params(a: dict[str, np.ndarray], b: dict[str, np.ndarray], tol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if tol == 0:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            np.testing.assert_allclose(a[k], b[k], rtol=tol, atol=tol, err_msg=k)


def assert_same_history(a: list[dict[str, Any]], b: list[dict[str, Any]], tol: float) -> None:
    a, b = strip_time(a), strip_time(b)
    if tol == 0:
        assert a == b
        return
    assert [r.keys() for r in a] == [r.keys() for r in b]
    for ra, rb in zip(a, b, strict=True):
        for k in ra:
            assert ra[k] == pytest.approx(rb[k], rel=tol, abs=tol), (ra["epoch"], k)


def metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "internal error" not in err, err
    return rc, err


BACKENDS = ["numpy", "torch"]
TOL = {"numpy": 0.0, "torch": 1e-10}


# ---- non-finite losses -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_inf_loss_names_epoch_step_and_node_and_keeps_the_checkpoint(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(driver, "CHECKPOINT_EVERY_S", 0.0)  # a checkpoint after every epoch
    spec, run = write(tmp_path, BLOWUP), tmp_path / "run"
    rc, err = run_cli(["train", str(spec), "--out", str(run), *backend_args(backend)], capsys)
    assert rc == 1
    headline = err.splitlines()[0]
    # Located at the node that overflowed: 'e' (exp) on line 8, whichever backend ran.
    assert headline.startswith(f"{spec}:8:5: error: loss is inf at epoch "), err
    m = re.search(r"at epoch (\d+), step (\d+)", headline)
    assert m is not None
    epoch, step = int(m[1]), int(m[2])
    assert epoch >= 2 and step >= 1
    assert "node 'e' (exp at " in headline
    assert f"the last good checkpoint is kept: {run / 'checkpoint.npz'}" in headline
    assert any(line.startswith("hint: lower the learning rate") for line in err.splitlines())
    ck = checkpoint.load(run / "checkpoint.npz")
    assert ck.meta["epoch"] == epoch - 1 and ck.meta["status"] == "running"
    assert all(np.isfinite(v).all() for v in ck.param.values())
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    # The kept checkpoint is a working one: resuming to its own epoch finishes from it.
    done = train(spec, out=run, resume=True, epochs=epoch - 1, backend=backend, device="cpu",
                 progress=False)
    assert done.epochs == epoch - 1
    assert_same_params(done.params, ck.param, 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_at_the_first_step(
    tmp_path: Path, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, run = write(tmp_path, NAN_AT_ONCE), tmp_path / "run"
    rc, err = run_cli(["train", str(spec), "--out", str(run), *backend_args(backend)], capsys)
    assert rc == 1
    headline = err.splitlines()[0]
    assert headline.startswith(f"{spec}:8:5: error: loss is nan at epoch 1, step 1"), err
    assert "node 'r' (sqrt at " in headline
    assert "no checkpoint had been written yet" in headline
    assert not (run / "checkpoint.npz").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["epochs"] == 0


# ---- signals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sig, backend", [
    (signal.SIGINT, "numpy"),
    (signal.SIGTERM, "numpy"),
    (signal.SIGTERM, "torch"),
])
def test_signal_saves_a_checkpoint_and_exits_cleanly(
    tmp_path: Path, sig: signal.Signals, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, run = long_spec(tmp_path), tmp_path / "run"
    proc = spawn(["train", str(spec), "--out", str(run), *backend_args(backend)])
    wait_for(run / "checkpoint.npz", proc)  # the first epoch is always saved
    proc.send_signal(sig)
    out, err_bytes = proc.communicate(timeout=120)
    err = err_bytes.decode()
    assert proc.returncode == 128 + sig, err  # 130 for SIGINT, 143 for SIGTERM
    assert "Traceback" not in err + out.decode()
    name = signal.Signals(sig).name
    assert re.search(rf"^graphspec: training interrupted by {name} after epoch \d+ of 100000; "
                     rf"checkpoint saved to {re.escape(str(run / 'checkpoint.npz'))}$", err,
                     re.M), err
    assert f"hint: continue with: graphspec train {spec} --resume --out {run}" in err
    ck = checkpoint.load(run / "checkpoint.npz")
    summary = json.loads((run / "summary.json").read_text())
    assert ck.meta["status"] == summary["status"] == "interrupted"
    k = summary["epochs"]
    assert k == ck.meta["epoch"] >= 1
    assert len(metrics(run)) == k
    # --resume continues as if nothing had happened.
    rc, _ = run_cli(["train", str(spec), "--out", str(run), "--resume", "--epochs", str(k + 2),
                     *backend_args(backend)], capsys)
    assert rc == 0
    full = train(spec, out=tmp_path / "full", epochs=k + 2, backend=backend, device="cpu",
                 progress=False)
    assert_same_params(checkpoint.load(run / "checkpoint.npz").param, full.params, TOL[backend])
    assert_same_history(metrics(run), full.history, TOL[backend])


# ---- kill -9 -----------------------------------------------------------------------------------

HALF_WRITE = """
import io, os, time
import numpy as np
real = np.savez
calls = []
def savez(f, **arrays):
    calls.append(1)
    if len(calls) == {n}:  # write half of this checkpoint, then hang until killed
        buf = io.BytesIO()
        real(buf, **arrays)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        open({marker!r}, "w").close()
        time.sleep(600)
    return real(f, **arrays)
np.savez = savez
"""


def test_kill_in_the_middle_of_a_checkpoint_write(tmp_path: Path) -> None:
    """Deterministically mid-write: the process has half of checkpoint 3 on disk when it is
    killed.  Checkpoint 2 survives, and resume cleans up and reproduces the full run."""
    spec, run, marker = long_spec(tmp_path), tmp_path / "run", tmp_path / "writing"
    proc = spawn(["train", str(spec), "--out", str(run)], every_s=0.0,
                 prelude=HALF_WRITE.format(n=3, marker=str(marker)))
    wait_for(marker, proc)
    kill9(proc)
    torn = list(run.glob(".checkpoint.npz.*.tmp"))
    assert len(torn) == 1 and torn[0].stat().st_size > 0  # the half-written file
    ck = checkpoint.load(run / "checkpoint.npz")
    assert ck.meta["epoch"] == 2
    resumed = train(spec, out=run, resume=True, epochs=5, progress=False)
    assert not list(run.glob(".*.tmp"))
    full = train(spec, out=tmp_path / "full", epochs=5, progress=False)
    assert_same_params(resumed.params, full.params, 0.0)
    assert_same_history(resumed.history, full.history, 0.0)
    assert [r["epoch"] for r in metrics(run)] == [1, 2, 3, 4, 5]


def test_kill_at_random_moments_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    """Several processes writing a checkpoint (a few MB: two moment buffers of a 150k
    parameter layer) after every epoch, killed at different moments: most kills land
    during a write.  Each leaves a loadable checkpoint from which resume is exact."""
    spec = long_spec(tmp_path, units=400, optimizer=ADAM)
    delays = [0.0, 0.02, 0.07, 0.15, 0.3]
    procs = []
    for i, _ in enumerate(delays):
        run = tmp_path / f"run{i}"
        procs.append((run, spawn(["train", str(spec), "--out", str(run)], every_s=0.0)))
    for (run, proc), delay in zip(procs, delays, strict=True):
        wait_for(run / "checkpoint.npz", proc)
        time.sleep(delay)
        kill9(proc)
    epochs = []
    for run, _ in procs:
        ck = checkpoint.load(run / "checkpoint.npz")
        assert ck.meta["epoch"] >= 1 and ck.meta["status"] == "running"
        epochs.append(ck.meta["epoch"])
    # Resume the furthest run and compare with an uninterrupted one.
    run = procs[int(np.argmax(epochs))][0]
    k = max(epochs)
    resumed = train(spec, out=run, resume=True, epochs=k + 1, progress=False)
    full = train(spec, out=tmp_path / "full", epochs=k + 1, progress=False)
    assert_same_params(resumed.params, full.params, 0.0)
    assert_same_history(resumed.history, full.history, 0.0)
    assert not list(run.glob(".*.tmp"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_after_kill_reproduces_the_uninterrupted_run(
    tmp_path: Path, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, run = long_spec(tmp_path, optimizer=ADAM), tmp_path / "run"
    proc = spawn(["train", str(spec), "--out", str(run), *backend_args(backend)], every_s=0.0)
    wait_for(run / "checkpoint.npz", proc)
    time.sleep(0.2)
    kill9(proc)
    k = checkpoint.load(run / "checkpoint.npz").meta["epoch"]
    rc, _ = run_cli(["train", str(spec), "--out", str(run), "--resume", "--epochs", str(k + 3),
                     *backend_args(backend)], capsys)
    assert rc == 0
    full = train(spec, out=tmp_path / "full", epochs=k + 3, backend=backend, device="cpu",
                 progress=False)
    ck = checkpoint.load(run / "checkpoint.npz")
    assert ck.meta["status"] == "completed" and ck.meta["epoch"] == k + 3
    assert_same_params(ck.param, full.params, TOL[backend])
    assert_same_history(metrics(run), full.history, TOL[backend])
