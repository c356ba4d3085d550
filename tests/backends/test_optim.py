"""The numpy optimizers, clipping and schedules against torch.optim (float64)."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch

import graphspec as gs
from graphspec.errors import SpecError
from graphspec.spec.models import (
    OPTIMIZER_MODELS,
    AdagradSpec,
    AdamSpec,
    AdamWSpec,
    ParamGroupSpec,
    RMSpropSpec,
    ScheduleSpec,
    SGDSpec,
)
from graphspec.train.groups import param_groups
from graphspec.train.schedules import lr_factor
from graphspec_numpy.optim import OPTIMIZERS as NUMPY_OPTIMIZERS
from graphspec_numpy.optim import clip_grad_norm, make_optimizer
from graphspec_torch.optim import OPTIMIZERS as TORCH_OPTIMIZERS

STEPS = 25
SHAPES = {"w": (3, 4), "b": (4,), "v": (2, 2, 3)}

CASES = [
    SGDSpec(name="sgd", lr=0.1),
    SGDSpec(name="sgd", lr=0.05, momentum=0.9),
    SGDSpec(name="sgd", lr=0.05, momentum=0.9, dampening=0.3),
    SGDSpec(name="sgd", lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
    SGDSpec(name="sgd", lr=0.05, weight_decay=0.1),
    AdamSpec(name="adam", lr=0.01),
    AdamSpec(name="adam", lr=0.01, amsgrad=True, weight_decay=0.05),
    AdamSpec(name="adam", lr=0.02, betas=(0.3, 0.4), eps=1e-6),  # lerp's other branch
    AdamWSpec(name="adamw", lr=0.01),
    AdamWSpec(name="adamw", lr=0.01, amsgrad=True, weight_decay=0.1),
    RMSpropSpec(name="rmsprop", lr=0.01),
    RMSpropSpec(name="rmsprop", lr=0.01, centered=True),
    RMSpropSpec(name="rmsprop", lr=0.01, momentum=0.9, weight_decay=0.01),
    RMSpropSpec(name="rmsprop", lr=0.01, centered=True, momentum=0.5, alpha=0.3),
    AdagradSpec(name="adagrad", lr=0.1),
    AdagradSpec(name="adagrad", lr=0.1, lr_decay=0.05, initial_accumulator_value=0.2,
                weight_decay=0.01),
]


def test_every_optimizer_of_the_spec_has_one_implementation_per_backend():
    """The spec's optimizer union is the one list; each backend implements exactly it, and
    the cases above exercise every optimizer."""
    models = set(OPTIMIZER_MODELS.values())
    assert set(NUMPY_OPTIMIZERS) == models
    assert set(TORCH_OPTIMIZERS) == models
    assert {type(spec) for spec in CASES} == models


@pytest.mark.parametrize("spec", CASES, ids=lambda s: repr(s)[:60])
def test_each_optimizer_declares_the_buffers_torch_keeps(spec):
    """The memory estimate counts spec.buffers() tensors per parameter: as many as
    torch.optim holds (of the parameter's shape) after a step."""
    p = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
    opt = TORCH_OPTIMIZERS[type(spec)]([p], **_torch_kwargs(spec))
    p.grad = torch.ones_like(p)
    opt.step()
    kept = [v for v in opt.state[p].values() if torch.is_tensor(v) and v.shape == p.shape]
    assert spec.buffers() == len(kept)


def _torch_kwargs(spec):
    """The spec's options: torch's keyword arguments of the same names, by design."""
    return {k: getattr(spec, k) for k in type(spec).model_fields if k not in ("name", "groups")}


def _grad(p: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """A gradient that depends on the parameters, so a wrong update changes later steps."""
    return np.sin(3 * p) + p**3 * 0.1 + noise


def _run_both(spec, groups_np, groups_torch, factors=None, clip=None):
    rng = np.random.default_rng(7)
    init = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    noise = [{k: rng.normal(size=s) for k, s in SHAPES.items()} for _ in range(STEPS)]
    p_np = {k: v.copy() for k, v in init.items()}
    opt = make_optimizer(spec, groups_np)
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in init.items()}
    kwargs = _torch_kwargs(spec)
    torch_groups = [{"params": [tp[n] for n in names], **o} for names, o in groups_torch]
    topt = TORCH_OPTIMIZERS[type(spec)](torch_groups, foreach=False, **kwargs)
    base = [g["lr"] for g in topt.param_groups]
    for t in range(STEPS):
        f = 1.0 if factors is None else factors[t]
        g_np = {k: _grad(p_np[k], noise[t][k]) for k in SHAPES}
        if clip is not None:
            g_np, _, _ = clip_grad_norm(g_np, clip)
        opt.step(p_np, g_np, f)
        for k, p in tp.items():
            p.grad = torch.from_numpy(_grad(p.detach().numpy(), noise[t][k]))
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(list(tp.values()), clip, foreach=False)
        for g, b in zip(topt.param_groups, base):
            g["lr"] = b * f
        topt.step()
    return p_np, {k: v.detach().numpy() for k, v in tp.items()}, opt, topt


def _case_id(spec: object) -> str:
    """A name for the case, the same in every process (pytest-xdist's workers must collect
    the same ids; str's hash() differs between processes)."""
    return f"{spec.name}-{zlib.crc32(str(spec).encode()) % 997}"  # type: ignore[attr-defined]


@pytest.mark.parametrize("spec", CASES, ids=_case_id)
def test_optimizer_matches_torch(spec):
    groups = [(list(SHAPES), {})]
    p_np, p_t, opt, topt = _run_both(spec, groups, groups)
    for k in SHAPES:
        np.testing.assert_allclose(p_np[k], p_t[k], rtol=1e-12, atol=1e-13, err_msg=k)
    # The state the numpy optimizer checkpoints is torch's state, buffer for buffer.
    tp = dict(zip(SHAPES, [p for g in topt.param_groups for p in g["params"]]))
    for key, value in opt.state_dict().items():
        name, _, buf = key.rpartition("/")
        ref = topt.state[tp[name]][buf]
        np.testing.assert_allclose(value, np.asarray(ref), rtol=1e-11, atol=1e-13, err_msg=key)


@pytest.mark.parametrize("spec", [CASES[3], CASES[6], CASES[13], CASES[15]],
                         ids=["sgd", "adam", "rmsprop", "adagrad"])
def test_param_groups_and_lr_factors_match_torch(spec):
    groups = [(["w", "v"], {}), (["b"], {"lr": spec.lr * 3, "weight_decay": 0.0})]
    factors = [lr_factor(ScheduleSpec(name="cosine", t_max=20, warmup=3, unit="step"), 0, t,
                         STEPS) for t in range(STEPS)]
    p_np, p_t, _, _ = _run_both(spec, groups, groups, factors=factors)
    for k in SHAPES:
        np.testing.assert_allclose(p_np[k], p_t[k], rtol=1e-12, atol=1e-13, err_msg=k)


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clipping_matches_torch(max_norm):
    p_np, p_t, _, _ = _run_both(SGDSpec(name="sgd", lr=0.1, momentum=0.9),
                                [(list(SHAPES), {})], [(list(SHAPES), {})], clip=max_norm)
    for k in SHAPES:
        np.testing.assert_allclose(p_np[k], p_t[k], rtol=1e-12, atol=1e-13)


def test_clip_grad_norm_values():
    rng = np.random.default_rng(0)
    grads = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    tensors = [torch.tensor(g) for g in grads.values()]
    for t in tensors:
        t.grad = t.clone()
    total_t = torch.nn.utils.clip_grad_norm_(tensors, 1.0)
    clipped, total, norms = clip_grad_norm(grads, 1.0)
    assert total == pytest.approx(float(total_t), rel=1e-14)
    assert norms["w"] == pytest.approx(float(np.linalg.norm(grads["w"])))
    for g, t in zip(clipped.values(), tensors):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-14)
    assert math.sqrt(sum(float(np.sum(g * g)) for g in clipped.values())) <= 1.0
    unchanged, _, _ = clip_grad_norm(grads, 1e6)
    for k in grads:
        np.testing.assert_array_equal(unchanged[k], grads[k])


