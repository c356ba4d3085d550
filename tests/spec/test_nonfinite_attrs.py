"""Infinities and NaN in a spec: refused where written, or (clip's bounds) valid code.

``min: -.inf`` or ``weight: .nan`` used to pass ``validate`` and then fail inside the
generated module (``NameError: name 'inf' is not defined``, exit 70) or train on NaN.  Float
attributes of ops are finite unless declared ``Bound`` (graphspec.ops.registry), and so are
loss weights, optimizer and training options, and initializer options.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from attr_specs import first_sample, float_attrs, infinity_allowed, spec_with

import graphspec as gs
from graphspec.cli import main
from graphspec.errors import GraphspecError
from graphspec.ops import REGISTRY

BACKENDS = ["numpy", "torch"]


FLOAT_ATTRS = float_attrs()
INFINITE_OK = [(op, f) for op, f in FLOAT_ATTRS if infinity_allowed(op, f)]


def _front_end(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "t.yaml"
    path.write_text(text, encoding="utf-8")
    return gs.build(gs.load(path))


def _refused_at(tmp_path: Path, text: str, line: int, col: int | None = None) -> GraphspecError:
    with pytest.raises(GraphspecError) as e:
        _front_end(tmp_path, text)
    loc = e.value.location
    assert loc is not None and loc.file == str(tmp_path / "t.yaml"), e.value.render()
    assert loc.line == line, e.value.render(source=text)
    if col is not None:
        assert loc.col == col, e.value.render(source=text)
    return e.value


def test_the_registry_has_float_attributes_and_clip_bounds_may_be_infinite() -> None:
    assert len(FLOAT_ATTRS) >= 15
    assert sorted(INFINITE_OK) == [("clip", "max"), ("clip", "min")]


@pytest.mark.parametrize("op, field", FLOAT_ATTRS, ids=[f"{o}.{f}" for o, f in FLOAT_ATTRS])
def test_nan_is_refused_at_validate_where_written(op: str, field: str, tmp_path: Path) -> None:
    text, line, col = spec_with(op, field, ".nan")
    _refused_at(tmp_path, text, line, col)
    # The same spec with a finite value is fine: it is the NaN that was refused.
    ok, _, _ = spec_with(op, field, json.dumps(_finite_value(op, field)))
    _front_end(tmp_path, ok)


def _finite_value(op: str, field: str) -> Any:
    # The first sample that sets the field (class_weights: a list as long as the classes).
    samples = REGISTRY[op].attrs.samples(np.random.default_rng(0))
    sample = next((s.attrs for s in samples if field in s.attrs), {})
    if field in sample:
        return sample[field]
    default = REGISTRY[op].attrs.model_fields[field].default
    return default if isinstance(default, float) else 0.5


@pytest.mark.parametrize("sign", ["", "-"])
@pytest.mark.parametrize("op, field", FLOAT_ATTRS, ids=[f"{o}.{f}" for o, f in FLOAT_ATTRS])
def test_inf_is_refused_where_meaningless_and_runs_where_allowed(
    op: str, field: str, sign: str, tmp_path: Path
) -> None:
    text, line, col = spec_with(op, field, f"{sign}.inf")
    if (op, field) not in INFINITE_OK:
        _refused_at(tmp_path, text, line, col)
        return
    try:
        _front_end(tmp_path, text)
    except GraphspecError as e:  # an infinite bound can still contradict the other bound
        assert e.location is not None and e.location.line is not None
        assert (field, sign) not in {("min", "-"), ("max", "")}, e.render(source=text)
        return
    _runs_alike_on_both_backends(op, {field: float(f"{sign}inf")}, tmp_path)


def _runs_alike_on_both_backends(op: str, attrs: dict[str, Any], tmp_path: Path) -> None:
    """The op's first sample with ``attrs`` as a one-node spec: compiled for both backends,
    forward and gradients agree."""
    sample = first_sample(op)
    opdef = REGISTRY[op]
    names = [i.name for i in opdef.inputs]
    assert set(sample.inputs) <= set(names), "extend this test to ops with parameters"
    node = {"id": "n", "op": op, "in": list(sample.inputs), **sample.attrs, **attrs}
    spec = {
        "graphspec": 1,
        "name": "t",
        "inputs": {k: list(np.shape(v)) for k, v in sample.inputs.items()},
        "graph": [node],
        "outputs": ["n"],
        "loss": [{"op": "l2_penalty", "in": ["n"]}],
    }
    # JSON is YAML; json.dumps writes an infinity as `Infinity`, YAML's is `.inf`.
    text = json.dumps(spec).replace("-Infinity", "-.inf").replace("Infinity", ".inf")
    ir = _front_end(tmp_path, text)
    results = {}
    for backend in BACKENDS:
        prog = gs.compile(ir, backend=backend, dtype="float64")
        assert "float('" in prog.source() or "inf" not in text
        out = prog.forward({}, sample.inputs)["n"]
        res = prog.loss_and_grads({}, sample.inputs)
        results[backend] = (out, res.grads)
    (out_np, g_np), (out_t, g_t) = results["numpy"], results["torch"]
    np.testing.assert_allclose(out_np, out_t, rtol=1e-12)
    assert set(g_np) == set(g_t)
    for k in g_np:
        np.testing.assert_allclose(g_np[k], g_t[k], rtol=1e-12)


def test_clip_with_an_infinite_bound_computes_the_one_sided_clip(tmp_path: Path) -> None:
    x = np.array([[-5.0, 0.5, 7.0]])
    text = (
        "graphspec: 1\nname: t\ninputs: {x: [batch, 3]}\n"
        "graph:\n  - {id: lo, op: clip, in: x, min: -.inf, max: 1}\n"
        "  - {id: hi, op: clip, in: x, min: 0, max: .inf}\noutputs: [lo, hi]\n"
    )
    ir = _front_end(tmp_path, text)
    for backend in BACKENDS:
        out = gs.compile(ir, backend=backend, dtype="float64").forward({}, {"x": x})
        np.testing.assert_array_equal(out["lo"], [[-5.0, 0.5, 1.0]])
        np.testing.assert_array_equal(out["hi"], [[0.0, 0.5, 7.0]])


# ---- spec options ---------------------------------------------------------------------------

BASE = """\
graphspec: 1
name: t
inputs: {x: [batch, 2], y: [batch, 1]}
graph:
  - {id: h, op: linear, in: x, units: 1}
