"""The NumPy Program: runs the generated module in-process."""

from __future__ import annotations

import inspect
import types
from typing import Any

import numpy as np

from graphspec.backend import Arrays, CompileOptions, LossResult
from graphspec.codegen.text import load_module
from graphspec.gc_pause import gc_paused
from graphspec.inputs import InputCheck
from graphspec.ir.graph import IR
from graphspec_numpy.codegen import generate
from graphspec_numpy.trainer import NumpyTrainer


class NumpyProgram:
    def __init__(
        self, ir: IR, options: CompileOptions, module: types.ModuleType | None = None
    ) -> None:
        """``module``: the generated module, already imported (from the file it was written
        to); by default generated here and run in-process."""
        self.ir = ir
        self.options = options
        self.dtype = np.dtype(options.dtype)
        if module is None:
            with gc_paused():  # linear in the graph's size (see gc_pause)
                self._source = generate(ir)
                self.module = load_module(self._source, f"{ir.name}_numpy")
        else:
            self._source, self.module = inspect.getsource(module), module
        self.check_inputs = InputCheck(ir)  # at each entry point; never per training step

    def source(self) -> str:
        return self._source

    # ---- conversion at the boundary ------------------------------------------------------
    def cast(self, arrays: Arrays | None, names: list[str] | None = None) -> Arrays:
        out: Arrays = {}
        for k, v in (arrays or {}).items():
            a = np.asarray(v)
            if names is not None and k in names and self.ir.type(k).dtype == "int":
                out[k] = a.astype(np.int64, copy=False)
            elif a.dtype.kind in "fc" or names is None or k not in names:
                out[k] = a.astype(self.dtype, copy=False) if a.dtype.kind == "f" else a
            else:
                out[k] = a.astype(self.dtype, copy=False)
        return out

    def _args(
        self, params: Arrays, inputs: Arrays, noise: Arrays | None
    ) -> tuple[Arrays, Arrays, Arrays | None]:
        noise_arrays = self.cast(noise) if noise else None
        return self.cast(params), self.cast(inputs, self.ir.inputs), noise_arrays

    # ---- the Program interface --------------------------------------------------------------
    def forward(
        self, params: Arrays, inputs: Arrays, *, training: bool = False,
        noise: Arrays | None = None, rng: np.random.Generator | None = None,
    ) -> Arrays:
        self.check_inputs(inputs, "forward")
        p, x, n = self._args(params, inputs, noise)
        return dict(self.module.forward(p, x, training, n, rng))

    def evaluate(
        self, params: Arrays, inputs: Arrays, *, training: bool = False,
        noise: Arrays | None = None, rng: np.random.Generator | None = None,
    ) -> LossResult:
        self.check_inputs(inputs, "evaluate")
        p, x, n = self._args(params, inputs, noise)
        loss, terms, metrics, outputs, state = self.module.evaluate(p, x, training, n, rng)
        res = LossResult(float(loss), {k: float(v) for k, v in terms.items()}, {}, state,
                         {k: float(v) for k, v in metrics.items()})
        res.outputs = outputs  # type: ignore[attr-defined]
        return res

    def loss_and_grads(
        self, params: Arrays, inputs: Arrays, *, noise: Arrays | None = None,
        training: bool = True, rng: np.random.Generator | None = None,
    ) -> LossResult:
        self.check_inputs(inputs, "loss_and_grads")
        p, x, n = self._args(params, inputs, noise)
        loss, terms, grads, state = self.module.loss_and_grads(p, x, training, n, rng)
        return LossResult(float(loss), {k: float(v) for k, v in terms.items()},
                          {k: np.asarray(v) for k, v in grads.items()}, state)

    def trainer(self, params: Arrays, train: Any, seed: int) -> Any:

        return NumpyTrainer(self, params, train, seed)
