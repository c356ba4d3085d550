"""After training: test data, predict, evaluate, gs.load_run, generated modules loading real
checkpoints, --set overrides, sweeps, report tables, logs and label corruption -- all on
runs written by ``graphspec train``."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from paths import ROOT, XOR

import graphspec as gs
from graphspec.cli import main
from graphspec.runs.run import confusion_matrix, load_run
from graphspec.train.data import load_data

BACKENDS = ("numpy", "torch")

BLOBS = """\
graphspec: 1
name: blobs3
seed: 1
inputs:
  x: [batch, 2]
  y: {shape: [batch], dtype: int}
graph:
  - {id: hidden, op: linear, in: x, units: 8}
  - {op: tanh}
  - {id: logits, op: linear, units: 3}
outputs: [logits]
loss:
  - {op: cross_entropy, in: [logits, y]}
train:
  data: {source: blobs, samples: 150, classes: 3, noise: 1.5, val_split: 0.2, test_split: 0.2}
  optimizer: {name: adam, lr: 0.05}
  epochs: 8
  batch_size: 32
  metrics: [accuracy]
expect:
  - test_accuracy >= 0.5
"""


def _train(spec: Path, out: Path, *extra: str) -> None:
    assert main(["train", str(spec), "--out", str(out), *extra]) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real runs: the 3-class spec on both backends, XOR (binary) on numpy."""
    base = tmp_path_factory.mktemp("runs")
    spec = base / "blobs3.yaml"
    spec.write_text(BLOBS)
    out = {}
    for backend in BACKENDS:
        out[backend] = base / f"blobs-{backend}"
        _train(spec, out[backend], "--backend", backend)
    out["xor"] = base / "xor"
    _train(XOR, out["xor"], "--epochs", "5")
    out["spec"] = spec
    return out


