"""The fused optimizer update (``train.fused_update``): each parameter updated inside the
backward pass as soon as its gradient is final gives bit-identical parameters and optimizer
state to updating after the whole backward pass, for every optimizer."""

from __future__ import annotations

import numpy as np
import pytest
from paths import GALLERY

import graphspec as gs
import graphspec_torch.trainer as torch_trainer
from graphspec.errors import NonFiniteLoss
from graphspec.spec.load import load
from graphspec.spec.models import (
    AdagradSpec,
    AdamSpec,
    AdamWSpec,
    ParamGroupSpec,
    RMSpropSpec,
    SGDSpec,
)

# A shared weight (two contributions to its gradient), a penalty term, and the hazard of an
# in-place update: `frozen` is the parameter `w.value` itself (stop_gradient returns its input),
# read by matmul's VJP after w's gradient is final.  PENALTY adds a penalty term on every
# weight (its VJP runs last, so every weight is updated at the end).
SPEC = """\
graphspec: 1
name: fused
seed: 0
inputs:
  x: [batch, 3]
  y: [batch, 1]
graph:
  - {id: w, op: param, shape: [3, 3]}
  - {id: frozen, op: stop_gradient, in: w}
  - {id: hx, op: linear, in: x, units: 3}
  - {id: mixed, op: matmul, in: [hx, frozen]}
  - {id: h, op: linear, in: mixed, units: 3, params: {weight: w.value}}
  - {id: a, op: tanh}
  - {id: h2, op: linear, in: a, units: 3, params: {weight: w.value, bias: h.bias}}
  - {id: a2, op: tanh}
  - {id: logit, op: linear, units: 1}
loss:
  - {op: bce_with_logits, in: [logit, y]}
train:
  data: {source: blobs}
  batch_size: 8
"""

PENALTY = SPEC.replace(
    "  - {op: bce_with_logits, in: [logit, y]}\n",
    "  - {op: bce_with_logits, in: [logit, y]}\n  - {op: l2_penalty, weight: 1.0e-3}\n",
)
BIASES = [ParamGroupSpec(params=["biases"], lr=0.03, weight_decay=0.0)]
OPTIMIZERS = [
    SGDSpec(name="sgd", lr=0.1),
    SGDSpec(name="sgd", lr=0.05, momentum=0.9, weight_decay=0.01, groups=BIASES),
    SGDSpec(name="sgd", lr=0.05, momentum=0.8, nesterov=True),
    AdagradSpec(name="adagrad", lr=0.1, lr_decay=0.05, weight_decay=0.01),
    RMSpropSpec(name="rmsprop", lr=0.01, centered=True, momentum=0.5),
    AdamSpec(name="adam", lr=0.01, amsgrad=True, weight_decay=0.05, groups=BIASES),
    AdamWSpec(name="adamw", lr=0.01, weight_decay=0.1),
]


def _trainer(ir, optimizer, fused: bool, **train):
    spec = ir.spec.train.model_copy(update={"optimizer": optimizer, "fused_update": fused, **train})
    t = gs.compile(ir, "numpy", dtype="float64").trainer(gs.init_params(ir, seed=1), spec, 0)
    rng = np.random.default_rng(3)
    t.set_data(
        "train", {"x": rng.normal(size=(32, 3)), "y": (rng.random((32, 1)) < 0.5).astype(float)}
    )
    return t


def _epochs(t, n: int = 3) -> None:
    rng = np.random.default_rng(4)
    for epoch in range(n):
        t.train_epoch(np.split(rng.permutation(32), 4), epoch)


@pytest.mark.parametrize("spec", [SPEC, PENALTY], ids=["shared", "penalty"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: repr(o)[:50])
def test_fused_update_is_bit_identical(optimizer, spec):
    ir = gs.build(gs.loads(spec, "fused.yaml"))
    plain, fused = _trainer(ir, optimizer, False), _trainer(ir, optimizer, True)
    assert fused.fused and not plain.fused
    order: list[str] = []
    apply = fused.optimizer.apply
    fused.optimizer.apply = lambda name, g: (order.append(name), apply(name, g))  # type: ignore[method-assign]
    _epochs(plain)
    _epochs(fused)
    # The fused path ran: updates in backward order (the read-out first), not in the
    # parameters' order.
    assert order[0].startswith("logit.")
    for k, v in plain.params().items():
        np.testing.assert_array_equal(fused.params()[k], v, err_msg=k)
    state = plain.state_dict()
    assert set(fused.state_dict()) == set(state)
    for k, v in fused.state_dict().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)
    # The last step's gradient norms are kept in both modes.
    norms = plain.grad_norms()
    assert fused.grad_norms() == pytest.approx(norms, rel=1e-12)


