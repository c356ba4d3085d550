"""torch.optim optimizers from the spec's optimizer settings, and their state as flat arrays.

Groups come from :func:`graphspec.train.groups.param_groups` and the lr schedule from
:func:`graphspec.train.schedules.lr_factor`, the definitions the numpy backend uses too, so
both backends group and schedule identically.  Optimizer state is flattened to
``{param name}/{buffer}`` with torch's buffer names (``momentum_buffer``, ``exp_avg``,
``step``...): the numpy backend's layout, so trajectories compare key by key and a state
saved by one backend loads in the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import BaseModel

from graphspec.ir.graph import IR
from graphspec.spec.models import AdagradSpec, AdamSpec, AdamWSpec, RMSpropSpec, SGDSpec
from graphspec.train.groups import param_groups
from graphspec.train.schedules import lr_factor

# One implementation per optimizer model of the spec (graphspec.spec.models.OptimizerSpec).
OPTIMIZERS: dict[type[BaseModel], type[torch.optim.Optimizer]] = {
    SGDSpec: torch.optim.SGD,
    AdamSpec: torch.optim.Adam,
    AdamWSpec: torch.optim.AdamW,
    RMSpropSpec: torch.optim.RMSprop,
    AdagradSpec: torch.optim.Adagrad,
}


class Optim:
    """A torch optimizer over named parameters, with the spec's schedule applied per step."""

    def __init__(self, ir: IR, spec: Any, schedule: Any, named: dict[str, torch.nn.Parameter],
                 extra: dict[str, Any] | None = None):
        """``extra``: more keyword arguments for the torch optimizer (``capturable``)."""
        self.spec = spec
        self.schedule = schedule
        self.names: list[str] = []  # parameter names in the optimizer's index order
        groups = []
        for names, overrides in param_groups(ir, spec):
            groups.append({"params": [named[n] for n in names], **overrides})
            self.names += names
        # The spec's fields are torch's keyword arguments, by design of the spec models.
        options = spec.model_dump(exclude={"name", "groups"})
        if isinstance(options.get("betas"), list):
            options["betas"] = tuple(options["betas"])
        options.update(extra or {})
        self.opt = OPTIMIZERS[type(spec)](groups, **options)
        self.base_lrs = [float(g["lr"]) for g in self.opt.param_groups]
        self._static = schedule.name == "constant" and schedule.warmup == 0
        self._params = [named[n] for n in self.names]
        # The fused update's optimizer per parameter (``step_one``), made on first use.
        self._singles: dict[torch.nn.Parameter, tuple[torch.optim.Optimizer, int]] = {}

    def step_one(self, p: torch.nn.Parameter) -> None:
        """Update parameter ``p`` alone, its gradient being final: the fused update
        (PyTorch's optimizer-in-backward recipe).  An optimizer over just ``p`` with its
        group's options and this optimizer's state makes the step ``opt.step()`` would
        make for ``p``: torch's update rules treat each parameter on its own."""
        if p not in self._singles:
            index = next(i for i, g in enumerate(self.opt.param_groups)
                         if any(q is p for q in g["params"]))
            group = {k: v for k, v in self.opt.param_groups[index].items() if k != "params"}
            self._singles[p] = (type(self.opt)([{"params": [p], **group}]), index)
        single, index = self._singles[p]
        single.state = self.opt.state  # shared (load_state_dict replaces the object)
        single.param_groups[0]["lr"] = self.opt.param_groups[index]["lr"]  # the schedule's
        single.step()

    def set_lr(self, epoch: int, step: int, steps_per_epoch: int) -> None:
        """Each group's lr = base lr * schedule factor (torch's LambdaLR, stepped per batch)."""
        if self._static:
            return
        factor = lr_factor(self.schedule, epoch, step, steps_per_epoch)
        for group, base in zip(self.opt.param_groups, self.base_lrs):
            group["lr"] = base * factor

    # ---- state as flat arrays --------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for index, state in self.opt.state_dict()["state"].items():
            name = self.names[index]
            for key, value in state.items():
                if value is None:  # e.g. SGD's momentum buffer before its first use
                    continue
                if isinstance(value, torch.Tensor):
                    # A copy: torch hands out its live buffers, which later steps overwrite.
                    a = value.detach().cpu().numpy().copy()
                else:
                    a = np.array(value)
                out[f"{name}/{key}"] = a.astype(np.float64) if key == "step" else a
        return out

    def load_state_dict(self, flat: dict[str, np.ndarray]) -> None:
        index = {n: i for i, n in enumerate(self.names)}
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in flat.items():
            name, _, buf = key.rpartition("/")
            if name not in index:
                raise ValueError(f"optimizer state for unknown parameter '{name}'")
            p = self._params[index[name]]
            a = np.asarray(value)
            if buf == "step":
                if a.shape != ():
                    raise ValueError(f"optimizer buffer '{key}' must be a scalar")
                # torch keeps step counts as float32 CPU scalars (float64 if that is default).
                t = torch.tensor(float(a), dtype=_scalar_dtype())
            else:
                if tuple(a.shape) != tuple(p.shape):
                    raise ValueError(
                        f"optimizer buffer '{key}' has shape {tuple(a.shape)}, "
                        f"expected {tuple(p.shape)}"
                    )
                t = torch.as_tensor(np.array(a), dtype=p.dtype, device=p.device)
            state.setdefault(index[name], {})[buf] = t
        sd = self.opt.state_dict()
        sd["state"] = state
        self.opt.load_state_dict(sd)


def _scalar_dtype() -> torch.dtype:
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