loss:
  - {op: mse, in: [h, y], weight: WEIGHT}
train:
  data: {source: xor, samples: 32}
  optimizer: OPTIMIZER
  TRAIN_EXTRA: 1
"""


def _base(weight: str = "1.0", optimizer: str = "{name: sgd, lr: 0.1}", extra: str = "") -> str:
    text = BASE.replace("WEIGHT", weight).replace("OPTIMIZER", optimizer)
    return text.replace("  TRAIN_EXTRA: 1\n", f"  {extra}\n" if extra else "")


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1.0e+400"])
def test_a_loss_weight_must_be_finite(value: str, tmp_path: Path) -> None:
    text = _base(weight=value)
    err = _refused_at(tmp_path, text, 7, text.splitlines()[6].index(value) + 1)
    assert "finite" in err.message


@pytest.mark.parametrize(
    "optimizer, key",
    [
        ("{name: sgd, lr: .inf}", "lr"),
        ("{name: sgd, lr: .nan}", "lr"),
        ("{name: sgd, lr: 0.1, momentum: .inf}", "momentum"),
        ("{name: adam, lr: 0.1, betas: [.nan, 0.9]}", ".nan"),
        ("{name: adam, lr: 0.1, eps: .inf}", "eps"),
        ("{name: adamw, lr: 0.1, weight_decay: .inf}", "weight_decay"),
        ("{name: rmsprop, lr: 0.1, momentum: .nan}", "momentum"),
        ("{name: adagrad, lr: 0.1, lr_decay: .inf}", "lr_decay"),
    ],
)
def test_optimizer_options_must_be_finite(optimizer: str, key: str, tmp_path: Path) -> None:
    text = _base(optimizer=optimizer)
    line = text.splitlines()[9]
    value_at = line.index(".", line.index(key) + (0 if key == ".nan" else len(key)))
    _refused_at(tmp_path, text, 10, value_at + 1)


@pytest.mark.parametrize(
    "extra",
    [
        "clip_grad_norm: .inf",
        "schedule: {name: step, gamma: .inf}",
        "early_stopping: {min_delta: .inf}",
    ],
)
def test_training_options_must_be_finite(extra: str, tmp_path: Path) -> None:
    text = _base(extra=extra)
    _refused_at(tmp_path, text, 11, text.splitlines()[10].index(".inf") + 1)


@pytest.mark.parametrize(
    "init",
    ["{name: uniform, a: .nan}", "{name: normal, std: .inf}", "{name: constant, value: -.inf}"],
)
def test_initializer_options_must_be_finite(init: str, tmp_path: Path) -> None:
    text = _base().replace("units: 1}", f"units: 1, init: {{weight: {init}}}}}")
    err = _refused_at(tmp_path, text, 5)
    assert "must be finite" in err.message


def test_a_non_finite_block_argument_is_refused(tmp_path: Path) -> None:
    text = (
        "graphspec: 1\nname: t\ninputs: {x: [batch, 2]}\nblocks:\n  act:\n"
        "    params: {s: 0.1}\n    graph:\n      - {op: leaky_relu, slope: $s}\n"
        "graph:\n  - {block: act, in: x, s: .nan}\n"
    )
    with pytest.raises(GraphspecError) as e:
        _front_end(tmp_path, text)
    assert e.value.location is not None and e.value.location.line in (8, 10)


@pytest.mark.parametrize(
    "entry, value",
    [
        ("{procedure: decision_boundary, pad: .inf}", ".inf"),
        ("{procedure: fgsm, epsilons: [0.5, .nan]}", ".nan"),
        ("{procedure: fgsm, epsilons: [0.5], clip: [0, .nan]}", ".nan"),
    ],
)
def test_analysis_options_must_be_finite(
    entry: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.yaml"
    text = _base(extra="metrics: [binary_accuracy]") + f"analysis:\n  - {entry}\n"
    path.write_text(text)
    assert main(["validate", str(path)]) == 1
    col = text.splitlines()[12].index(value) + 1
    assert capsys.readouterr().err.startswith(f"{path}:13:{col}: error: ")


def test_an_fgsm_clip_bound_may_be_infinite(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    entry = "{procedure: fgsm, epsilons: [0.5], clip: [-.inf, 1.0]}"
    path.write_text(_base(extra="metrics: [binary_accuracy]") + f"analysis:\n  - {entry}\n")
    assert main(["validate", str(path)]) == 0


# ---- through the command line: exit 1 with the location, or a run --------------------------


def test_validate_refuses_a_nan_attribute_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(_base().replace("units: 1}", "units: 1}\n  - {op: leaky_relu, slope: .nan}"))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:6:29: error:" in err and "finite" in err and "Traceback" not in err


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_with_an_infinite_clip_bound(backend: str, tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        _base()
        .replace("units: 1}", "units: 1}\n  - {op: clip, min: -.inf, max: 2}")
        .replace("in: [h, y]", "in: [clip_0, y]")
    )
    out = tmp_path / "run"
    assert main(["train", str(path), "--backend", backend, "--epochs", "2", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    module = tmp_path / "m.py"
    assert main(["compile", str(path), "--backend", backend, "-o", str(module)]) == 0
    assert "float('-inf')" in module.read_text()