def test_state_dict_round_trip_continues_identically():
    spec = AdamSpec(name="adam", lr=0.01, amsgrad=True)
    rng = np.random.default_rng(3)
    p = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    opt = make_optimizer(spec, [(list(SHAPES), {})])
    for _ in range(5):
        opt.step(p, {k: _grad(v, 0.0) for k, v in p.items()})
    saved, p2 = opt.state_dict(), {k: v.copy() for k, v in p.items()}
    opt2 = make_optimizer(spec, [(list(SHAPES), {})])
    opt2.load_state_dict(saved, p2)
    for _ in range(5):
        opt.step(p, {k: _grad(v, 0.0) for k, v in p.items()})
        opt2.step(p2, {k: _grad(v, 0.0) for k, v in p2.items()})
    for k in SHAPES:
        np.testing.assert_array_equal(p[k], p2[k])
    with pytest.raises(ValueError, match="shape"):
        opt2.load_state_dict({"w/exp_avg": np.zeros((2, 2))}, p2)


# ---- schedules ---------------------------------------------------------------------------


def _torch_factors(make, n):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=1.0)
    sched = make(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("schedule, make", [
    (ScheduleSpec(name="constant"), lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1)),
    (ScheduleSpec(name="step", step_size=3, gamma=0.5),
     lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
    (ScheduleSpec(name="exponential", gamma=0.9),
     lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9)),
    (ScheduleSpec(name="cosine", t_max=10, eta_min=0.1),
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, eta_min=0.1)),
    (ScheduleSpec(name="step", step_size=2, gamma=0.5, warmup=4),
     lambda o: torch.optim.lr_scheduler.SequentialLR(o, [
         torch.optim.lr_scheduler.LinearLR(o, 1 / 4, 1.0, total_iters=3),
         torch.optim.lr_scheduler.StepLR(o, 2, 0.5)], milestones=[4])),
])
def test_schedules_match_torch(schedule, make):
    n = 11  # within t_max: beyond it torch's cosine rises again, ours stays at eta_min
    ours = [lr_factor(schedule, e, 0, 5) for e in range(n)]
    np.testing.assert_allclose(ours, _torch_factors(make, n), rtol=1e-12, atol=1e-15)


