"""Analysis procedures: what each computes and writes, on both backends, and located errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import graphspec as gs
from graphspec.analysis import REGISTRY, plan, read_index
from graphspec.analysis.pictures import add_boundary
from graphspec.errors import SpecError
from graphspec.spec.variants import expand_variants

CLASSIFIER = """\
graphspec: 1
name: cls
seed: 0
inputs:
  x: [batch, 2]
  y: [batch, 1]
graph:
  - {id: hidden, op: linear, in: x, units: 16}
  - {id: act, op: tanh}
  - {id: drop, op: dropout, p: 0.2}
  - {id: logit, op: linear, units: 1}
outputs: [logit]
loss:
  - {op: bce_with_logits, in: [logit, y]}
train:
  data: {source: moons, samples: 200, noise: 0.1}
  optimizer: {name: adam, lr: 0.02}
  epochs: 15
  metrics: [binary_accuracy]
analysis:
"""
ENTRIES = """\
  - {procedure: grad_norms, at: init}
  - {procedure: grad_norms, name: grad_norms_end}
  - {procedure: fgsm, epsilons: [0, 0.1, 0.3, 1.0]}
  - {procedure: fgsm, at: init, epsilons: [0, 0.2], name: robustness_init}
  - {procedure: decision_boundary, resolution: 40}
  - {procedure: mc_predict, samples: 8, at: init}
  - {procedure: estimator_variance, samples: 5, params: [hidden.*], at: init}
"""

SINE = """\
graphspec: 1
name: mc
seed: 0
inputs:
  x: [batch, 1]
  y: [batch, 1]
graph:
  - {id: h, op: linear, in: x, units: 32}
  - {op: tanh}
  - {op: dropout, p: 0.2}
  - {id: pred, op: linear, units: 1}
outputs: [pred]
loss:
  - {op: mse, in: [pred, y]}
train:
  data: {source: sine, samples: 64, noise: 0.1}
  optimizer: {name: adam, lr: 0.01}
  epochs: 5
analysis:
  - {procedure: mc_predict, samples: 30, grid: 50, extend: 0.5}
"""

ESTIMATORS = """\
graphspec: 1
name: est
seed: 0
inputs:
  x: [batch, 1]
  y: [batch, 1]
graph:
  - {id: mu, op: linear, in: x, units: 1}
  - {id: log_sigma, op: linear, in: x, units: 1}
  - {id: z, op: gaussian_sample, in: [mu, log_sigma]}
outputs: [z]
loss:
  - {op: mse, in: [z, y]}
train:
  data: {source: linear, samples: 64, features: 1}
  epochs: 1
analysis:
  - {procedure: estimator_variance, at: init, samples: 100, params: [mu.*]}
variants:
  reparameterized: {}
  reinforce: {graph: {z: {estimator: reinforce}}}
