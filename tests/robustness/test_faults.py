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

import errno
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


# ---- a signal in any epoch, the last one included ---------------------------------------------

# Random labels on a wide layer: validation loss is lowest early, so the run ends by putting
# the best epoch's parameters back -- the step a signal in the last epoch used to skip.
RESTORING = """\
graphspec: 1
name: restoring
seed: 3
inputs:
  x: [batch, 4]
  y: [batch, 1]
graph:
  - {id: hidden, op: linear, in: x, units: 32}
  - {id: act, op: tanh}
  - {id: logit, op: linear, units: 1}
loss:
  - {op: bce_with_logits, in: [logit, y]}
train:
  data: {source: random_labels, samples: 96, features: 4, val_split: 0.25}
  optimizer: {name: adam, lr: 0.05}
  epochs: 8
  batch_size: 16
  early_stopping: {monitor: val_loss, patience: 100, restore_best: true}
  metrics: [binary_accuracy]
"""

# SIGTERM to itself while epoch AT (0-based) trains: deterministic, whatever the machine's speed.
SIGNAL_IN_EPOCH = """
import os, signal
from graphspec_numpy.trainer import NumpyTrainer
real = NumpyTrainer.train_epoch
def train_epoch(self, batches, epoch):
    if epoch == {at}:
        os.kill(os.getpid(), signal.SIGTERM)
    return real(self, batches, epoch)
NumpyTrainer.train_epoch = train_epoch
"""


def summary_of(run: Path) -> dict[str, Any]:
    return json.loads((run / "summary.json").read_text())


@pytest.mark.parametrize("at", [3, 7], ids=["middle-epoch", "last-epoch"])
def test_sigterm_in_any_epoch_then_resume_ends_as_the_uninterrupted_run(
    tmp_path: Path, at: int, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, run = write(tmp_path, RESTORING), tmp_path / "run"
    full = train(spec, out=tmp_path / "full", progress=False)
    assert full.info["restored_best"] and full.best is not None and full.best["epoch"] < 8
    proc = spawn(["train", str(spec), "--out", str(run)], prelude=SIGNAL_IN_EPOCH.format(at=at))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err.decode()
    assert f"interrupted by SIGTERM after epoch {at + 1} of 8" in err.decode()
    assert summary_of(run)["status"] == "interrupted"
    rc, _ = run_cli(["train", str(spec), "--out", str(run), "--resume"], capsys)
    assert rc == 0
    got, want = summary_of(run), summary_of(tmp_path / "full")
    for key in ("status", "epochs", "final", "best", "restored_best"):
        assert got[key] == want[key], key
    assert got["status"] == "completed" and got["restored_best"] is True
    ck, ck_full = checkpoint.load(run / "checkpoint.npz"), checkpoint.load(tmp_path / "full"
                                                                          / "checkpoint.npz")
    for section in ("param", "last", "best", "opt"):  # the best parameters, and the trajectory
        assert_same_params(getattr(ck, section), getattr(ck_full, section), 0.0)
    assert_same_params(ck.param, full.params, 0.0)
    assert_same_history(metrics(run), full.history, 0.0)


# ---- one training per run directory ------------------------------------------------------------


def test_a_second_training_into_a_busy_run_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    spec, run = long_spec(tmp_path), tmp_path / "run"
    proc = spawn(["train", str(spec), "--out", str(run)], every_s=0.0)
    wait_for(run / "checkpoint.npz", proc)
    try:
        for flags in ([], ["--overwrite"], ["--resume"]):
            rc, err = run_cli(["train", str(spec), "--out", str(run), *flags], capsys)
            assert rc == 1, flags
            headline = err.splitlines()[0]
            assert headline.startswith(f"{run}: error: the run directory {run} is in use: "
                                       f"process {proc.pid} on host {socket.gethostname()}, "
                                       "started "), headline
            assert "is training into it" in headline and "train" in headline
        assert proc.poll() is None  # the holder was left alone, and still trains
    finally:
        kill9(proc)
    # The killed holder's lock file is still there, naming it; the kernel released its lock.
    assert f'"pid": {proc.pid}' in (run / ".graphspec.lock").read_text()
    k = checkpoint.load(run / "checkpoint.npz").meta["epoch"]
    rc, _ = run_cli(["train", str(spec), "--out", str(run), "--resume", "--epochs", str(k + 1)],
                    capsys)
    assert rc == 0
    assert checkpoint.load(run / "checkpoint.npz").meta["epoch"] == k + 1


def test_two_trainings_started_together_never_share_a_directory(tmp_path: Path) -> None:
    """Two processes into one --out: exactly one trains; the other says who holds it and
    leaves the directory to it."""
    spec, run = long_spec(tmp_path), tmp_path / "run"
    procs = [spawn(["train", str(spec), "--out", str(run), "--epochs", "30"]) for _ in range(2)]
    results = [(p.communicate(timeout=120), p.returncode) for p in procs]
    codes = sorted(rc for _, rc in results)
    assert codes == [0, 1], results
    (_, err), _ = next(r for r in results if r[1] == 1)
    # Refused by the lock while the other trains (naming it, or "another process" when it
    # had taken the lock but not yet written who it is, or was just releasing it), or by the
    # finished run it left behind.
    assert re.search(rf"is in use: (process \d+ on host|another process)|"
                     rf"{re.escape(str(run))} already holds a run", err.decode()), err.decode()
    winner = next(p for p, (_, rc) in zip(procs, results, strict=True) if rc == 0)
    assert json.loads((run / ".graphspec.lock").read_text() or "{}").get("pid") in (None,
                                                                                   winner.pid)
    assert summary_of(run)["epochs"] == 30 and len(metrics(run)) == 30


# ---- a disk that fills up ----------------------------------------------------------------------


def fail_fsync_of(monkeypatch: pytest.MonkeyPatch, name: str, nth: int) -> None:
    """The ``nth`` atomic write of run file ``name`` fails as on a full disk (its fsync:
    the last moment a real full disk reports it).  Tests run as root, where a read-only
    directory does not stop writes, so the failure is injected."""
    real, seen = os.fsync, []

    def fsync(fd: int) -> None:
        target = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        if target.startswith(f".{name}.") and target.endswith(".tmp"):
            seen.append(target)
            if len(seen) == nth:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_disk_full_names_the_file_and_the_resume_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(driver, "CHECKPOINT_EVERY_S", 0.0)  # a checkpoint after every epoch
    spec, run = long_spec(tmp_path), tmp_path / "run"
    ckpt = run / "checkpoint.npz"
    fail_fsync_of(monkeypatch, "checkpoint.npz", 3)
    rc, err = run_cli(["train", str(spec), "--out", str(run), "--epochs", "6"], capsys)
    assert rc == 1
    lines = err.splitlines()
    assert lines[0] == (f"{ckpt}: error: cannot write {ckpt}: No space left on device; the last "
                        f"checkpoint is intact: {ckpt}"), err
    again = f"graphspec train {spec} --resume --out {run} --epochs 6"
    assert lines[-1] == "hint: free some space or make the directory writable, then continue " \
                        f"with: {again}", err
    assert checkpoint.load(ckpt).meta["epoch"] == 2  # the third write failed, the second stands
    summary = summary_of(run)
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]
    assert not list(run.glob(".*.tmp"))
    monkeypatch.undo()
    rc, _ = run_cli(again.split()[1:], capsys)
    assert rc == 0
    full = train(spec, out=tmp_path / "full", epochs=6, progress=False)
    assert_same_params(checkpoint.load(ckpt).param, full.params, 0.0)
    assert_same_history(metrics(run), full.history, 0.0)


