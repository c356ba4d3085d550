"""A third backend, small: the core's reference interpreter running the numpy kernels.

It is what docs/backends.md describes, written as a plugin would be: it imports only the
core and a kernel table, registers through the ``graphspec.backends`` entry-point group
(tests/backends/test_backend_plugin.py does that with a temporary dist-info), and is verified
against the reference with ``verify(spec, backends=("numpy", "mini"))``.  No code is
generated: each call walks the graph with ``graphspec.ir.interpret.Interpreter``, and the
backward pass walks it back with the table's VJPs.  Another kernel table (any object with
``VJPS``, ``forward``, ``backward`` and ``unbroadcast``) makes another backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphspec.backend import Arrays, Capabilities, CompileOptions, LossResult
from graphspec.ir.graph import IR
from graphspec.ir.interpret import Interpreter
from graphspec.train.groups import param_groups
from graphspec.train.schedules import lr_factor
from graphspec_numpy import kernels
from graphspec_numpy.optim import clip_grad_norm, make_optimizer


class MiniProgram:
    def __init__(self, ir: IR, options: CompileOptions) -> None:
        self.ir, self.options = ir, options
        self.dtype = np.dtype(options.dtype)
        self.interpreter = Interpreter(ir, kernels)

    def source(self) -> str:
        return "# the mini backend interprets the IR; it generates no code\n"

    def _cast(self, arrays: Arrays | None) -> Arrays:
        out = {}
        for k, v in (arrays or {}).items():
            a = np.asarray(v)
            out[k] = a.astype(self.dtype) if a.dtype.kind == "f" else a
        return out

    def forward(self, params: Arrays, inputs: Arrays, *, training: bool = False,
                noise: Arrays | None = None) -> Arrays:
        return self.interpreter.forward(self._cast(params), self._cast(inputs),
                                        training=training, noise=self._cast(noise))

    def evaluate(self, params: Arrays, inputs: Arrays, *, training: bool = False,
                 noise: Arrays | None = None) -> LossResult:
        return self.interpreter.evaluate(self._cast(params), self._cast(inputs),
                                         training=training, noise=self._cast(noise))

    def loss_and_grads(self, params: Arrays, inputs: Arrays, *, noise: Arrays | None = None,
                       training: bool = True) -> LossResult:
        return self.interpreter.loss_and_grads(self._cast(params), self._cast(inputs),
                                               training=training, noise=self._cast(noise))

    def trainer(self, params: Arrays, train: Any, seed: int) -> MiniTrainer:
        return MiniTrainer(self, params, train)


class MiniTrainer:
    """The Trainer protocol with numpy's optimizers; takes injected noise (``set_noise``)."""

    def __init__(self, program: MiniProgram, params: Arrays, train: Any) -> None:
        self.program, self.ir, self.train = program, program.ir, train
        self.p = {k: np.array(v, dtype=program.dtype) for k, v in params.items()}
        self.optimizer = make_optimizer(train.optimizer, param_groups(self.ir, train.optimizer))
        self.data: dict[str, Arrays] = {}
        self.noise: Arrays | None = None
        self.norms: dict[str, float] = {}

    def set_noise(self, noise: Arrays | None) -> None:
        self.noise = noise

    def set_data(self, split: str, arrays: Arrays) -> None:
        self.data[split] = dict(arrays)

    def train_epoch(self, batches: list[np.ndarray], epoch: int) -> dict[str, float]:
        sums: dict[str, float] = {}
        for step, idx in enumerate(batches):
            x = {k: v[idx] for k, v in self.data["train"].items()}
            res = self.program.loss_and_grads(self.p, x, noise=self.noise)
            grads = {k: res.grads[k] for k in self.ir.params}
            if self.train.clip_grad_norm is not None:
                grads, _, _ = clip_grad_norm(grads, self.train.clip_grad_norm)
            self.norms = {k: float(np.linalg.norm(g)) for k, g in grads.items()}
            factor = lr_factor(self.train.schedule, epoch, step, len(batches))
            self.optimizer.step(self.p, grads, factor)
            self.p.update(res.state)
            for k, v in [("loss", res.loss), *res.terms.items()]:
                sums[k] = sums.get(k, 0.0) + v / len(batches)
        return sums

    def evaluate(self, split: str) -> dict[str, float]:
        res = self.program.evaluate(self.p, self.data[split])
        return {"loss": res.loss, **res.terms, **res.metrics}

    def params(self) -> Arrays:
        return {k: np.array(v, dtype=np.float64) for k, v in self.p.items()}

    def load_params(self, arrays: Arrays) -> None:
        for k, v in arrays.items():
            self.p[k][...] = v

    def state_dict(self) -> Arrays:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: Arrays) -> None:
        self.optimizer.load_state_dict(state, self.p)

    def grad_norms(self) -> dict[str, float]:
        return dict(self.norms)


class MiniBackend:
    name = "mini"
    # Its trainers take injected noise (MiniTrainer.set_noise): verify compares their steps
    # on stochastic specs.  Nothing else is declared, so the core's defaults apply.
    capabilities = Capabilities(noise_injection=True)

    def compile(self, ir: IR, options: CompileOptions) -> MiniProgram:
        return MiniProgram(ir, options)


class BareBackend:
    """The same interpreter declaring nothing (no ``capabilities``): a minimal plugin."""

    name = "bare"

    def compile(self, ir: IR, options: CompileOptions) -> MiniProgram:
        return MiniProgram(ir, options)


backend = MiniBackend()
bare = BareBackend()
