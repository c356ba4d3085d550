"""Pictures: each figure from plain data, and reports drawn from run directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import graphspec as gs
from graphspec.analysis import plots
from graphspec.cli import main
from graphspec.errors import GraphspecError

SPEC = """\
graphspec: 1
name: pic
seed: 0
inputs:
  x: [batch, 2]
  y: [batch, 1]
graph:
  - {id: hidden, op: linear, in: x, units: 8}
  - {id: act, op: tanh}
  - {id: drop, op: dropout, p: 0.1}
  - {id: logit, op: linear, units: 1}
outputs: [logit]
loss:
  - {op: bce_with_logits, in: [logit, y]}
  - {op: l2_penalty, weight: 1.0e-4}
train:
  data: {source: xor, samples: 96, noise: 0.1}
  optimizer: {name: sgd, lr: 0.5, momentum: 0.9}
  epochs: 4
  metrics: [binary_accuracy]
  log_grad_norms: true
"""
ANALYSIS = """\
analysis:
  - {procedure: grad_norms, at: init}
  - {procedure: fgsm, epsilons: [0, 0.2, 0.5]}
  - {procedure: decision_boundary, resolution: 30}
  - {procedure: mc_predict, samples: 4}
  - {procedure: estimator_variance, samples: 4}
"""


def looks_drawn(path: Path, min_size: tuple[int, int] = (300, 250)) -> np.ndarray:
    """The PNG as pixels, after checking it is a real, non-blank picture."""
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(path)
    assert img.shape[1] >= min_size[0] and img.shape[0] >= min_size[1]
    assert img[..., :3].std() > 0.05  # not a blank canvas
    return img


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("runs")
    (tmp / "spec.yaml").write_text(SPEC + ANALYSIS)
    out = []
    for name, seed in (("a", 0), ("b", 1)):
        gs.train(tmp / "spec.yaml", out=tmp / name, seed=seed, progress=False)
        out.append(tmp / name)
    return out


def test_report_of_one_run_draws_each_artefact(runs: list[Path], tmp_path: Path) -> None:
    written = plots.report([runs[0]], tmp_path)
    assert [p.name for p in written] == [
        "curves.png", "grad_norm_history.png", "grad_norms.png", "robustness.png",
        "boundary.png", "predictive.png", "estimator_variance.png"]
    for p in written:
        looks_drawn(p)


def test_report_of_several_runs_overlays_them(runs: list[Path], tmp_path: Path) -> None:
    written = plots.report(runs, tmp_path)
    assert {p.name for p in written} >= {"curves.png", "boundary.png", "robustness.png"}
    wide = looks_drawn(tmp_path / "boundary.png")
    single = looks_drawn(plots.report([runs[0]], tmp_path / "one")[4])
    assert wide.shape[1] > 1.5 * single.shape[1]  # one panel per run


def test_report_errors(tmp_path: Path) -> None:
    with pytest.raises(GraphspecError, match="at least one"):
        plots.report([])
    with pytest.raises(GraphspecError, match="not a run directory"):
        plots.report([tmp_path])
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n')
    with pytest.raises(GraphspecError) as info:
        plots.read_history(tmp_path)
    assert info.value.location is not None and info.value.location.line == 2


def test_run_labels_stay_distinct() -> None:
    assert plots.run_labels([Path("r/a"), Path("r/b")]) == ["a", "b"]
    assert plots.run_labels([Path("x/run"), Path("y/run")]) == ["x/run", "y/run"]


def test_curves_leave_out_terms_equal_to_the_loss_and_zero_terms(tmp_path: Path) -> None:
    hist = [{"epoch": e, "train_loss": 1.0 / e, "train_mse": 1.0 / e, "train_z.reinforce": 0.0,
             "val_loss": 2.0 / e, "val_mse": 2.0 / e, "train_accuracy": 0.5 + e / 10,
             "train_l2_penalty": 3.0, "grad_norm/w": 1.0} for e in (1, 2, 3)]
    assert plots._metric_names({"r": hist}) == ["loss", "accuracy", "l2_penalty"]
    looks_drawn(plots.plot_curves({"r": hist, "s": hist[:1]}, tmp_path / "c.png", "t"))


def test_each_figure_from_plain_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    norms = {"sigmoid": {"norms": {f"l{i}.weight": 10.0 ** -i for i in range(6)}, "at": "init"},
             "relu": {f"l{i}.weight": 1.0 for i in range(6)}}
    looks_drawn(plots.plot_grad_norms(norms, tmp_path / "g.png"))
    looks_drawn(plots.plot_robustness({"plain": ([0, 0.1, 0.2], [0.9, 0.5, 0.2]),
                                       "adv": {"epsilons": [0, 0.1], "accuracy": [0.9, 0.8]}},
                                      tmp_path / "r.png"))
    looks_drawn(plots.plot_estimator_variance(
        {"reinforce": {"total_variance": 100.0, "params": {"mu": {"variance": 50.0}}},
         "reparam": {"total_variance": 0.1, "params": {"mu": {"variance": 0.05}}}},
        tmp_path / "v.png"))
    x = np.linspace(-3, 3, 60)
    looks_drawn(plots.plot_predictive_band(x, np.sin(x), x, np.sin(x), 0.1 + 0 * x,
                                           tmp_path / "p.png"))
    pts = rng.normal(size=(50, 2))
    labels = (pts[:, 0] * pts[:, 1] > 0).astype(float)
    looks_drawn(plots.plot_decision_boundary(lambda g: g[:, :1] * g[:, 1:], pts, labels,
                                             tmp_path / "b.png", resolution=40))
    three = rng.integers(0, 3, size=50)
    looks_drawn(plots.plot_decision_boundary(lambda g: np.stack([g[:, 0], g[:, 1], -g[:, 0]],
                                                                -1),
                                             pts, np.eye(3)[three], tmp_path / "b3.png",
                                             resolution=40))
    with pytest.raises(GraphspecError, match="2-D inputs"):
        plots.plot_decision_boundary(lambda g: g, np.zeros((4, 3)), np.zeros(4),
                                     tmp_path / "x.png")


def test_train_plot_and_report_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "--epochs", "2", "--plot"]) == 0
    err = capsys.readouterr().err
    for name in ("curves.png", "boundary.png", "grad_norm_history.png"):
        assert f"wrote {run / name}" in err
        looks_drawn(run / name)
    index = json.loads((run / "analysis.json").read_text())["entries"]
    assert [e["procedure"] for e in index] == ["decision_boundary"]
    assert main(["report", str(run), str(run), "-o", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "curves.png").is_file()
