"""Optimizers in NumPy, following torch.optim's single-tensor (``foreach=False``) update rules
operation by operation, so that trajectories agree with the torch backend to rounding.

Each update below mirrors the torch source line for line: where torch writes
``buf.mul_(m).add_(g, alpha=1 - d)`` we compute ``buf * m + (1 - d) * g`` in that order;
``addcmul(t1, t2, value=v)`` is ``self + (v * t1) * t2`` and ``addcdiv`` is
``self + (v * t1) / t2``.  Torch's CPU kernels may fuse a multiply-add, so agreement is to a
few ulps per step, not bit for bit.

Parameters are updated in place; gradients are never modified (a VJP may hand the same
array to two parameters).  State lives in flat numpy arrays (``{param}/{buffer}``) so a
checkpoint stores it without pickle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel

from graphspec.spec.models import AdagradSpec, AdamSpec, AdamWSpec, RMSpropSpec, SGDSpec

Arrays = dict[str, np.ndarray]


def lerp(start: np.ndarray, end: np.ndarray, weight: float) -> np.ndarray:
    """torch.lerp's formula: the form that is exact at the nearer endpoint."""
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


def clip_grad_norm(grads: Arrays, max_norm: float) -> tuple[Arrays, float, dict[str, float]]:
    """Scale gradients to a global L2 norm of at most ``max_norm`` as
    ``torch.nn.utils.clip_grad_norm_`` does: ``coef = min(max_norm / (total + 1e-6), 1)``,
    applied always (a factor of exactly 1 changes nothing).  Returns the new gradients, the
    total norm before clipping and each gradient's norm before clipping."""
    norms = {k: float(np.linalg.norm(g.ravel())) for k, g in grads.items()}
    total = math.sqrt(sum(n * n for n in norms.values())) if norms else 0.0
    coef = min(max_norm / (total + 1e-6), 1.0)
    return {k: g * coef for k, g in grads.items()}, total, norms


class Optimizer:
    """Base: groups of parameters with their own lr and weight decay, per-parameter state."""

    buffers: tuple[str, ...] = ()

    def __init__(self, spec: Any, groups: list[tuple[list[str], dict[str, float]]]) -> None:
        self.spec = spec
        self.groups = [
            (list(names), float(o.get("lr", spec.lr)),
             float(o.get("weight_decay", spec.weight_decay)))
            for names, o in groups
        ]
        self.state: dict[str, dict[str, np.ndarray]] = {}
        # Each parameter's (group lr, weight decay), in group order: looked up per update
        # instead of walking the groups.
        self.options = {name: (lr, wd) for names, lr, wd in self.groups for name in names}
        self._params: Arrays = {}
        self._factor = 1.0

    def step(self, params: Arrays, grads: Arrays, lr_factor: float = 1.0) -> None:
        """One update of every parameter in place; the lr is ``group lr * lr_factor``."""
        self.begin(params, lr_factor)
        for name in self.options:
            self.apply(name, grads[name])

    def begin(self, params: Arrays, lr_factor: float = 1.0) -> None:
        """Start a step: the parameters :meth:`apply` updates and the step's lr factor."""
        self._params = params
        self._factor = lr_factor

    def apply(self, name: str, g: np.ndarray) -> None:
        """Update parameter ``name`` with its gradient ``g``: what :meth:`step` does for each
        parameter, and what a fused backward pass calls as each gradient becomes final (the
        update of one parameter reads only its own gradient, value and state)."""
        lr, wd = self.options[name]
        st = self.state.get(name)
        if st is None:
            st = self.state[name] = {}
        self.update(self._params[name], g, st, lr * self._factor, wd)

    def update(
        self, p: np.ndarray, g: np.ndarray, st: dict[str, np.ndarray], lr: float, wd: float
    ) -> None:  # pragma: no cover - every optimizer overrides it
        raise NotImplementedError

    # ---- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> Arrays:
        return {f"{name}/{k}": np.array(v)
                for name, st in self.state.items() for k, v in st.items()}

    def load_state_dict(self, flat: Arrays, params: Arrays) -> None:
        """Restore state saved by :meth:`state_dict`; checks names, buffers and shapes."""
        state: dict[str, dict[str, np.ndarray]] = {}
        for key, value in flat.items():
            name, _, buf = key.rpartition("/")
            if name not in params:
                raise ValueError(f"optimizer state for unknown parameter '{name}'")
            if buf not in self.buffers:
                raise ValueError(f"unknown optimizer buffer '{buf}' for '{name}'")
            want = () if buf == "step" else params[name].shape
            if tuple(value.shape) != want:
                raise ValueError(
                    f"optimizer buffer '{key}' has shape {tuple(value.shape)}, expected {want}"
                )
            dtype = np.float64 if buf == "step" else params[name].dtype
            state.setdefault(name, {})[buf] = np.array(value, dtype=dtype)
        self.state = state