def test_schedule_units_and_tail():
    step = ScheduleSpec(name="exponential", gamma=0.5, unit="step")
    assert lr_factor(step, 2, 1, 4) == 0.5**9  # global step 2 * 4 + 1
    epoch = ScheduleSpec(name="exponential", gamma=0.5)
    assert lr_factor(epoch, 2, 3, 4) == 0.25  # constant within an epoch
    cos = ScheduleSpec(name="cosine", t_max=4, eta_min=0.2)
    assert lr_factor(cos, 4, 0, 1) == lr_factor(cos, 40, 0, 1) == 0.2
    assert [lr_factor(ScheduleSpec(warmup=4), e, 0, 1) for e in range(6)] == \
        [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="t_max"):
        lr_factor(ScheduleSpec(name="cosine"), 0, 0, 1)


# ---- parameter groups --------------------------------------------------------------------


def _xor_ir(groups):
    spec = gs.load("specs/xor.yaml")
    ir = gs.build(spec)
    opt = SGDSpec(name="sgd", lr=0.1, weight_decay=0.01,
                  groups=[ParamGroupSpec(**g) for g in groups])
    return ir, opt


def test_param_groups_words_and_globs():
    ir, opt = _xor_ir([{"params": ["biases"], "weight_decay": 0.0},
                       {"params": ["logit.*"], "lr": 0.5}])
    groups = param_groups(ir, opt)
    assert groups == [
        (["hidden.weight"], {}),
        (["hidden.bias", "logit.bias"], {"weight_decay": 0.0}),
        (["logit.weight"], {"lr": 0.5}),
    ]
    names = [n for g, _ in groups for n in g]
    assert sorted(names) == sorted(ir.params)  # each parameter in exactly one group
    ir, opt = _xor_ir([{"params": ["weights"], "lr": 0.2}])
    assert param_groups(ir, opt) == [(["hidden.bias", "logit.bias"], {}),
                                     (["hidden.weight", "logit.weight"], {"lr": 0.2})]
    ir, opt = _xor_ir([])
    assert param_groups(ir, opt) == [(list(ir.params), {})]


def test_param_group_pattern_matching_nothing_is_an_error():
    ir, opt = _xor_ir([{"params": ["hiden.*"], "lr": 0.5}])
    with pytest.raises(SpecError, match="matches no trainable parameter"):
        param_groups(ir, opt)