def _snapshot(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def _features(run_dir: Path) -> np.ndarray:
    spec = load_run(run_dir).spec
    return load_data(spec, gs.build(spec), spec.seed).splits["test"]["x"]


# ---- 1. test data -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_test_split_is_reported_on_the_final_parameters(runs: dict, backend: str) -> None:
    summary = json.loads((runs[backend] / "summary.json").read_text())
    assert summary["samples"] == {"train": 90, "val": 30, "test": 30}
    run = load_run(runs[backend])
    # The test metrics are those of the parameters the run ended with, on the test rows.
    ev = run.evaluate({"x": _features(runs[backend]), "y": _test_labels(runs[backend])})
    assert ev.metrics["accuracy"] == pytest.approx(summary["final"]["test_accuracy"], abs=1e-12)
    assert ev.metrics["loss"] == pytest.approx(summary["final"]["test_loss"], rel=1e-9)
    # Never read while training: no per-epoch test metrics.
    assert not any(k.startswith("test_") for rec in run.history for k in rec)


def _test_labels(run_dir: Path) -> np.ndarray:
    spec = load_run(run_dir).spec
    return load_data(spec, gs.build(spec), spec.seed).splits["test"]["y"]


def test_test_rows_are_apart_from_training_and_validation() -> None:
    spec = gs.loads(BLOBS)
    splits = load_data(spec, gs.build(spec), 0).splits
    rows = {k: {tuple(r) for r in v["x"]} for k, v in splits.items()}
    assert not rows["test"] & rows["train"] and not rows["test"] & rows["val"]
    # Without a test split, train and validation are drawn exactly as before.
    plain = gs.loads(BLOBS.replace(", test_split: 0.2", ""))
    again = load_data(plain, gs.build(plain), 0).splits
    assert set(again) == {"train", "val"} and len(again["train"]["x"]) == 120


def test_expect_reads_test_metrics(runs: dict) -> None:
    from graphspec.train.expect import check_run

    (outcome,) = check_run(["test_accuracy >= 0.0"], runs["numpy"])
    assert outcome.held


# ---- 2. predict ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_csv_without_targets(runs: dict, backend: str, tmp_path: Path) -> None:
    x = _features(runs[backend])
    data = tmp_path / "new.csv"
    np.savetxt(data, x, delimiter=",")
    out = tmp_path / "pred.csv"
    before = _snapshot(runs[backend])
    assert main(["predict", str(runs[backend]), "--data", str(data), "-o", str(out)]) == 0
    assert _snapshot(runs[backend]) == before
    table = np.genfromtxt(out, delimiter=",", names=True)
    run = load_run(runs[backend])
    prog = gs.compile(run.ir, "numpy")
    logits = prog.forward(run.params, {"x": x})["logits"]
    got = np.stack([table[f"logits_{j}"] for j in range(3)], axis=1)
    assert np.allclose(got, logits, rtol=1e-10, atol=1e-12)
    assert (table["logits_class"] == logits.argmax(axis=1)).all()
    probs = np.stack([table[f"logits_prob_{j}"] for j in range(3)], axis=1)
    assert np.allclose(probs.sum(axis=1), 1.0) and (probs.argmax(axis=1) == logits.argmax(1)).all()


def test_predict_npz_and_batches(runs: dict, tmp_path: Path) -> None:
    x = _features(runs["numpy"])
    np.savez(tmp_path / "x.npz", x=x)
    out = tmp_path / "pred.npz"
    assert (
        main(
            [
                "predict",
                str(runs["numpy"]),
                "--data",
                str(tmp_path / "x.npz"),
                "-o",
                str(out),
                "--batch-size",
                "7",
                "--backend",
                "torch",
            ]
        )
        == 0
    )
    with np.load(out) as f:
        assert set(f.files) == {"logits", "logits_class", "logits_prob"}
        whole = load_run(runs["numpy"]).predict(x)
        assert np.allclose(f["logits"], whole["logits"], rtol=1e-9)


def test_predict_last_checkpoint(runs: dict) -> None:
    run = load_run(runs["numpy"])
    x = _features(runs["numpy"])
    last = run.predict(x, checkpoint="last")["logits"]
    direct = gs.compile(run.ir, "numpy").forward(run.last_params, {"x": x})["logits"]
    assert np.array_equal(last, direct)


# ---- 3. evaluate --------------------------------------------------------------------------------


def test_evaluate_confusion_matrix_by_hand(
    runs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = _features(runs["numpy"]), _test_labels(runs["numpy"])
    data = tmp_path / "test.npz"
    np.savez(data, x=x, y=y)
    assert main(["evaluate", str(runs["numpy"]), "--data", str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    pred = load_run(runs["numpy"]).predict(x)["logits_class"]
    hand = [
        [sum(1 for t, p in zip(y, pred) if t == i and p == j) for j in range(3)] for i in range(3)
    ]
    assert result["confusion"]["logits"] == hand
    assert result["rows"] == len(y) == sum(map(sum, hand))
    assert result["metrics"]["accuracy"] == pytest.approx(np.trace(hand) / len(y))
    assert (
        main(
            [
                "evaluate",
                str(runs["numpy"]),
                "--data",
                str(data),
                "--plot",
                str(tmp_path / "cm.png"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "confusion matrix of 'logits'" in text and "accuracy" in text
    assert (tmp_path / "cm.png").stat().st_size > 1000


def test_confusion_matrix_counts() -> None:
    m = confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]), 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_evaluate_binary_run_on_csv(
    runs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    data = tmp_path / "lab.csv"
    np.savetxt(data, np.c_[x, [0, 1, 1, 0]], delimiter=",")
    assert main(["evaluate", str(runs["xor"]), "--data", str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["confusion"]["logit"] == [[2, 0], [0, 2]]
    assert result["metrics"]["binary_accuracy"] == 1.0


# ---- 4. gs.load_run ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_load_run_predict_equals_generated_module(runs: dict, backend: str, tmp_path: Path) -> None:
    run = gs.load_run(runs[backend])
    assert run.spec.name == "blobs3" and run.summary["backend"] == backend
    assert len(run.history) == 8 and run.history[-1]["epoch"] == 8
    assert set(run.params) == set(run.ir.params)
    x = _features(runs[backend])
    # the generated numpy module, written to disk and imported on its own
    prog = run.program(backend="numpy")
    path = tmp_path / "model.py"
    path.write_text(prog.source())
    mod = _import(path)
    expected = mod.forward(mod.load_checkpoint(runs[backend] / "checkpoint.npz"), {"x": x})
    got = run.predict({"x": x})
    assert np.allclose(got["logits"], expected["logits"], rtol=1e-12, atol=1e-12)


def _import(path: Path) -> object:
    spec = importlib.util.spec_from_file_location(path.stem + "_h5", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---- 5. generated modules and real checkpoints ----------------------------------------------


def test_torch_module_loads_a_real_checkpoint(runs: dict, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    run = gs.load_run(runs["torch"])
    prog = run.program(backend="torch", device="cpu", dtype="float64")
    prog.write(tmp_path / "model.py")
    mod = _import(tmp_path / "model.py")
    model = mod.Model().double()  # type: ignore[attr-defined]
    model.load_params(str(runs["torch"] / "checkpoint.npz"))
    x = _features(runs["torch"])
    with torch.no_grad():
        logits = model({"x": torch.as_tensor(x)})["logits"]
    assert np.allclose(logits.numpy(), run.predict(x)["logits"], rtol=1e-10, atol=1e-12)


def test_numpy_module_as_a_script_without_graphspec(runs: dict, tmp_path: Path) -> None:
    run = gs.load_run(runs["numpy"])
    (tmp_path / "model.py").write_text(run.program(backend="numpy").source())
    x = _features(runs["numpy"])
    np.savez(tmp_path / "x.npz", x=x)
    site = str(Path(np.__file__).resolve().parents[1])
    runner = (
        f"import sys, runpy; sys.path.append({site!r}); "
        "sys.argv = ['model.py', '--checkpoint', 'ckpt.npz', '--data', 'x.npz', "
        "'-o', 'out.npz']; runpy.run_path('model.py', run_name='__main__')"
    )
    (tmp_path / "ckpt.npz").write_bytes((runs["numpy"] / "checkpoint.npz").read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", runner],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "out.npz") as f:
        assert np.allclose(f["logits"], run.predict(x)["logits"], rtol=1e-12)
    # printed as CSV without -o
    printer = runner.replace(", '-o', 'out.npz'", "")
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", printer],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "logits_0,logits_1,logits_2" and len(lines) == len(x) + 1


# ---- bad input -------------------------------------------------------------------------------


def test_predict_data_not_matching_the_inputs(
    runs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(runs["numpy"])
    np.savez(tmp_path / "bad.npz", features=np.zeros((3, 2)), other=np.zeros(3))
    assert main(["predict", str(runs["numpy"]), "--data", str(tmp_path / "bad.npz")]) == 1
    err = capsys.readouterr().err
    assert "missing 'x'" in err and "unexpected 'features', 'other'" in err
    assert "Traceback" not in err
    np.savez(tmp_path / "bad2.npz", x=np.zeros((3, 2)))
    assert main(["evaluate", str(runs["numpy"]), "--data", str(tmp_path / "bad2.npz")]) == 1
    assert "missing 'y'" in capsys.readouterr().err
    (tmp_path / "wide.csv").write_text("1,2,3,4\n")
    assert main(["predict", str(runs["numpy"]), "--data", str(tmp_path / "wide.csv")]) == 1
    assert "has 4 columns" in capsys.readouterr().err
    assert _snapshot(runs["numpy"]) == before


def test_run_dir_without_checkpoint(
    runs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "run"
    broken.mkdir()
    for name in ("summary.json", "spec.yaml"):
        (broken / name).write_bytes((runs["numpy"] / name).read_bytes())
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 2)))
    assert main(["predict", str(broken), "--data", str(tmp_path / "x.npz")]) == 1
    assert "no checkpoint" in capsys.readouterr().err
    assert sorted(p.name for p in broken.iterdir()) == ["spec.yaml", "summary.json"]
    assert main(["predict", str(tmp_path), "--data", str(tmp_path / "x.npz")]) == 1
    assert "not a finished run" in capsys.readouterr().err


def test_checkpoint_of_another_spec(
    runs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mixed = tmp_path / "run"
    mixed.mkdir()
    for name in ("summary.json", "spec.yaml"):
        (mixed / name).write_bytes((runs["numpy"] / name).read_bytes())
    (mixed / "checkpoint.npz").write_bytes((runs["xor"] / "checkpoint.npz").read_bytes())
    before = _snapshot(mixed)
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 2)))
    assert main(["predict", str(mixed), "--data", str(tmp_path / "x.npz")]) == 1
    err = capsys.readouterr().err
    assert "the parameters of this checkpoint do not fit spec" in err
    assert "missing: 'logits.weight' (the spec's shape [8, 3])" in err
    assert "extra: 'logit.weight' (shape [8, 1]), which the spec does not have" in err
    assert _snapshot(mixed) == before


# ---- 8. overrides ------------------------------------------------------------------------------


def test_set_overrides_reach_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(
        XOR,
        out,
        "--epochs",
        "2",
        "--set",
        "train.optimizer.lr=0.05",
        "--set",
        "graph.hidden.units=4",
        "--set",
        "seed=3",
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overrides"] == ["train.optimizer.lr=0.05", "graph.hidden.units=4", "seed=3"]
    assert summary["seed"] == 3 and summary["params"] == 2 * 4 + 4 + 4 + 1
    run = load_run(out)
    assert run.spec.train.optimizer.lr == 0.05 and run.spec.seed == 3
    assert "--set graph.hidden.units=4" in (out / "spec.yaml").read_text()


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("train.optimiser.lr=1", "unknown key 'optimiser' in train"),
        ("graph.hiden.units=3", "graph has no node 'hiden'"),
        ("train.optimizer.lr=abc", "train.optimizer.lr"),
        ("seed.x=1", "'seed' is 0, not a mapping"),
        ("novalue", "an override is PATH=VALUE"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "inspect", "compile", "train", "verify"])
def test_set_errors_name_the_argument(
    arg: str, message: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = {"compile": ["-o", str(tmp_path / "m.py")], "train": ["--out", str(tmp_path / "r")]}
    assert main([command, str(XOR), "--set", arg, *extra.get(command, [])]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"--set {arg}: error: ") and message in err
    assert not (tmp_path / "r").exists()


def test_set_works_for_inspect_and_compile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(XOR), "--set", "graph.hidden.units=4"]) == 0
    hidden = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("hidden"))
    assert hidden.split()[3:5] == ["[batch,", "4]"] and hidden.split()[5] == "12"
    assert (
        main(["compile", str(XOR), "--set", "graph.hidden.units=4", "-o", str(tmp_path / "m.py")])
        == 0
    )
    with np.load(tmp_path / "m.npz") as f:
        assert f["param/hidden.weight"].shape == (2, 4)


def test_set_unknown_path_suggests() -> None:
    with pytest.raises(gs.SpecError) as e:
        gs.load(XOR, ["train.optimiser.lr=1"])
    assert e.value.hint == "did you mean 'optimizer'?"
    with pytest.raises(gs.SpecError) as e:
        gs.load(XOR, ["graph.hiden.units=1"])
    assert e.value.hint == "did you mean 'hidden'?"


def test_set_applies_to_variants() -> None:
    from graphspec.spec.variants import expand_variants

    variants = expand_variants(gs.load(ROOT / "specs" / "random_labels.yaml", ["train.epochs=3"]))
    assert {v.train.epochs for v in variants.values()} == {3}
    assert all(v.overrides == ("train.epochs=3",) for v in variants.values())


# ---- 9. sweeps and report ---------------------------------------------------------------------


def test_sweep_survives_a_failing_member(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    # lr 1e300 diverges at once: that member fails, the others finish.
    argv = [
        "sweep",
        str(XOR),
        "--grid",
        "train.optimizer.lr=1.0e300,0.5,0.1",
        "--grid",
        "seed=1",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--jobs",
        "2",
    ]
    assert main(argv) == 1
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [r["train.optimizer.lr"] for r in rows] == ["1e+300", "0.5", "0.1"]
    assert [r["seed"] for r in rows] == ["1"] * 3
    assert rows[0]["status"] == "failed (exit 1)" and "loss is inf" in rows[0]["error"]
    assert [r["status"] for r in rows[1:]] == ["completed"] * 2
    assert rows[1]["epochs"] == "2" and float(rows[1]["val_binary_accuracy"]) >= 0
    assert (out / "sweep.md").read_text().startswith("| run | train.optimizer.lr | seed |")
    assert (out / "sweep.png").is_file() and (out / "curves.png").is_file()
    assert "1 of 3 runs failed" in capsys.readouterr().err
    assert "loss is inf" in (out / "logs" / "0_lr=1.0e300_seed=1.log").read_text()
    members = sorted(p.name for p in out.iterdir() if p.name[0].isdigit())
    assert members == ["0_lr=1.0e300_seed=1", "1_lr=0.5_seed=1", "2_lr=0.1_seed=1"]


def test_sweep_bad_grid_value_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    assert main(["sweep", str(XOR), "--grid", "train.optimizer.lr=0.5,abc", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("--set train.optimizer.lr=abc: error:") and "1_lr=abc" in err
    assert not out.exists()
    assert main(["sweep", str(XOR), "--grid", "seed", "--out", str(out)]) == 2


def test_report_prints_a_summary_table(
    runs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(runs["numpy"]), str(runs["torch"]), "-o", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["run", "status", "epochs", "best_epoch", "best_val_loss"]
    assert "test_accuracy" in lines[0] and len(lines) == 3
    assert lines[1].split()[:3] == ["blobs-numpy", "completed", "8"]


# ---- 10. logs ---------------------------------------------------------------------------------


def test_epoch_lines_and_csv_without_a_terminal(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphspec",
            "train",
            str(XOR),
            "--out",
            str(out),
            "--epochs",
            "5",
            "--log-every",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("epoch ")]
    assert not [ln for ln in proc.stderr.splitlines() if ln.startswith("epoch ")]
    assert [ln.split()[1] for ln in lines] == ["2/5", "4/5", "5/5"]
    assert "train_loss" in lines[0] and "val_binary_accuracy" in lines[0]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,") and len(rows) == 6
    history = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [float(r.split(",")[1]) for r in rows[1:]] == [h["train_loss"] for h in history]


def test_tensorboard_missing_names_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    out = tmp_path / "run"
    assert main(["train", str(XOR), "--out", str(out), "--tensorboard"]) == 1
    err = capsys.readouterr().err
    assert "pip install 'graphspec[tensorboard]'" in err and "Traceback" not in err
    assert not out.exists()


def test_tensorboard_event_files_hold_the_metrics(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    _train(XOR, out, "--epochs", "3", "--tensorboard")
    (events,) = (out / "tensorboard").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events))
    acc.Reload()
    history = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    got = [(e.step, e.value) for e in acc.Scalars("loss/val")]
    assert got == [(h["epoch"], pytest.approx(h["val_loss"], rel=1e-6)) for h in history]
    assert "binary_accuracy/train" in acc.Tags()["scalars"]


# ---- 11. label corruption ----------------------------------------------------------------------


def test_label_noise_corrupts_training_labels_only() -> None:
    base = BLOBS.replace("samples: 150", "samples: 3000")
    clean = gs.loads(base)
    noisy = gs.loads(base.replace("test_split: 0.2", "test_split: 0.2, label_noise: 0.6"))
    a = load_data(clean, gs.build(clean), 0).splits
    b = load_data(noisy, gs.build(noisy), 0).splits
    for split in ("train", "val", "test"):
        assert np.array_equal(a[split]["x"], b[split]["x"])
    assert np.array_equal(a["test"]["y"], b["test"]["y"])
    changed = np.mean(a["train"]["y"] != b["train"]["y"])
    assert changed == pytest.approx(0.6 * 2 / 3, abs=0.04)  # a random class may be the true one
    with pytest.raises(gs.SpecError):
        gs.loads(base.replace("test_split: 0.2", "test_split: 0.2, label_noise: 1.5"))


def test_label_noise_needs_classes(tmp_path: Path) -> None:
    spec = gs.loads(
        BLOBS.replace("source: blobs", "source: linear").replace(
            "test_split: 0.2", "label_noise: 0.5"
        )
    )
    with pytest.raises(gs.DataError, match="label_noise needs class labels"):
        load_data(spec, gs.build(spec), 0)


# ---- the training column mapping, variants, the test split's isolation -----------------------

CSV_SPEC = """\
graphspec: 1
name: from-csv
inputs:
  x: [batch, 2]
  y: [batch, 1]
graph:
  - {id: logit, op: linear, in: x, units: 1}
loss:
  - {op: bce_with_logits, in: [logit, y]}
train:
  data: {path: train.csv, columns: {x: [a, b], y: label}, val_split: 0.25}
  epochs: 3
  metrics: [binary_accuracy]
variants:
  small: {}
  large: {graph: {logit: {units: 1}}, train: {epochs: 2}}
"""


def test_predict_reads_the_training_column_mapping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    rows = ["a,b,label"] + [f"{p},{q},{int(p > q)}" for p, q in x]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(CSV_SPEC)
    _train(spec, tmp_path / "runs")
    run = load_run(tmp_path / "runs" / "large")
    assert run.spec.variant == "large" and run.spec.train.epochs == 2
    assert len(run.history) == 2
    # header columns by the spec's names, in another order, without the label
    (tmp_path / "new.csv").write_text("b,a\n" + "".join(f"{q},{p}\n" for p, q in x[:5]))
    got = run.predict(tmp_path / "new.csv")["logit"]
    want = gs.compile(run.ir, "numpy").forward(run.params, {"x": x[:5]})["logit"]
    assert np.allclose(got, want, rtol=1e-12)
    (tmp_path / "odd.csv").write_text("a,c\n1,2\n")
    assert (
        main(["predict", str(tmp_path / "runs" / "small"), "--data", str(tmp_path / "odd.csv")])
        == 1
    )
    err = capsys.readouterr().err
    assert "missing 'b'" in err and "unexpected 'c'" in err


def test_test_data_cannot_be_monitored(tmp_path: Path) -> None:
    body = BLOBS.replace(
        "  metrics: [accuracy]", "  metrics: [accuracy]\n  early_stopping: {monitor: test_accuracy}"
    )
    with pytest.raises(gs.SpecError, match="never used for early stopping"):
        gs.train(gs.loads(body), out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
