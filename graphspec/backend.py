"""The backend interface and plugin discovery (entry-point group ``graphspec.backends``).

A backend is an object with a ``name`` and ``compile(ir, options) -> Program``.  Arrays
cross this boundary as numpy arrays; a backend converts at its edge.  See docs/backends.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal, Protocol

import numpy as np

from graphspec.errors import BackendError, did_you_mean
from graphspec.ir.graph import IR

Arrays = dict[str, np.ndarray]
ENTRY_POINT_GROUP = "graphspec.backends"


@dataclass(frozen=True)
class CompileOptions:
    dtype: Literal["float32", "float64"] = "float64"
    device: str = "auto"  # torch: auto | cpu | cuda | cuda:N
    amp: Literal["none", "bf16", "fp16"] = "none"
    compile: bool = False  # torch.compile
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LossResult:
    loss: float
    terms: dict[str, float]
    grads: Arrays  # every trainable parameter and every differentiable input, by node id
    state: Arrays = field(default_factory=dict)  # updated state buffers (training mode)
    metrics: dict[str, float] = field(default_factory=dict)

    def __iter__(self) -> Any:  # ``loss, terms, grads = prog.loss_and_grads(...)``
        return iter((self.loss, self.terms, self.grads))


class Trainer(Protocol):
    """A backend's stateful training loop body; the core's driver (graphspec.train) owns
    epochs, shuffling, batching, metrics, early stopping, checkpoints and logging.

    * ``set_data(split, arrays)``: hand over a whole split ("train", "val") once; a device
      backend moves it to the device here, so batches are sliced there.
    * ``train_epoch(batches, epoch)``: one optimizer step per batch (an int64 index array
      into the "train" split), in training mode, with the spec's optimizer, lr schedule
      (``graphspec.train.schedules.lr_factor``), parameter groups
      (``graphspec.train.groups.param_groups``) and gradient clipping.  Returns the mean of
      each loss term and of "loss" over the batches (weighted by batch rows).  Must not
      synchronise with the host per step beyond what this return needs; raises
      ``NonFiniteLoss`` (graphspec.errors) with the epoch and step when a loss is NaN or
      Inf, before applying that step where it can.  ``epoch`` and steps are 0-based (as
      ``lr_factor`` takes them); noise is drawn from a generator seeded by
      ``graphspec.train.seeds.stream(seed, NOISE, epoch)`` or its equivalent, so a run
      resumed at an epoch boundary repeats the uninterrupted one.
    * ``evaluate(split)``: "loss", each term and each metric over a whole split, in
      evaluation mode (batch norm uses running statistics, dropout is off).
    * ``params()``: current parameters and state buffers as float64 numpy arrays.
    * ``load_params(arrays)``: replace them (restore-best, resume).
    * ``state_dict()`` / ``load_state_dict(d)``: optimizer state, step counters and RNG
      state as a flat ``{str: np.ndarray}`` (saved to .npz without pickle).
    * ``grad_norms()``: L2 norm of the last step's gradient for each parameter.
    """

    def set_data(self, split: str, arrays: Arrays) -> None: ...
    def train_epoch(self, batches: list[np.ndarray], epoch: int) -> dict[str, float]: ...
    def evaluate(self, split: str) -> dict[str, float]: ...
    def params(self) -> Arrays: ...
    def load_params(self, arrays: Arrays) -> None: ...
    def state_dict(self) -> Arrays: ...
    def load_state_dict(self, state: Arrays) -> None: ...
    def grad_norms(self) -> dict[str, float]: ...


class Program(Protocol):
    ir: IR
    options: CompileOptions

    def forward(
        self, params: Arrays, inputs: Arrays, *, training: bool = False, noise: Arrays | None = None
    ) -> Arrays: ...

    def loss_and_grads(
        self, params: Arrays, inputs: Arrays, *, noise: Arrays | None = None, training: bool = True
    ) -> LossResult: ...

    def evaluate(
        self, params: Arrays, inputs: Arrays, *, training: bool = False, noise: Arrays | None = None
    ) -> LossResult: ...

    def trainer(self, params: Arrays, train: Any, seed: int) -> Trainer: ...

    def source(self) -> str: ...


class Backend(Protocol):
    name: str

    def compile(self, ir: IR, options: CompileOptions) -> Program: ...


def available_backends() -> dict[str, Any]:
    """Entry points of the ``graphspec.backends`` group, by name (not loaded)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


_LOADED: dict[str, Backend] = {}


def get_backend(name: str) -> Backend:
    if name in _LOADED:
        return _LOADED[name]
    eps = available_backends()
    if name not in eps:
        raise BackendError(
            f"unknown backend '{name}'",
            hint=did_you_mean(name, eps) or "installed backends: " + ", ".join(sorted(eps)),
        )
    try:
        backend = eps[name].load()
    except Exception as e:  # a broken plugin must not crash the CLI with a traceback
        raise BackendError(
            f"backend '{name}' cannot be loaded ({eps[name].value}): {type(e).__name__}: {e}"
        ) from None
    if not callable(getattr(backend, "compile", None)):
        raise BackendError(
            f"backend '{name}' ({eps[name].value}) has no compile(ir, options) method",
            hint="a backend object needs a 'name' and a 'compile' method; see docs/backends.md",
        )
    _LOADED[name] = backend
    return backend
