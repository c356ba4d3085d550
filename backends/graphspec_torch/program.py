"""The torch Program: runs the generated ``Model`` in-process, numpy arrays at its edge.

``forward``, ``evaluate`` and ``loss_and_grads`` are the verification interface: each call
copies the given parameters in, runs with TF32 off (so float32 results are comparable with the
float64 reference), and hands back numpy arrays.  Training goes through :meth:`trainer`,
which keeps everything on the device.
"""

from __future__ import annotations

import inspect
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphspec.backend import Arrays, CompileOptions, LossResult
from graphspec.codegen.text import load_module
from graphspec.gc_pause import gc_paused
from graphspec.inputs import InputCheck
from graphspec.ir.graph import IR
from graphspec.ir.plan import Plan
from graphspec_torch import capture
from graphspec_torch.codegen import generate, write_initial_params
from graphspec_torch.device import (
    autocast,
    no_tf32,
    resolve_amp,
    resolve_device,
    resolve_dtype,
)
from graphspec_torch.trainer import TorchTrainer


class TorchProgram:
    def __init__(
        self, ir: IR, options: CompileOptions, module: types.ModuleType | None = None
    ) -> None:
        """``module``: the generated module, already imported (from the file it was written
        to); by default generated here and run in-process."""
        self.ir = ir
        self.options = options
        self.device = resolve_device(options.device)
        self.dtype = resolve_dtype(options.dtype)
        self.amp_dtype = resolve_amp(options.amp, self.dtype)
        self.capture = capture.check_mode(options.capture)
        capture.check_device(self.capture, self.device)
        if module is None:
            with gc_paused():  # linear in the graph's size (see gc_pause)
                self._source = generate(ir)
                self.module = load_module(self._source, f"{ir.name}_torch")
        else:
            self._source, self.module = inspect.getsource(module), module
        self.check_inputs = InputCheck(ir)  # at each entry point; never per training step
        self.model = self.new_model()
        self.int_inputs = set(self.module.INT_INPUTS)
        plan = Plan(ir)
        self.grad_leaves = plan.grad_leaves()
        self._state_of = {
            "losses": _state_read_by(ir, plan.needed(plan.loss_targets())),
            "evaluate": _state_read_by(
                ir, plan.needed([f"output:{k}" for k in ir.outputs]
                                + plan.loss_targets() + list(ir.metrics)),
            ),
        }
        self._forward = self.model.forward
        self._losses = self.model.losses
        self._evaluate = self.model.evaluate
        if options.compile:
            self._forward = torch.compile(self.model.forward)
            self._losses = torch.compile(self.model.losses)
            self._evaluate = torch.compile(self.model.evaluate)

    def new_model(self) -> torch.nn.Module:
        return self.module.Model(dtype=self.dtype, device=self.device)

    def source(self) -> str:
        return self._source

    def write(self, path: str | Path, params: Arrays | None = None) -> list[Path]:
        """Write the module to ``path`` and, given parameters, their values next to it as a
        ``.pt`` of plain float64 tensors keyed by spec name (``Model.load_params`` reads it
        with ``weights_only=True``).  Returns the files written."""
        path = Path(path)
        path.write_text(self._source)
        written = [path]
        if params is not None:
            written.append(write_initial_params(self.ir, params, path))
        return written

    # ---- conversion at the boundary ------------------------------------------------------
    def to_tensors(self, arrays: Arrays | None, inputs: bool = False) -> dict[str, torch.Tensor]:
        """Float arrays (and float inputs given as ints) in the program's dtype, int inputs as
        int64, on the device."""
        out: dict[str, torch.Tensor] = {}
        for k, v in (arrays or {}).items():
            # C order (torch refuses negative strides); np.ascontiguousarray would also turn
            # a 0-d array into shape (1,).
            a = np.asarray(v, order="C")
            if inputs and k in self.int_inputs:
                out[k] = torch.as_tensor(a.astype(np.int64, copy=False), device=self.device)
            elif a.dtype.kind in "fc" or (inputs and k in self.ir.inputs):
                out[k] = torch.as_tensor(a, dtype=self.dtype, device=self.device)
            else:
                out[k] = torch.as_tensor(a, device=self.device)
        return out

    def _load(self, params: Arrays, training: bool, rng: Any) -> None:
        self.model.load_params(params)
        self.model.train(training)
        self.model.generator = _generator(rng, self.device)

    def _numpy(self, t: torch.Tensor) -> np.ndarray:
        t = t.detach()
        if t.is_floating_point():
            t = t.to(self.dtype)
        # A copy: on the CPU .numpy() shares memory with live parameters and buffers.
        return t.cpu().numpy().copy()

    def _state(self, method: str) -> Arrays:
        attrs = self.module.SPEC_NAMES
        return {s: self._numpy(getattr(self.model, attrs[s])) for s in self._state_of[method]}

    # ---- the Program interface --------------------------------------------------------------
    def forward(
        self, params: Arrays, inputs: Arrays, *, training: bool = False,
        noise: Arrays | None = None, rng: Any = None,
    ) -> Arrays:
        self.check_inputs(inputs, "forward")
        self._load(params, training, rng)
        x, nz = self.to_tensors(inputs, True), self.to_tensors(noise) if noise else None
        with torch.no_grad(), no_tf32(), autocast(self.device, self.amp_dtype):
            out = self._forward(x, nz)
        return {k: self._numpy(v) for k, v in out.items()}

    def evaluate(
        self, params: Arrays, inputs: Arrays, *, training: bool = False,
        noise: Arrays | None = None, rng: Any = None,
    ) -> LossResult:
        self.check_inputs(inputs, "evaluate")
        self._load(params, training, rng)
        x, nz = self.to_tensors(inputs, True), self.to_tensors(noise) if noise else None
        with torch.no_grad(), no_tf32(), autocast(self.device, self.amp_dtype):
            loss, terms, metrics, outputs = self._evaluate(x, nz)
        res = LossResult(
            float(loss), {k: float(v) for k, v in terms.items()}, {}, self._state("evaluate"),
            {k: float(v) for k, v in metrics.items()},
        )
        res.outputs = {k: self._numpy(v) for k, v in outputs.items()}  # type: ignore[attr-defined]
        return res

    def loss_and_grads(
        self, params: Arrays, inputs: Arrays, *, noise: Arrays | None = None,
        training: bool = True, rng: Any = None,
    ) -> LossResult:
        self.check_inputs(inputs, "loss_and_grads")
        self._load(params, training, rng)
        x, nz = self.to_tensors(inputs, True), self.to_tensors(noise) if noise else None
        leaf_inputs = [k for k in self.grad_leaves if k in x]
        for k in leaf_inputs:
            x[k].requires_grad_(True)
        for p in self.model.parameters():
            p.grad = None
        with no_tf32():
            with autocast(self.device, self.amp_dtype):
                loss, terms = self._losses(x, nz)
            if loss.requires_grad:
                loss.backward()
        attrs = self.module.SPEC_NAMES
        grads: Arrays = {}
        for name in self.grad_leaves:
            t = getattr(self.model, attrs[name]) if name in attrs else x[name]
            grads[name] = self._numpy(t.grad) if t.grad is not None else np.zeros(
                tuple(t.shape), dtype=self._numpy(t).dtype
            )
        return LossResult(
            float(loss.detach()), {k: float(v.detach()) for k, v in terms.items()}, grads,
            self._state("losses"),
        )

    def trainer(self, params: Arrays, train: Any, seed: int) -> Any:

        return TorchTrainer(self, params, train, seed)


def _state_read_by(ir: IR, ops: list[str]) -> list[str]:
    """Buffers that the ``has_state`` ops among ``ops`` update (constants are state too,
    but nothing updates them)."""
    out: list[str] = []
    for n in ops:
        node = ir.op(n)
        if not node.opdef.has_state:
            continue
        out += [s for s in node.state_args if s not in out]
    return out


def _generator(rng: Any, device: torch.device) -> torch.Generator | None:
    """A ``torch.Generator`` as given, or seeded from an int; None means torch's global RNG."""
    if rng is None or isinstance(rng, torch.Generator):
        return rng
    if isinstance(rng, (int, np.integer)):
        return torch.Generator(device).manual_seed(int(rng))
    raise TypeError(f"rng must be a torch.Generator or an int seed, not {type(rng).__name__}")
