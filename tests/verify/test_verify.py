"""graphspec.verify: the report, the inputs it feeds, and what it compares."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import graphspec as gs
from graphspec.verify import fd_exempt, gradient_cuts, op_tolerance, tolerance, verify
from graphspec.verify.inputs import bind_dims, draw_noise, int_range, random_inputs
from graphspec.verify.report import Report, Tol, compare

MLP = """
graphspec: 1
name: {name}
seed: 3
inputs:
  x: [batch, 2]
  y: [batch, 1]
graph:
  - {{id: hidden, op: linear, in: x, units: 6}}
{extra}
  - {{id: act, op: tanh}}
  - {{id: logit, op: linear, units: 1}}
outputs: [logit]
loss:
  - {{op: bce_with_logits, in: [logit, y]}}
  - {{op: l2_penalty, weight: 1.0e-3}}
train:
  data: {{source: xor, samples: 64}}
  optimizer: {{name: adam, lr: 0.01}}
  batch_size: 16
"""


def mlp(extra: str = "", name: str = "mlp") -> gs.IR:
    return gs.build(gs.loads(MLP.format(name=name, extra=extra)))


# ---- the report --------------------------------------------------------------------------


def test_compare_follows_allclose_and_reports_errors():
    tol = Tol(1e-6, 1e-9)
    ok = compare("grad", "w", "torch~numpy", [1.0, 2.0 + 1e-7], [1.0, 2.0], tol)
    assert ok.ok and ok.max_abs == pytest.approx(1e-7) and ok.max_rel == pytest.approx(5e-8)
    bad = compare("grad", "w", "torch~numpy", [1.0, 2.1], [1.0, 2.0], tol)
    assert not bad.ok and bad.max_abs == pytest.approx(0.1)
    assert not compare("grad", "w", "a~b", np.zeros(2), np.zeros(3), tol).ok
    missing = compare("grad", "w", "torch~numpy", None, [1.0], tol)
    assert not missing.ok and "torch" in missing.note
    nan = compare("loss", "total", "a~b", [math.nan], [1.0], tol)
    assert not nan.ok and nan.note == "non-finite values"
    assert compare("loss", "total", "a~b", [math.nan], [math.nan], tol).ok  # NaN on both sides
    # A near-zero element is held to atol, and does not print a meaningless relative error.
    tiny = compare("grad", "w", "a~b", [1e-12], [1e-20], tol)
    assert tiny.ok and tiny.max_rel == 0.0


def test_report_renders_a_table_a_verdict_and_json():
    r = Report("spec.yaml", ("numpy", "torch"), "float64", 3)
    r.rows.append(compare("grad", "hidden.weight", "torch~numpy", [1.0], [1.0], Tol(1e-9, 0)))
    assert r.ok and r.render().splitlines()[-1].startswith("PASS")
    r.rows.append(compare("grad", "act.x", "torch~numpy", [2.0], [1.0], Tol(1e-9, 0),
                          node="act", where="spec.yaml:4:5"))
    text = r.render()
    assert not r.ok
    assert "FAIL" in text.splitlines()[-1] and "grad act.x" in text.splitlines()[-1]
    assert "[act @ spec.yaml:4:5]" in text
    for word in ("tensor", "max abs err", "max rel err", "tolerance"):
        assert word in text.splitlines()[1]
    data = json.loads(r.to_json())
    assert data["ok"] is False and len(data["rows"]) == 2
    assert data["rows"][1]["node"] == "act" and data["rows"][1]["tol"]["rtol"] == 1e-9


# ---- tolerances ---------------------------------------------------------------------------


class _Loose:
    tolerances = {"grad": (1e-7, 1e-9), "float32.forward": (1e-4, 1e-5), "reason": "test"}


def test_op_overrides_only_loosen():
    assert op_tolerance(_Loose(), "grad", "float64") == Tol(1e-7, 1e-9)
    assert op_tolerance(_Loose(), "forward", "float64") is None
    assert tolerance("grad", "float64", [_Loose()]) == Tol(1e-7, 1e-9)
    assert tolerance("forward", "float32", [_Loose()]) == Tol(1e-4, 1e-5)
    # float32's default gradient tolerance is already looser than the override.
    assert tolerance("grad", "float32", [_Loose()]) == Tol(2e-3, 1e-4)
    assert tolerance("forward", "float64") == Tol(1e-12, 1e-12)


# ---- inputs and noise ---------------------------------------------------------------------


def test_random_inputs_follow_the_types():
    ir = mlp()
    x = random_inputs(ir, 5, np.random.default_rng(0))
    assert x["x"].shape == (5, 2) and x["y"].shape == (5, 1)
    assert x["y"].min() >= 0 and x["y"].max() < 1  # a target: probabilities are valid
    assert bind_dims(ir, x) == {"batch": 5}


def test_int_inputs_stay_in_the_range_their_consumers_accept():
    ir = gs.build(gs.loads("""
graphspec: 1
name: labels
inputs:
  x: [batch, 3]
  y: {shape: [batch], dtype: int}
graph:
  - {id: logits, op: linear, in: x, units: 4}