def test_fused_update_falls_back_where_it_is_not_exact():
    ir = gs.build(gs.loads(SPEC, "fused.yaml"))
    sgd = SGDSpec(name="sgd", lr=0.1)
    assert not _trainer(ir, sgd, True, clip_grad_norm=1.0).fused
    assert _trainer(ir, sgd, True).fused


def test_a_non_finite_loss_leaves_the_parameters_as_they_were():
    ir = gs.build(gs.loads(SPEC, "fused.yaml"))
    t = _trainer(ir, SGDSpec(name="sgd", lr=0.1), True)
    data = t.data["train"]
    before = t.params()
    t.set_data("train", {**data, "x": np.full_like(data["x"], np.nan)})
    with pytest.raises(NonFiniteLoss):
        t.train_epoch([np.arange(8)], 0)
    for k, v in before.items():
        np.testing.assert_array_equal(t.params()[k], v, err_msg=k)


# torch: the same spec without stop_gradient (whose read of w autograd cannot order).
TORCH_SPEC = PENALTY.replace("  - {id: frozen, op: stop_gradient, in: w}\n", "").replace(
    "in: [hx, frozen]", "in: [hx, w]"
)


def _torch_trainer(ir, optimizer, fused: bool):
    spec = ir.spec.train.model_copy(update={"optimizer": optimizer, "fused_update": fused})
    prog = gs.compile(ir, "torch", dtype="float64", device="cpu")
    t = prog.trainer(gs.init_params(ir, seed=1), spec, 0)
    rng = np.random.default_rng(3)
    t.set_data(
        "train", {"x": rng.normal(size=(32, 3)), "y": (rng.random((32, 1)) < 0.5).astype(float)}
    )
    return t


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: repr(o)[:50])
def test_torch_fused_update_is_bit_identical(optimizer, monkeypatch):
    # Every parameter fused (by default only those of at least 64k elements are).
    monkeypatch.setattr(torch_trainer, "FUSE_MIN_ELEMENTS", 1)
    ir = gs.build(gs.loads(TORCH_SPEC, "fused.yaml"))
    plain, fused = _torch_trainer(ir, optimizer, False), _torch_trainer(ir, optimizer, True)
    assert set(fused.fused) == set(ir.params) and not plain.fused
    _epochs(plain)
    _epochs(fused)
    for k, v in plain.params().items():
        np.testing.assert_array_equal(fused.params()[k], v, err_msg=k)
    state = plain.state_dict()
    assert set(fused.state_dict()) == set(state)
    for k, v in fused.state_dict().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)
    assert fused.grad_norms() == pytest.approx(plain.grad_norms(), rel=1e-12)
    assert all(p.grad is None for p in fused.params_list)  # no gradient held after a step


def test_torch_fuses_large_parameters_where_exact(monkeypatch):
    sgd = SGDSpec(name="sgd", lr=0.1)
    ir = gs.build(gs.loads(TORCH_SPEC, "fused.yaml"))
    assert _torch_trainer(ir, sgd, True).fused == []  # 3x3 weights: not worth a call each
    monkeypatch.setattr(torch_trainer, "FUSE_MIN_ELEMENTS", 9)
    assert sorted(_torch_trainer(ir, sgd, True).fused) == ["hx.weight", "w.value"]
    # stop_gradient reads w where autograd cannot order the read before w's update.
    assert _torch_trainer(gs.build(gs.loads(SPEC, "fused.yaml")), sgd, True).fused == []


@pytest.mark.slow
@pytest.mark.parametrize("path", GALLERY, ids=lambda p: p.stem)
def test_gallery_trains_identically_fused_or_not(path, tmp_path):
    """Every gallery spec, two epochs through the driver: the same parameters either way
    (every op's VJP and forward aliasing meet the fused update's placement rule)."""
    runs = {}
    for fused in ("true", "false"):
        spec = load(path, [f"train.fused_update={fused}", "train.epochs=2"])
        out = tmp_path / fused
        gs.train(spec, backend="numpy", out=out, progress=False)
        runs[fused] = gs.load_run(out).last_params
    assert set(runs["true"]) == set(runs["false"])
    for k, v in runs["false"].items():
        np.testing.assert_array_equal(runs["true"][k], v, err_msg=k)