class SGD(Optimizer):
    buffers = ("momentum_buffer",)

    def update(self, p, g, st, lr, wd):  # type: ignore[no-untyped-def]
        s = self.spec
        if wd != 0:
            g = g + wd * p
        if s.momentum != 0:
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = st["momentum_buffer"] = g.copy()  # torch: first step buf = grad.clone()
            else:
                buf *= s.momentum
                buf += (1 - s.dampening) * g
            g = g + s.momentum * buf if s.nesterov else buf
        p += -lr * g


class Adam(Optimizer):
    """Adam; ``decoupled`` weight decay makes it AdamW (``p *= 1 - lr * wd`` first)."""

    buffers = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    decoupled = False

    def update(self, p, g, st, lr, wd):  # type: ignore[no-untyped-def]
        s = self.spec
        beta1, beta2 = s.betas
        if "step" not in st:
            st["step"] = np.zeros((), np.float64)
            st["exp_avg"] = np.zeros_like(p)
            st["exp_avg_sq"] = np.zeros_like(p)
            if s.amsgrad:
                st["max_exp_avg_sq"] = np.zeros_like(p)
        st["step"] += 1
        if wd != 0:
            if self.decoupled:
                p *= 1 - lr * wd
            else:
                g = g + wd * p
        st["exp_avg"][...] = lerp(st["exp_avg"], g, 1 - beta1)
        sq = st["exp_avg_sq"]
        sq *= beta2
        sq += (1 - beta2) * g * g
        step = float(st["step"])
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        if s.amsgrad:
            np.maximum(st["max_exp_avg_sq"], sq, out=st["max_exp_avg_sq"])
            denom = np.sqrt(st["max_exp_avg_sq"]) / bias_correction2_sqrt + s.eps
        else:
            denom = np.sqrt(sq) / bias_correction2_sqrt + s.eps
        p += (-step_size * st["exp_avg"]) / denom


class AdamW(Adam):
    decoupled = True


class RMSprop(Optimizer):
    buffers = ("step", "square_avg", "momentum_buffer", "grad_avg")

    def update(self, p, g, st, lr, wd):  # type: ignore[no-untyped-def]
        s = self.spec
        if "step" not in st:
            st["step"] = np.zeros((), np.float64)
            st["square_avg"] = np.zeros_like(p)
            if s.momentum > 0:
                st["momentum_buffer"] = np.zeros_like(p)
            if s.centered:
                st["grad_avg"] = np.zeros_like(p)
        st["step"] += 1
        if wd != 0:
            g = g + wd * p
        sq = st["square_avg"]
        sq *= s.alpha
        sq += (1 - s.alpha) * g * g
        if s.centered:
            st["grad_avg"][...] = lerp(st["grad_avg"], g, 1 - s.alpha)
            avg = np.sqrt(sq + (-1.0 * st["grad_avg"]) * st["grad_avg"])
        else:
            avg = np.sqrt(sq)
        avg = avg + s.eps
        if s.momentum > 0:
            buf = st["momentum_buffer"]
            buf *= s.momentum
            buf += g / avg
            p += -lr * buf
        else:
            p += (-lr * g) / avg


class Adagrad(Optimizer):
    buffers = ("step", "sum")

    def update(self, p, g, st, lr, wd):  # type: ignore[no-untyped-def]
        s = self.spec
        if "step" not in st:
            st["step"] = np.zeros((), np.float64)
            st["sum"] = np.full_like(p, s.initial_accumulator_value)
        st["step"] += 1
        step = float(st["step"])
        if wd != 0:
            g = g + wd * p
        clr = lr / (1 + (step - 1) * s.lr_decay)
        st["sum"] += g * g
        std = np.sqrt(st["sum"]) + s.eps
        p += (-clr * g) / std


# One implementation per optimizer model of the spec (graphspec.spec.models.OptimizerSpec).
OPTIMIZERS: dict[type[BaseModel], Callable[..., Optimizer]] = {
    SGDSpec: SGD, AdamSpec: Adam, AdamWSpec: AdamW, RMSpropSpec: RMSprop, AdagradSpec: Adagrad,
}


def make_optimizer(spec: Any, groups: list[tuple[list[str], dict[str, float]]]) -> Optimizer:
    return OPTIMIZERS[type(spec)](spec, groups)