outputs: [logits]
train:
  data: {source: blobs}
  metrics: [{op: accuracy, in: [logits, y]}]
"""))
    assert int_range(ir, "y") == 4
    y = random_inputs(ir, 200, np.random.default_rng(0))["y"]
    assert y.dtype.kind == "i" and set(np.unique(y)) == {0, 1, 2, 3}


def test_noise_is_drawn_per_stochastic_node_shaped_like_its_argument():
    ir = mlp("  - {id: drop, op: dropout, p: 0.5}")
    x = random_inputs(ir, 7, np.random.default_rng(0))
    noise = draw_noise(ir, x, np.random.default_rng(1))
    assert list(noise) == ["drop"] and noise["drop"].shape == (7, 6)
    assert 0 <= noise["drop"].min() and noise["drop"].max() < 1  # dropout draws uniforms


# ---- finite differences: what cannot be checked, and why ------------------------------------


def test_stop_gradient_exempts_the_leaves_behind_it():
    ir = gs.build(gs.loads("""
graphspec: 1
name: sg
inputs:
  x: [batch, 2]
  y: [batch, 1]
graph:
  - {id: a, op: linear, in: x, units: 1}
  - {id: frozen, op: stop_gradient, in: a}
  - {id: b, op: linear, in: x, units: 1}
  - {id: s, op: add, in: [frozen, b]}
outputs: [s]
loss:
  - {op: mse, in: [s, y]}
"""))
    assert "stop_gradient" in (fd_exempt(ir, "a.weight") or "")
    assert fd_exempt(ir, "b.weight") is None


def test_an_input_that_is_also_a_target_is_a_gradient_cut():
    ir = gs.build(gs.loads("""
graphspec: 1
name: autoencoder
inputs: {x: [batch, 2]}
graph:
  - {id: code, op: linear, in: x, units: 1}
  - {id: back, op: linear, units: 2}
outputs: [back]
loss:
  - {id: rec, op: mse, in: [back, x]}
"""))
    assert gradient_cuts(ir, "x") == [("x", "rec")]
    assert gradient_cuts(ir, "code.weight") == []
    assert "non-differentiable" in fd_exempt(ir, "x")


# ---- whole specs ----------------------------------------------------------------------------


def test_verify_compares_every_tensor_of_a_spec():
    report = verify(mlp(), steps=3)
    assert report.ok, report.render()
    checks = {(r.check, r.tensor) for r in report.rows}
    for leaf in ("hidden.weight", "hidden.bias", "logit.weight", "logit.bias", "x"):
        assert ("grad", leaf) in checks and ("fd", leaf) in checks
    for term in ("total", "bce_with_logits", "l2_penalty"):
        assert ("loss", term) in checks
    assert ("output", "logit") in checks
    assert ("step param", "hidden.weight") in checks


def test_verify_feeds_the_same_noise_to_every_backend():
    report = verify(mlp("  - {id: drop, op: dropout, p: 0.5}", "dropout"), steps=0)
    assert report.ok, report.render()
    assert any(r.check == "output[train]" for r in report.rows)


def test_verify_compares_batch_norm_running_statistics():
    report = verify(mlp("  - {id: bn, op: batch_norm}", "bn"), steps=3)
    assert report.ok, report.render()
    state = [r for r in report.rows if r.check == "state"]
    assert {r.tensor for r in state} >= {"bn.running_mean", "bn.running_var"}


def test_verify_float32_uses_float32_tolerances():
    report = verify(mlp(), dtype="float32", steps=2)
    assert report.ok, report.render()
    grads = [r for r in report.rows if r.check == "grad"]
    assert grads and all(r.tol == Tol(2e-3, 1e-4) for r in grads)
    assert max(r.max_abs for r in grads) > 0  # really single precision


def test_a_single_backend_still_gets_the_finite_difference_check():
    report = verify("specs/xor.yaml", backends=("numpy",), steps=0)
    assert report.ok and {r.check for r in report.rows} >= {"fd"}


def test_unknown_backend_is_a_failing_row_not_a_crash():
    report = verify(mlp(), backends=("numpy", "nosuch"), steps=0)
    assert not report.ok
    assert any(r.check == "compile" and "nosuch" in r.against for r in report.rows)


def test_unknown_dtype_is_a_usage_error():
    with pytest.raises(gs.GraphspecError):
        verify(mlp(), dtype="float16")


def test_tf32_is_off_while_verifying_and_restored_after():
    import torch

    from graphspec.verify import full_precision

    before = (torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    try:
        with full_precision():
            assert not torch.backends.cuda.matmul.allow_tf32
            assert not torch.backends.cudnn.allow_tf32
            assert torch.get_float32_matmul_precision() == "highest"
        assert torch.backends.cuda.matmul.allow_tf32
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before[0]
        torch.set_float32_matmul_precision(before[1])


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_verify_on_cuda(dtype):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    report = verify("specs/xor.yaml", backends=("numpy", "torch"), steps=5, dtype=dtype,
                    device="cuda")
    assert report.ok, report.render(only_failures=True)