def test_disk_full_before_any_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, run = long_spec(tmp_path), tmp_path / "run"
    fail_fsync_of(monkeypatch, "metrics.jsonl", 1)  # the log, written before the first epoch
    rc, err = run_cli(["train", str(spec), "--out", str(run), "--epochs", "3"], capsys)
    assert rc == 1
    log = run / "metrics.jsonl"
    assert err.splitlines()[0] == f"{log}: error: cannot write {log}: No space left on device"
    assert err.splitlines()[-1] == ("hint: free some space or make the directory writable, then "
                                    "try again")
    assert not (run / "checkpoint.npz").exists()


# ---- a non-finite validation loss ----------------------------------------------------------------

SQRT_OF_INPUT = """\
graphspec: 1
name: val-nan
inputs:
  x: [batch, 1]
  t: [batch, 1]
graph:
  - {id: r, op: sqrt, in: x}
  - {id: out, op: linear, units: 1}
loss:
  - {op: mse, in: [out, t]}
train:
  data: {path: train.csv, val_path: val.csv}
  optimizer: {name: sgd, lr: 0.01}
  epochs: 50
  batch_size: 4
  early_stopping: {monitor: val_loss, patience: 2}
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_nan_validation_loss_is_an_error_not_early_stopping(
    tmp_path: Path, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The validation rows reach sqrt with negative values: before, NaN never 'improved',
    patience ran out, and the run ended as early_stopped with exit 0 and NaN tokens in its
    files."""
    (tmp_path / "train.csv").write_text("x,t\n" + "".join(f"{i / 8},{i % 2}\n" for i in range(8)))
    (tmp_path / "val.csv").write_text("x,t\n0.5,1\n-1.0,0\n")
    spec, run = write(tmp_path, SQRT_OF_INPUT), tmp_path / "run"
    rc, err = run_cli(["train", str(spec), "--out", str(run), *backend_args(backend)], capsys)
    assert rc == 1
    headline = err.splitlines()[0]
    assert headline.startswith(f"{spec}:7:5: error: val loss is nan after epoch 1: first "
                               "non-finite value on the validation data: node 'r' (sqrt at "), err
    assert headline.endswith("; no checkpoint had been written yet")
    summary = json.loads((run / "summary.json").read_text(),
                         parse_constant=lambda token: pytest.fail(f"{token} in summary.json"))
    assert summary["status"] == "failed" and summary["epochs"] == 0


@pytest.mark.slow  # three data-parallel launches: about half a minute
def test_data_parallel_runs_claim_their_directory_like_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--nproc: the launcher numbers the run once for all ranks, and rank 0 refuses a
    directory that holds a run as a single process does."""
    monkeypatch.chdir(tmp_path)
    spec = write(tmp_path, LONG.format(units=4, optimizer=SGD).replace("epochs: 100000",
                                                                      "epochs: 2"))
    argv = ["train", str(spec), "--backend", "torch", "--device", "cpu", "--nproc", "2"]
    rc, _ = run_cli(argv, capsys)
    assert rc == 0 and summary_of(Path("runs/long/1"))["nproc"] == 2
    assert sorted(p.name for p in Path("runs/long").iterdir()) == ["1"]
    rc, err = run_cli([*argv, "--out", "runs/long/1"], capsys)
    assert rc == 1 and "runs/long/1 already holds a run (completed after 2 epochs)" in err, err
    rc, _ = run_cli([*argv, "--out", "runs/long/1", "--resume", "--epochs", "3"], capsys)
    assert rc == 0 and summary_of(Path("runs/long/1"))["epochs"] == 3
