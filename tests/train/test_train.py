"""The training driver with the numpy backend: outcomes, early stopping, determinism,
resume, checkpoints, interrupts and failures."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from paths import SPEC_DIR

import graphspec as gs
from graphspec.errors import CheckpointError, DataError, NonFiniteLoss, SpecError, TrainingError
from graphspec.train import TrainingInterrupted, checkpoint, driver, train
from graphspec.train.atomic import WriteError
from graphspec.train.runlog import Progress

MLP = """\
graphspec: 1
name: mlp-test
seed: 1
inputs:
  x: [batch, 2]
  y: [batch, 1]
graph:
  - {{id: hidden, op: linear, in: x, units: {units}}}
  - {{id: act, op: tanh}}
  - {{id: logit, op: linear, units: 1}}
outputs: [logit]
loss:
  - {{op: bce_with_logits, in: [logit, y]}}
  - {{op: l2_penalty, weight: 1.0e-4}}
train:
  data: {{source: {source}, samples: {samples}, noise: 0.2, val_split: 0.25}}
  optimizer: {optimizer}
  schedule: {{name: step, step_size: 3, gamma: 0.7}}
  epochs: {epochs}
  batch_size: 16
  clip_grad_norm: 5.0
  metrics: [binary_accuracy]
{extra}
"""


def write_spec(tmp_path: Path, name: str = "spec.yaml", *, units: int = 8, source: str = "xor",
               samples: int = 160, epochs: int = 12, extra: str = "",
               optimizer: str = "{name: adam, lr: 0.05, groups: [{params: [biases], "
               "weight_decay: 0.0}], weight_decay: 0.001}") -> Path:
    path = tmp_path / name
    path.write_text(MLP.format(units=units, source=source, samples=samples, epochs=epochs,
                               optimizer=optimizer, extra=extra))
    return path


def strip_time(history):
    return [{k: v for k, v in rec.items() if k != "time"} for rec in history]


def assert_same_run(a, b):
    assert strip_time(a.history) == strip_time(b.history)
    assert a.params.keys() == b.params.keys()
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)


# ---- outcomes (the "done when") ----------------------------------------------------


def test_xor_mlp_reaches_full_accuracy(tmp_path):
    run = train(SPEC_DIR / "xor.yaml", out=tmp_path / "run", progress=False)
    assert run.final["train_binary_accuracy"] == 1.0
    assert run.final["val_binary_accuracy"] == 1.0
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"metrics.jsonl", "summary.json", "checkpoint.npz"} <= files
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == run.epochs and json.loads(lines[-1])["epoch"] == run.epochs
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == run.status and summary["params"] == 33
    assert summary["backend"] == "numpy" and summary["spec"].endswith("xor.yaml")
    assert "binary_accuracy 1" in run.summary()


def test_logistic_regression_fails_on_xor(tmp_path):
    run = train(SPEC_DIR / "logistic_xor.yaml", out=tmp_path / "run", progress=False)
    assert run.final["train_binary_accuracy"] <= 0.75
    assert run.final["val_binary_accuracy"] <= 0.75
    assert max(r["train_binary_accuracy"] for r in run.history) <= 0.75


def test_logistic_regression_separates_blobs(tmp_path):
    run = train(SPEC_DIR / "logistic_blobs.yaml", out=tmp_path / "run", progress=False)
    assert run.final["train_binary_accuracy"] >= 0.97
    assert run.final["val_binary_accuracy"] >= 0.97


def test_history_records(tmp_path):
    run = train(write_spec(tmp_path, epochs=4, extra="  log_grad_norms: true"),
                out=tmp_path / "run", progress=False)
    rec = run.history[0]
    for key in ("epoch", "lr", "time", "train_loss", "train_bce_with_logits", "train_l2_penalty",
                "train_binary_accuracy", "val_loss", "val_binary_accuracy",
                "grad_norm/hidden.weight"):
        assert key in rec, key
    assert [r["lr"] for r in run.history] == pytest.approx([0.05, 0.05, 0.05, 0.035])


# ---- early stopping, determinism ---------------------------------------------------------


def test_early_stopping_restores_best(tmp_path):
    # Random labels: a wide net memorizes the training set and validation loss rises.
    spec = write_spec(tmp_path, units=64, source="random_labels", samples=120, epochs=200,
                      optimizer="{name: adam, lr: 0.05}",
                      extra="  early_stopping: {monitor: val_loss, patience: 4}")
    run = train(spec, out=tmp_path / "run", progress=False)
    assert run.status == "early_stopped"
    best = run.best
    assert best is not None and best["epoch"] == run.epochs - 4
    assert run.final["val_loss"] == best["value"]  # the final parameters are the best ones
    assert run.final["val_loss"] < run.history[-1]["val_loss"]
    assert run.info["restored_best"] is True
    # The checkpoint's param/ holds the best parameters; last/ the last epoch's.
    ck = checkpoint.load(tmp_path / "run" / "checkpoint.npz")
    for k, v in run.params.items():
        np.testing.assert_array_equal(ck.param[k], v)
    assert ck.last and not all(np.array_equal(ck.last[k], ck.param[k]) for k in ck.param)


def test_bad_monitor_is_a_located_spec_error(tmp_path):
    spec = write_spec(tmp_path, extra="  early_stopping: {monitor: val_acuracy}")
    with pytest.raises(SpecError, match="does not log") as e:
        train(spec, out=tmp_path / "run", progress=False)
    assert e.value.location is not None and e.value.location.line == 23


def test_runs_are_deterministic_for_a_seed(tmp_path):
    spec = write_spec(tmp_path, epochs=5)
    a = train(spec, out=tmp_path / "a", progress=False)
    b = train(spec, out=tmp_path / "b", progress=False)
    assert_same_run(a, b)
    c = train(spec, out=tmp_path / "c", progress=False, seed=2)
    assert strip_time(c.history) != strip_time(a.history)


# ---- resume ------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", [
    "{name: adam, lr: 0.05, weight_decay: 0.001, groups: [{params: [biases], lr: 0.01}]}",
    "{name: sgd, lr: 0.2, momentum: 0.9, nesterov: true}",
    "{name: rmsprop, lr: 0.01, centered: true, momentum: 0.5}",
])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, optimizer):
    spec = write_spec(tmp_path, epochs=10, optimizer=optimizer,
                      extra="  early_stopping: {monitor: val_loss, patience: 50}")
    full = train(spec, out=tmp_path / "full", progress=False)
    first = train(spec, out=tmp_path / "part", epochs=4, progress=False)
    assert first.epochs == 4
    resumed = train(spec, out=tmp_path / "part", resume=True, progress=False)
    assert resumed.epochs == 10 and resumed.status == full.status
    assert_same_run(full, resumed)
    assert resumed.final == full.final and resumed.best == full.best
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["epoch"] for ln in lines] == list(range(1, 11))


def test_resume_of_a_finished_run_trains_no_further(tmp_path):
    spec = write_spec(tmp_path, epochs=3)
    done = train(spec, out=tmp_path / "run", progress=False)
    again = train(spec, out=tmp_path / "run", resume=True, progress=False)
    assert again.epochs == 3 and again.final == done.final


def test_resume_checks_the_checkpoint_fits(tmp_path):
    spec = write_spec(tmp_path, epochs=2)
    train(spec, out=tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="do not fit spec .mlp-test.: 3 of another shape"):
        train(write_spec(tmp_path, "wide.yaml", units=4, epochs=4), out=tmp_path / "run",
              resume=True, progress=False)
    with pytest.raises(CheckpointError, match="dtype"):
        train(spec, out=tmp_path / "run", resume=True, dtype="float32", progress=False)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(spec, out=tmp_path / "nothing", resume=True, progress=False)


def test_sigint_saves_a_checkpoint_and_resume_reproduces(tmp_path):
    spec = write_spec(tmp_path, epochs=100_000, samples=64,
                      optimizer="{name: sgd, lr: 0.1, momentum: 0.9}")
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(TrainingInterrupted) as e:
            train(spec, out=tmp_path / "run", progress=False)
    finally:
        timer.cancel()
    stopped = e.value.result.epochs
    assert 0 < stopped < 100_000 and e.value.signal == signal.SIGINT
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "interrupted"
    resumed = train(spec, out=tmp_path / "run", resume=True, epochs=stopped + 3, progress=False)
    full = train(spec, out=tmp_path / "full", epochs=stopped + 3, progress=False)
    assert_same_run(full, resumed)


def _start_training(tmp_path: Path, spec: Path, out: Path) -> subprocess.Popen:
    code = ("import graphspec.train.driver as d; d.CHECKPOINT_EVERY_S = 0.0; "
            f"d.train({str(spec)!r}, out={str(out)!r}, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (out / "checkpoint.npz").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.02)
    time.sleep(0.3)  # a few more epochs, each ending in a checkpoint write
    return proc


def test_killed_process_leaves_a_loadable_checkpoint_and_resume_is_exact(tmp_path):
    spec = write_spec(tmp_path, epochs=100_000, samples=64)
    proc = _start_training(tmp_path, spec, tmp_path / "run")
    proc.kill()  # SIGKILL: no handler runs, possibly in the middle of a write
    proc.wait()
    ck = checkpoint.load(tmp_path / "run" / "checkpoint.npz")
    k = ck.meta["epoch"]
    resumed = train(spec, out=tmp_path / "run", resume=True, epochs=k + 2, progress=False)
    full = train(spec, out=tmp_path / "full", epochs=k + 2, progress=False)
    assert_same_run(full, resumed)
    assert not list((tmp_path / "run").glob(".checkpoint.npz.*.tmp"))


def test_sigterm_stops_a_process_cleanly(tmp_path):
    spec = write_spec(tmp_path, epochs=100_000, samples=64)
    proc = _start_training(tmp_path, spec, tmp_path / "run")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert b"TrainingInterrupted" in err and b"SIGTERM" in err
    ck = checkpoint.load(tmp_path / "run" / "checkpoint.npz")
    assert ck.meta["status"] == "interrupted"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs"] == ck.meta["epoch"]


# ---- checkpoints -------------------------------------------------------------------------


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    spec = write_spec(tmp_path, epochs=2)
    train(spec, out=tmp_path / "run", progress=False)
    path = tmp_path / "run" / "checkpoint.npz"
    before = path.read_bytes()

    def dying_savez(f, **arrays):  # a crash half-way through writing the new file
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.np, "savez", dying_savez)
    with pytest.raises(WriteError, match=r"cannot write .*checkpoint.npz: disk full"):
        train(spec, out=tmp_path / "run", epochs=4, resume=True, progress=False)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert checkpoint.load(path).meta["epoch"] == 2


def test_checkpoints_are_throttled(tmp_path, monkeypatch):
    saved = []
    real = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda p, ck: (saved.append(ck.meta["epoch"]),
                                                           real(p, ck)))
    train(write_spec(tmp_path, epochs=30, samples=64), out=tmp_path / "run", progress=False)
    assert saved[0] == 1 and saved[-1] == 30 and len(saved) <= 4  # first, ~1/s, last


def _rewrite(path: Path, change) -> None:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("damage, message", [
    ("truncate", "truncated or corrupt"),
    ("flip", "truncated or corrupt|integrity"),
    ("tamper", "integrity check"),
    ("pickle", "without pickle"),
    ("garbage", "truncated or corrupt"),
])
def test_damaged_checkpoints_are_refused(tmp_path, damage, message):
    spec = write_spec(tmp_path, epochs=2)
    train(spec, out=tmp_path / "run", progress=False)
    path = tmp_path / "run" / "checkpoint.npz"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            info = z.getinfo("param/hidden.weight.npy")
        at = info.header_offset + 30 + len(info.filename) + info.compress_size - 3
        path.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:])
    elif damage == "tamper":  # a consistent zip whose contents changed after writing
        _rewrite(path, lambda a: a.__setitem__("param/hidden.weight",
                                               a["param/hidden.weight"] + 1.0))
    elif damage == "pickle":
        _rewrite(path, lambda a: a.__setitem__("opt/evil", np.array([{"x": 1}], dtype=object)))
    else:
        path.write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match=message):
        train(spec, out=tmp_path / "run", epochs=3, resume=True, progress=False)


# ---- failures ----------------------------------------------------------------------------


def test_nonfinite_loss_names_epoch_step_and_node(tmp_path, monkeypatch):
    monkeypatch.setattr(driver, "CHECKPOINT_EVERY_S", 0.0)  # a checkpoint after every epoch
    path = tmp_path / "spec.yaml"
    path.write_text(DIVERGING)
    with pytest.raises(NonFiniteLoss) as e:
        train(path, out=tmp_path / "run", progress=False)
    err = e.value
    assert err.epoch >= 1 and f"epoch {err.epoch + 1}, step {err.step + 1}" in err.message
    assert err.node in ("out", "mse") and f"'{err.node}'" in err.message
    assert err.location is not None and err.location.file.endswith("spec.yaml")
    assert "last good checkpoint is kept" in err.message
    ck = checkpoint.load(tmp_path / "run" / "checkpoint.npz")
    assert ck.meta["epoch"] == err.epoch  # the epoch before the failure, intact
    assert all(np.isfinite(v).all() for v in ck.param.values())
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "non-finite" in summary["error"]


DIVERGING = (
    "graphspec: 1\nname: diverge\ninputs:\n  x: [batch, 3]\n  t: [batch, 1]\n"
    "graph:\n  - {id: out, op: linear, in: x, units: 1}\nloss:\n  - {op: mse, in: [out, t]}\n"
    "train:\n  data: {source: linear, samples: 64, features: 3}\n"
    "  optimizer: {name: sgd, lr: 3.0}\n  epochs: 500\n  batch_size: 16\n")


def test_nonfinite_loss_located_by_the_reference_for_other_backends(tmp_path, monkeypatch):
    from graphspec import backend as backend_mod

    class OpaqueTrainer:  # reports a bad loss but cannot say where
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def train_epoch(self, batches, epoch):
            try:
                return self._inner.train_epoch(batches, epoch)
            except NonFiniteLoss as e:
                raise NonFiniteLoss("loss is inf", e.epoch, e.step) from None

    class OpaqueProgram:
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def trainer(self, *args):
            return OpaqueTrainer(self._inner.trainer(*args))

    class OpaqueBackend:  # declares no capabilities: it does not locate non-finite values
        name = "opaque"

        def compile(self, ir, options):
            return OpaqueProgram(gs.get_backend("numpy").compile(ir, options))

    monkeypatch.setitem(backend_mod._LOADED, "opaque", OpaqueBackend())
    (tmp_path / "spec.yaml").write_text(DIVERGING)
    with pytest.raises(NonFiniteLoss, match="on the numpy reference the first non-finite") as e:
        train(tmp_path / "spec.yaml", backend="opaque", out=tmp_path / "run", progress=False)
    assert e.value.node in ("out", "mse") and e.value.location.line in (7, 9)


def test_data_errors_surface_from_train(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(write_spec(tmp_path).read_text().replace(
        "{source: xor, samples: 160, noise: 0.2, val_split: 0.25}", "{path: nowhere.csv}"))
    with pytest.raises(DataError, match="data file not found") as e:
        train(spec, out=tmp_path / "run", progress=False)
    assert e.value.location is not None and e.value.location.line == 16


def test_spec_without_loss_cannot_train(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("graphspec: 1\nname: s\ninputs: {x: [batch, 2]}\n"
                    "graph: [{op: linear, in: x, units: 1}]\ntrain: {data: {source: xor}}\n")
    with pytest.raises(SpecError, match="loss"):
        train(path, out=tmp_path / "run", progress=False)


def test_progress_bar_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress(10, True, stream, metrics=["acc"])
        bar.update(10, {"epoch": 10, "train_loss": 0.25, "train_term": 1.0, "train_acc": 0.5,
                        "val_acc": 0.75}, force=True)
        bar.close()
    assert "epoch 10/10" in tty.getvalue() and "train_loss 0.25  val_acc 0.75" in tty.getvalue()
    assert "term" not in tty.getvalue()
    assert pipe.getvalue() == ""


def test_public_api_spec_object(tmp_path):
    spec = gs.load(write_spec(tmp_path, epochs=1))
    run = gs.train(spec, out=tmp_path / "run", progress=False)
    assert run.run_dir == tmp_path / "run" and run.epochs == 1


# ---- continuing a finished run, starting from another run --------------------------------------


def test_continuing_a_finished_run_equals_the_longer_run(tmp_path):
    """10 epochs, then --resume to 20: bit for bit the 20-epoch run.  The 10-epoch run ended
    by restoring its best epoch, so continuing must start from last/, not from param/."""
    spec = write_spec(tmp_path, units=32, source="random_labels", samples=96, epochs=10,
                      optimizer="{name: adam, lr: 0.05}",
                      extra="  early_stopping: {monitor: val_loss, patience: 100}")
    short = train(spec, out=tmp_path / "run", progress=False)
    assert short.status == "completed" and short.info["restored_best"]
    longer = train(spec, out=tmp_path / "run", resume=True, epochs=20, progress=False)
    full = train(spec, out=tmp_path / "full", epochs=20, progress=False)
    assert longer.epochs == 20 and longer.resumed_from == 10
    assert_same_run(full, longer)
    assert longer.final == full.final and longer.best == full.best
    assert longer.status == full.status
    for section in ("param", "last", "best", "opt"):
        a = getattr(checkpoint.load(tmp_path / "run" / "checkpoint.npz"), section)
        b = getattr(checkpoint.load(tmp_path / "full" / "checkpoint.npz"), section)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), section


def test_an_early_stopped_run_stays_stopped_with_more_epochs(tmp_path):
    spec = write_spec(tmp_path, units=64, source="random_labels", samples=120, epochs=200,
                      optimizer="{name: adam, lr: 0.05}",
                      extra="  early_stopping: {monitor: val_loss, patience: 4}")
    stopped = train(spec, out=tmp_path / "run", progress=False)
    assert stopped.status == "early_stopped" and stopped.epochs < 200
    again = train(spec, out=tmp_path / "run", resume=True, epochs=400, progress=False)
    full = train(spec, out=tmp_path / "full", epochs=400, progress=False)
    assert again.status == full.status == "early_stopped"
    assert again.epochs == full.epochs == stopped.epochs
    assert_same_run(full, again)
    assert again.final == full.final


def test_resume_to_fewer_epochs_than_trained_is_refused(tmp_path):
    spec = write_spec(tmp_path, epochs=4)
    train(spec, out=tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="has trained 4 epochs already; it cannot resume "
                                            "to 2") as e:
        train(spec, out=tmp_path / "run", resume=True, epochs=2, progress=False)
    assert e.value.hint == "resume with --epochs 4 or more"


def test_init_from_starts_from_the_trained_parameters(tmp_path, monkeypatch):
    from graphspec_numpy.program import NumpyProgram

    spec = write_spec(tmp_path, epochs=3, extra="  early_stopping: {monitor: val_loss}")
    first = train(spec, out=tmp_path / "first", progress=False)
    starts = []
    real = NumpyProgram.trainer
    monkeypatch.setattr(NumpyProgram, "trainer", lambda self, params, *a: (
        starts.append({k: v.copy() for k, v in params.items()}), real(self, params, *a))[1])
    for source in (tmp_path / "first", tmp_path / "first" / "checkpoint.npz"):
        tuned = train(spec, out=tmp_path / "tuned" / source.name, init_from=source,
                      progress=False)
        assert tuned.epochs == 3 and tuned.info["init_from"] == str(tmp_path / "first" /
                                                                    "checkpoint.npz")
        # The first run's final (restored best) parameters, not a fresh initialization.
        assert_params_equal(starts[-1], first.params)
    fresh = train(spec, out=tmp_path / "fresh", progress=False)
    assert not all(np.array_equal(starts[-1][k], first.params[k]) for k in first.params)
    assert strip_time(fresh.history) == strip_time(first.history)


def assert_params_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_init_from_another_spec_lists_the_differences(tmp_path):
    train(write_spec(tmp_path, epochs=1), out=tmp_path / "small", progress=False)
    wide = write_spec(tmp_path, "wide.yaml", units=5, epochs=1)
    with pytest.raises(CheckpointError) as e:
        train(wide, out=tmp_path / "wide", init_from=tmp_path / "small", progress=False)
    assert "do not fit spec 'mlp-test': 3 of another shape" in e.value.message
    notes = [text for text, _ in e.value.notes]
    assert notes == [
        "shape: 'hidden.weight': the spec's shape is [2, 5], the checkpoint's [2, 8]",
        "shape: 'hidden.bias': the spec's shape is [5], the checkpoint's [8]",
        "shape: 'logit.weight': the spec's shape is [5, 1], the checkpoint's [8, 1]",
    ]
    assert not (tmp_path / "wide").exists()  # nothing was written: no empty run left behind


def test_compare_params_names_missing_extra_shapes_and_dtypes(tmp_path):
    ir = gs.build(gs.load(write_spec(tmp_path)))
    params = gs.init_params(ir)
    assert not checkpoint.compare_params(params, checkpoint.expected_shapes(ir))
    params["hidden.weight"] = np.zeros((3, 8))
    del params["logit.bias"]
    params["other.weight"] = np.zeros(2)
    params["hidden.bias"] = np.array(["a"] * 8)
    m = checkpoint.compare_params(params, checkpoint.expected_shapes(ir))
    assert m.missing == [("logit.bias", (1,))]
    assert m.extra == [("other.weight", (2,))]
    assert m.shapes == [("hidden.weight", (2, 8), (3, 8))]
    assert m.dtypes == [("hidden.bias", "<U1")]
    assert m.counts() == "1 missing, 1 extra, 1 of another shape, 1 not real numbers"


# ---- run directories ----------------------------------------------------------------------------


def test_a_finished_run_is_not_replaced_without_overwrite(tmp_path):
    spec = write_spec(tmp_path, epochs=2)
    train(spec, out=tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "checkpoint.npz").read_bytes()
    with pytest.raises(TrainingError, match=r"already holds a run \(completed after 2 epochs\); "
                                            "not replacing it") as e:
        train(spec, out=tmp_path / "run", epochs=3, progress=False)
    assert e.value.hint == ("continue it with --resume, start over with --overwrite, or choose "
                            "another --out")
    assert (tmp_path / "run" / "checkpoint.npz").read_bytes() == before
    (tmp_path / "run" / "tensorboard").mkdir()
    (tmp_path / "run" / "tensorboard" / "events.old").write_text("the old run's")
    (tmp_path / "run" / "notes.txt").write_text("mine")
    again = train(spec, out=tmp_path / "run", epochs=3, overwrite=True, progress=False)
    assert again.epochs == 3 and len((tmp_path / "run" / "metrics.jsonl").read_text()
                                     .splitlines()) == 3
    assert len((tmp_path / "run" / "metrics.csv").read_text().splitlines()) == 1 + 3
    assert not (tmp_path / "run" / "tensorboard").exists()  # the old run's event files
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # not a run file: kept
    with pytest.raises(TrainingError, match="cannot be combined with overwrite"):
        train(spec, out=tmp_path / "run", resume=True, overwrite=True, progress=False)


def test_default_run_directories_are_numbered(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path, epochs=1)
    a = train(spec, progress=False)
    b = train(spec, progress=False)
    assert a.run_dir == Path("runs/mlp-test/1") and b.run_dir == Path("runs/mlp-test/2")
    resumed = train(spec, resume=True, epochs=2, progress=False)  # the latest run
    assert resumed.run_dir == b.run_dir and resumed.epochs == 2
    # A failure before anything is written leaves no numbered directory behind.
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("{source: xor, samples: 160, noise: 0.2, "
                                            "val_split: 0.25}", "{path: nowhere.csv}"))
    with pytest.raises(DataError):
        train(bad, progress=False)
    assert sorted(p.name for p in Path("runs/mlp-test").iterdir()) == ["1", "2"]


def test_next_version_skips_numbers_taken_meanwhile(tmp_path, monkeypatch):
    from graphspec.train import rundir

    (tmp_path / "3").mkdir()
    (tmp_path / "notes").mkdir()
    assert rundir.next_version(tmp_path) == tmp_path / "4"
    # Another process took 5 and 6 after this one listed the folder: mkdir is the claim.
    (tmp_path / "5").mkdir()
    (tmp_path / "6").mkdir()
    monkeypatch.setattr(rundir, "versions", lambda folder: [3, 4])
    assert rundir.next_version(tmp_path) == tmp_path / "7"
    assert rundir.latest_version(tmp_path) == tmp_path / "4"  # through the patched listing


def test_the_run_lock_is_exclusive_and_released(tmp_path):
    from graphspec.train.lock import RunLock

    with RunLock(tmp_path):
        with pytest.raises(TrainingError, match=rf"is in use: process {os.getpid()} on host "):
            with RunLock(tmp_path):
                pass
    with RunLock(tmp_path):  # released on exit
        pass


# ---- strict JSON ---------------------------------------------------------------------------

def strict_json(text):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_run_files_are_strict_json(tmp_path):
    from graphspec.train.runlog import MetricsLog, read_metrics, write_json_atomic

    run = train(write_spec(tmp_path, epochs=2), out=tmp_path / "run", progress=False)
    for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines():
        strict_json(line)
    strict_json((tmp_path / "run" / "summary.json").read_text())
    # Non-finite numbers (a metric that is NaN on some data) are written as null.
    log = MetricsLog(tmp_path, [{"epoch": 1, "train_acc": float("nan")}])
    log.append({"epoch": 2, "train_acc": float("inf"), "lr": 0.1})
    log.close()
    assert [strict_json(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [
        {"epoch": 1, "train_acc": None}, {"epoch": 2, "train_acc": None, "lr": 0.1}]
    assert read_metrics(tmp_path)[1] == {"epoch": 2, "train_acc": None, "lr": 0.1}
    write_json_atomic(tmp_path / "s.json", {"final": {"val_acc": -math.inf}, "n": run.epochs})
    assert strict_json((tmp_path / "s.json").read_text()) == {"final": {"val_acc": None}, "n": 2}
    # And a checkpoint whose history holds such a null still resumes.
    ck = checkpoint.load(tmp_path / "run" / "checkpoint.npz")
    ck.meta["history"][0]["train_binary_accuracy"] = float("nan")
    checkpoint.save(tmp_path / "run" / "checkpoint.npz", ck)
    assert checkpoint.load(tmp_path / "run" / "checkpoint.npz").meta["history"][0][
        "train_binary_accuracy"] is None


def test_a_failed_append_to_the_metrics_log_names_the_file(tmp_path):
    from graphspec.train.runlog import MetricsLog

    class FullDisk(io.StringIO):
        def write(self, text):
            raise OSError(28, "No space left on device")

    log = MetricsLog(tmp_path, [])
    log._f.close()
    log._f = FullDisk()
    with pytest.raises(WriteError) as e:
        log.append({"epoch": 1, "train_loss": 0.5})
    assert e.value.message == f"cannot write {tmp_path / 'metrics.jsonl'}: No space left on device"
    assert e.value.location.file == str(tmp_path / "metrics.jsonl")
    log.close()