"""


def write(tmp: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cls")
    out = tmp / "run"
    gs.train(write(tmp, CLASSIFIER + ENTRIES), out=out, progress=False)
    return out


def test_procedures_are_registered() -> None:
    assert sorted(REGISTRY) == ["decision_boundary", "estimator_variance", "fgsm",
                                "grad_norms", "mc_predict", "state_grads"]


def test_the_index_lists_every_entry_and_its_files(cls_run: Path) -> None:
    index = {e["name"]: e for e in read_index(cls_run)}
    assert set(index) == {"grad_norms", "grad_norms_end", "robustness", "robustness_init",
                          "boundary", "predictive", "estimator_variance"}
    for entry in index.values():
        for f in entry["files"]:
            assert (cls_run / f).is_file()
    assert index["grad_norms"]["at"] == "init" and index["robustness"]["at"] == "end"


def test_grad_norms(cls_run: Path) -> None:
    init = load_json(cls_run / "grad_norms.json")
    end = load_json(cls_run / "grad_norms_end.json")
    assert list(init["norms"]) == ["hidden.weight", "hidden.bias", "logit.weight",
                                   "logit.bias"]
    assert init["weights"] == ["hidden.weight", "logit.weight"]
    assert init["at"] == "init" and end["at"] == "end" and init["batch"] == 32
    assert all(v > 0 for v in init["norms"].values())
    assert init["norms"] != end["norms"]


def test_fgsm_lowers_accuracy_and_matches_the_clean_evaluation(cls_run: Path) -> None:
    r = load_json(cls_run / "robustness.json")
    summary = load_json(cls_run / "summary.json")
    assert r["metric"] == "binary_accuracy" and r["split"] == "val" and r["input"] == "x"
    assert r["accuracy"][0] == pytest.approx(summary["final"]["val_binary_accuracy"])
    assert r["loss"][0] == pytest.approx(summary["final"]["val_loss"])
    assert r["accuracy"][-1] < r["accuracy"][0] - 0.2  # ε = 1 crosses the moons
    assert all(b >= a for a, b in zip(r["loss"], r["loss"][1:]))


def test_decision_boundary_grid(cls_run: Path) -> None:
    with np.load(cls_run / "boundary.npz") as b:
        assert b["scores"].shape == (40, 40, 1) and str(b["kind"]) == "logit"
        assert b["x_train"].shape[1] == 2 and set(np.unique(b["y_train"])) == {0, 1}
        assert b["gx"].min() < b["x_train"][:, 0].min()
        # The classifier's logits on the grid agree with its labels on most of the data.
        x, y = b["x_train"], b["y_train"]
        ix = np.abs(b["gx"][None, :] - x[:, :1]).argmin(1)
        iy = np.abs(b["gy"][None, :] - x[:, 1:]).argmin(1)
        assert ((b["scores"][iy, ix, 0] > 0) == (y == 1)).mean() > 0.75


def test_mc_predict_on_validation_rows(cls_run: Path) -> None:
    with np.load(cls_run / "predictive.npz") as p:
        assert not bool(p["one_d"]) and str(p["split"]) == "val"
        assert p["mean"].shape == p["std"].shape == (40, 1)
        assert (p["std"] > 0).all() and p["draws"].shape == (8, 40, 1)


def test_mc_predict_on_a_grid_for_1d_regression(tmp_path: Path) -> None:
    run = gs.train(write(tmp_path, SINE), out=tmp_path / "run", progress=False)
    with np.load(run.run_dir / "predictive.npz") as p:
        x = p["x"].reshape(-1)
        assert bool(p["one_d"]) and len(x) == 50
        assert x.min() < p["x_train"].min() - 1 and x.max() > p["x_train"].max() + 1
        assert (p["std"] > 0).all() and "y_train" in p and "y_val" in p
    summary = read_index(run.run_dir)[0]["summary"]
    assert {"std_inside_data", "std_outside_data"} <= set(summary)


def test_reinforce_has_a_larger_variance_than_reparameterization(tmp_path: Path) -> None:
    totals = {}
    for name, spec in expand_variants(write(tmp_path, ESTIMATORS)).items():
        run = gs.train(spec, out=tmp_path / name, progress=False)
        result = load_json(run.run_dir / "estimator_variance.json")
        assert list(result["params"]) == ["mu.weight", "mu.bias"]
        totals[name] = result["total_variance"]
    assert totals["reinforce"] > 20 * totals["reparameterized"]


def test_analysis_at_init_is_not_repeated_on_resume(tmp_path: Path) -> None:
    path = write(tmp_path, CLASSIFIER + "  - {procedure: grad_norms, at: init}\n")
    out = tmp_path / "run"
    gs.train(path, out=out, epochs=2, progress=False)
    (out / "grad_norms.json").write_text('{"marker": 1}')
    gs.train(path, out=out, epochs=3, resume=True, progress=False)
    assert load_json(out / "grad_norms.json") == {"marker": 1}


def test_both_backends_give_the_same_numbers_at_init(tmp_path: Path) -> None:
    entries = ("  - {procedure: grad_norms, at: init}\n"
               "  - {procedure: fgsm, at: init, epsilons: [0, 0.3]}\n"
               "  - {procedure: mc_predict, at: init, samples: 3}\n")
    path = write(tmp_path, CLASSIFIER + entries)
    for backend in ("numpy", "torch"):
        gs.train(path, backend=backend, out=tmp_path / backend, epochs=1, progress=False)
    a, b = (load_json(tmp_path / k / "grad_norms.json")["norms"] for k in ("numpy", "torch"))
    assert a == pytest.approx(b, rel=1e-9)
    ra, rb = (load_json(tmp_path / k / "robustness.json") for k in ("numpy", "torch"))
    assert ra["accuracy"] == rb["accuracy"] and ra["loss"] == pytest.approx(rb["loss"], 1e-9)
    with np.load(tmp_path / "numpy" / "predictive.npz") as pa, \
            np.load(tmp_path / "torch" / "predictive.npz") as pb:
        np.testing.assert_allclose(pa["std"], pb["std"], rtol=1e-9, atol=1e-12)


def test_plot_adds_a_boundary_for_2d_classifiers_only(tmp_path: Path) -> None:
    spec = gs.loads(CLASSIFIER.replace("analysis:\n", ""), str(tmp_path / "c.yaml"))
    gs.train(spec, out=tmp_path / "c", epochs=1, progress=False)
    assert [p.name for p in add_boundary(spec, tmp_path / "c")] == ["boundary.npz"]
    assert add_boundary(spec, tmp_path / "c") == []  # once is enough
    sine = gs.loads(SINE.replace("analysis:\n", "").split("  - {procedure")[0])
    gs.train(sine, out=tmp_path / "s", epochs=1, progress=False)
    assert add_boundary(sine, tmp_path / "s") == []


# ---- errors --------------------------------------------------------------------------------

BAD = [
    ("{procedure: fgms, epsilons: [0.1]}", "fgms", "unknown procedure 'fgms'",
     "did you mean 'fgsm'?"),
    ("{procedure: fgsm, epsilon: [0.1]}", "epsilon", "unknown key 'epsilon' for procedure",
     "did you mean 'epsilons'?"),
    ("{procedure: fgsm, epsilons: []}", "[]", "epsilons", None),
    ("{procedure: fgsm, epsilons: [0.1], input: xx}", "xx", "unknown input 'xx'",
     "did you mean 'x'?"),
    ("{procedure: fgsm, epsilons: [0.1], input: y}", "y}", "'y' is a target", None),
    ("{procedure: fgsm, epsilons: [0.1], metric: acc}", "acc", "unknown metric 'acc'", None),
    ("{procedure: mc_predict, output: logits}", "logits", "unknown output 'logits'",
     "did you mean 'logit'?"),
    ("{procedure: mc_predict, training: false}", "mc_predict", "needs a stochastic model",
     None),
    ("{procedure: estimator_variance, params: [hiden.*]}", "hiden.*", "matches no trainable",
     None),
    ("{procedure: grad_norms, at: inti}", "inti", "analysis[0].at", "did you mean 'init'?"),
    ("{procedure: grad_norms, batch: 0}", "0}", "analysis[0].batch", None),
]


@pytest.mark.parametrize("entry, at, message, hint", BAD, ids=[b[2][:24] for b in BAD])
def test_bad_entries_are_located(entry: str, at: str, message: str, hint: str | None) -> None:
    text = CLASSIFIER + f"  - {entry}\n"
    with pytest.raises(SpecError) as info:
        spec = gs.loads(text, "spec.yaml")
        plan(spec, gs.build(spec))
    err = info.value
    assert message in err.message
    assert err.location is not None
    assert (err.location.line, err.location.col) == (len(text.splitlines()),
                                                     4 + entry.index(at) + 1)
    if hint is not None:
        assert err.hint == hint


def test_two_entries_writing_one_file_and_bad_shapes() -> None:
    text = CLASSIFIER + "  - {procedure: grad_norms}\n  - {procedure: grad_norms, at: init}\n"
    spec = gs.loads(text)
    with pytest.raises(SpecError, match="two analysis entries write 'grad_norms'"):
        plan(spec, gs.build(spec))
    sine = gs.loads(SINE.replace("mc_predict, samples: 30, grid: 50, extend: 0.5",
                                 "decision_boundary"))
    with pytest.raises(SpecError, match="plane of 2 features"):
        plan(sine, gs.build(sine))
    no_metric = gs.loads(SINE.replace("mc_predict, samples: 30, grid: 50, extend: 0.5",
                                      "fgsm, epsilons: [0.1]"))
    with pytest.raises(SpecError, match="has no metric"):
        plan(no_metric, gs.build(no_metric))


def test_the_driver_checks_entries_before_training(tmp_path: Path) -> None:
    path = write(tmp_path, CLASSIFIER + "  - {procedure: fgsm, epsilons: [0.1], input: z}\n")
    with pytest.raises(SpecError, match="unknown input 'z'"):
        gs.train(path, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


# ---- adversarial training ------------------------------------------------------------------

DETERMINISTIC = CLASSIFIER.replace("  - {id: drop, op: dropout, p: 0.2}\n", "").replace(
    "analysis:\n", "")


def adversarial(epsilon: float, mix: float, extra: str = "") -> str:
    return DETERMINISTIC.replace(
        "  metrics: [binary_accuracy]\n",
        "  metrics: [binary_accuracy]\n"
        f"  adversarial: {{epsilon: {epsilon}, input: x, mix: {mix}{extra}}}\n")


def test_adversarial_training_mixes_clean_and_fgsm_losses(tmp_path: Path) -> None:
    def history(text: str, name: str) -> list[float]:
        run = gs.train(gs.loads(text), out=tmp_path / name, epochs=3, progress=False)
        return [r["train_loss"] for r in run.history] + [run.final["val_loss"]]

    plain = history(DETERMINISTIC, "plain")
    assert history(adversarial(0.2, 0.0), "mix0") == plain  # the FGSM half weighs nothing
    assert history(adversarial(1e-12, 0.5), "tiny") == pytest.approx(plain, rel=1e-6)
    hard = history(adversarial(0.3, 1.0), "hard")
    assert hard[0] > plain[0]  # the loss of perturbed inputs is larger


def test_adversarial_training_agrees_across_backends(tmp_path: Path) -> None:
    spec = gs.loads(adversarial(0.2, 0.5))
    runs = {b: gs.train(spec, backend=b, out=tmp_path / b, epochs=2, progress=False)
            for b in ("numpy", "torch")}
    a, b = (runs[k].history for k in ("numpy", "torch"))
    assert [r["train_loss"] for r in a] == pytest.approx([r["train_loss"] for r in b], 1e-9)
    assert runs["numpy"].final["val_loss"] == pytest.approx(runs["torch"].final["val_loss"],
                                                            rel=1e-9)


@pytest.mark.parametrize("value, message", [
    ("xx", "unknown input 'xx'"), ("y", "'y' is a target"),
])
def test_adversarial_input_is_checked(tmp_path: Path, value: str, message: str) -> None:
    text = adversarial(0.1, 0.5).replace("input: x,", f"input: {value},")
    path = write(tmp_path, text)
    with pytest.raises(SpecError, match=message) as info:
        gs.train(path, out=tmp_path / "run", progress=False)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "adversarial" in t)
    assert info.value.location is not None and info.value.location.line == line


# ---- the docs stay true --------------------------------------------------------------------

DOC = Path(__file__).parents[2] / "docs" / "analysis.md"


def test_docs_examples_build_with_every_variant_and_entry() -> None:
    import re

    import yaml

    from graphspec.analysis.checks import check_variant
    from graphspec.analysis.schema import analysis_entry_schema

    jsonschema = pytest.importorskip("jsonschema")
    entry_schema = jsonschema.Draft202012Validator(analysis_entry_schema())
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"^```yaml\n(.*?)^```", text, re.S | re.M)
    assert len(blocks) == 3
    for block in blocks:
        spec = gs.loads(block, str(DOC))
        for variant in expand_variants(spec).values():
            check_variant(variant, training=True)
        for entry in yaml.safe_load(block).get("analysis", []):
            entry_schema.validate(entry)
