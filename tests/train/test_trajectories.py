"""Trajectory equivalence: every optimizer, schedule, clipping and parameter groups, 20+ steps
on numpy (hand-written optimizers) and torch (torch.optim) from the same start on the same
batches; parameters, step losses and optimizer state agree in float64."""

from __future__ import annotations

import pytest

import graphspec as gs
from graphspec.verify import verify

STEPS = 20

SPEC = """
graphspec: 1
name: traj
seed: 5
inputs:
  x: [batch, 2]
  y: [batch, 1]
graph:
  - {{id: hidden, op: linear, in: x, units: 5}}
  - {{id: act, op: tanh}}
  - {{id: logit, op: linear, units: 1}}
outputs: [logit]
loss:
  - {{op: bce_with_logits, in: [logit, y]}}
  - {{op: l2_penalty, weight: 1.0e-3}}
train:
  data: {{source: xor, samples: 96, noise: 0.1}}
  batch_size: 16
  optimizer: {optimizer}
  schedule: {schedule}
{extra}
"""

OPTIMIZERS = {
    "sgd": "{name: sgd, lr: 0.3}",
    "sgd-momentum": "{name: sgd, lr: 0.1, momentum: 0.9}",
    "sgd-dampening": "{name: sgd, lr: 0.1, momentum: 0.8, dampening: 0.3}",
    "sgd-nesterov": "{name: sgd, lr: 0.1, momentum: 0.9, nesterov: true}",
    "sgd-weight-decay": "{name: sgd, lr: 0.1, momentum: 0.5, weight_decay: 0.05}",
    "adam": "{name: adam, lr: 0.05}",
    "adam-weight-decay": "{name: adam, lr: 0.05, betas: [0.8, 0.99], weight_decay: 0.01}",
    "amsgrad": "{name: adam, lr: 0.05, amsgrad: true}",
    "adamw": "{name: adamw, lr: 0.05, weight_decay: 0.1}",
    "adamw-amsgrad": "{name: adamw, lr: 0.05, amsgrad: true, eps: 1.0e-6}",
    "rmsprop": "{name: rmsprop, lr: 0.01}",
    "rmsprop-centered": "{name: rmsprop, lr: 0.01, centered: true}",
    "rmsprop-momentum": "{name: rmsprop, lr: 0.01, momentum: 0.9, alpha: 0.9}",
    "rmsprop-centered-momentum": (
        "{name: rmsprop, lr: 0.01, centered: true, momentum: 0.5, weight_decay: 0.01}"),
    "adagrad": "{name: adagrad, lr: 0.1}",
    "adagrad-options": (
        "{name: adagrad, lr: 0.1, lr_decay: 0.01, initial_accumulator_value: 0.1, "
        "weight_decay: 0.01, eps: 1.0e-8}"),
}

SCHEDULES = {
    "constant": "{name: constant}",
    "step": "{name: step, step_size: 5, gamma: 0.5}",
    "exponential": "{name: exponential, gamma: 0.9}",
    "cosine": "{name: cosine, eta_min: 0.1}",
    "cosine-t-max": "{name: cosine, t_max: 8}",
    "warmup-cosine": "{name: cosine, warmup: 5}",
    "warmup-step-unit": "{name: exponential, gamma: 0.95, warmup: 3, unit: step}",
}


def build(optimizer: str, schedule: str = "{name: constant}", extra: str = "") -> gs.IR:
    return gs.build(gs.loads(SPEC.format(optimizer=optimizer, schedule=schedule, extra=extra)))


def check(ir: gs.IR, steps: int = STEPS) -> None:
    report = verify(ir, steps=steps, fd=False)
    assert report.ok, report.render(only_failures=True)
    params = [r for r in report.rows if r.check == "step param"]
    assert {r.tensor for r in params} == set(ir.params) | set(ir.state)
    moved = [r for r in params if r.tensor == "hidden.weight"]
    assert moved and moved[0].max_abs < 1e-9


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_trajectories_agree(name):
    ir = build(OPTIMIZERS[name])
    check(ir)
    if name != "sgd":  # plain SGD keeps no state
        report = verify(ir, steps=2, fd=False)
        assert any(r.check == "step optim" for r in report.rows), "optimizer state not compared"


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_trajectories_agree(name):
    check(build("{name: sgd, lr: 0.2, momentum: 0.9}", SCHEDULES[name]))
    check(build("{name: adam, lr: 0.05}", SCHEDULES[name]))


def test_clipping_trajectories_agree():
    check(build("{name: sgd, lr: 0.5, momentum: 0.9}", extra="  clip_grad_norm: 0.05"))
    check(build("{name: adam, lr: 0.05}", extra="  clip_grad_norm: 0.01"))


def test_param_group_trajectories_agree():
    groups = ("{name: adamw, lr: 0.05, weight_decay: 0.1, groups: ["
              "{params: [biases], weight_decay: 0.0}, {params: ['logit.*'], lr: 0.01}]}")
    check(build(groups, "{name: cosine, warmup: 2}", extra="  clip_grad_norm: 0.5"))
    sgd = "{name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 0.01, groups: [" \
          "{params: ['hidden.*'], lr: 0.3, weight_decay: 0.0}]}"
    check(build(sgd))


def test_batch_norm_running_statistics_follow_the_same_trajectory():
    ir = gs.build(gs.loads(SPEC.format(
        optimizer="{name: sgd, lr: 0.1, momentum: 0.9}", schedule="{name: constant}", extra=""
    ).replace("  - {id: act, op: tanh}", "  - {id: bn, op: batch_norm}\n  - {id: act, op: tanh}")))
    check(ir)
