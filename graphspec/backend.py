"""The backend interface and plugin discovery (entry-point group ``graphspec.backends``).

A backend is an object with a ``name`` and ``compile(ir, options) -> Program``; what it
offers beyond that it declares in ``capabilities`` (:class:`Capabilities`; none declared:
nothing beyond).  Arrays cross this boundary as numpy arrays; a backend converts at its
edge.  See docs/backends.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
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
    capture: Literal["none", "cuda_graph"] = "none"  # torch: the whole step as a CUDA graph
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


class NoiseInjectingTrainer(Trainer, Protocol):
    """The trainer of a backend that declares ``Capabilities(noise_injection=True)``."""

    def set_noise(self, arrays: Arrays | None) -> None:
        """Use ``arrays`` (by node id) as the noise of every following step; None: sample
        natively again.  ``graphspec verify`` feeds every backend the same draws."""


class LocatingTrainer(Trainer, Protocol):
    """The trainer of a backend that declares ``Capabilities(locate_nonfinite=True)``."""

    def locate_nonfinite(
        self, split: str, index: np.ndarray, training: bool = True
    ) -> tuple[str, str] | None:
        """(node id, description) of the first node whose value is not finite on rows
        ``index`` of ``split`` with the current parameters, or None when all are finite."""


class DistributedTraining(Protocol):
    """A backend's data-parallel training (``Capabilities.distributed`` returns one); see
    graphspec.train.parallel for what the core asks of it."""

    def launch(
        self, spec: Any, train_kwargs: dict[str, Any], nproc: int, dist_backend: str,
        max_restarts: int, timeout: float | None,
    ) -> Any:
        """Start ``nproc`` workers that train ``spec`` together; rank 0's RunResult."""

    def join(self, dist_backend: str, timeout: float | None) -> Any:
        """This torchrun-started process's group: a context manager with ``rank``,
        ``world_size``, ``is_main``, ``device``, ``restarted``, ``trainer(...)``,
        ``share(fn)`` and ``decide(main, any_)``."""


InitialParamsWriter = Callable[[IR, Arrays, Path], Path]
OnnxExporter = Callable[[IR, Arrays, Path], Path]
SINGLE_PROCESS = "trains in one process"


@dataclass(frozen=True)
class Capabilities:
    """What a backend offers beyond ``compile`` and the required Program and Trainer
    methods, declared once on the backend object (``capabilities = Capabilities(...)``).
    The core reads only this declaration, never probes objects or tests a backend's name;
    the defaults declare nothing, so a minimal plugin needs no ``capabilities`` at all.

    * ``noise_injection``: its trainers implement ``set_noise``
      (:class:`NoiseInjectingTrainer`); ``verify`` then compares the optimizer steps of
      stochastic specs.
    * ``locate_nonfinite``: its trainers implement ``locate_nonfinite``
      (:class:`LocatingTrainer`); the training driver asks them where a non-finite loss
      arose.  A backend that cannot is diagnosed by the reference.
    * ``reference``: a reference backend: exact float64 arithmetic on the host, in process,
      cheap to compile, and its trainers locate non-finite values (so it also declares
      ``locate_nonfinite``).  The core uses it where the backend must not matter: to say
      where another backend's non-finite loss arose, and to draw a trained run's pictures.
      :func:`reference_backend` says which installed backend that is.
    * ``write_initial_params``: ``f(ir, params, module_path) -> path``: writes a compiled
      module's initial parameters beside it in the format the module reads (``graphspec
      compile``); returns the file written.
    * ``distributed``: a function returning the backend's data-parallel training
      (:class:`DistributedTraining`), called only when ``--nproc`` or a torchrun worker
      needs it, so a heavy import waits until then.
    * ``single_process``: for a backend without ``distributed``, the end of the sentence
      "the NAME backend ..." that explains a refused ``--nproc``.
    * ``onnx_export``: a function returning ``f(ir, params, path) -> path``, which writes the
      forward graph with ``params`` as an ONNX model (``graphspec export``); called only
      when asked, so the exporter's imports wait until then.
    """

    noise_injection: bool = False
    locate_nonfinite: bool = False
    reference: bool = False
    write_initial_params: InitialParamsWriter | None = None
    distributed: Callable[[], DistributedTraining] | None = None
    single_process: str = SINGLE_PROCESS
    onnx_export: Callable[[], OnnxExporter] | None = None

    def __post_init__(self) -> None:
        if self.reference and not self.locate_nonfinite:
            raise ValueError("a reference backend locates non-finite values: declare "
                             "locate_nonfinite=True with reference=True")


NO_CAPABILITIES = Capabilities()


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
    """``name`` and ``compile`` are required; a backend that offers more declares it in a
    ``capabilities`` attribute (:class:`Capabilities`), read by :func:`capabilities`."""

    name: str

    def compile(self, ir: IR, options: CompileOptions) -> Program: ...


def capabilities(backend: Backend) -> Capabilities:
    """What ``backend`` declares; the defaults (nothing optional) when it declares nothing."""
    # The one place the core reads a backend's optional attribute: the declaration itself.
    declared = getattr(backend, "capabilities", NO_CAPABILITIES)
    if not isinstance(declared, Capabilities):
        raise BackendError(
            f"backend '{backend.name}' declares capabilities of type "
            f"{type(declared).__name__}, not graphspec.backend.Capabilities",
            hint="declare capabilities = graphspec.backend.Capabilities(...); see "
            "docs/backends.md",
        )
    return declared


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
    capabilities(backend)  # a malformed declaration fails here, naming the backend
    _LOADED[name] = backend
    return backend


def declaring(wants: Callable[[Capabilities], object]) -> Iterator[str]:
    """Names of the installed backends whose declaration satisfies ``wants``, in the order of
    their entry-point names, loaded one at a time as the caller asks for the next (so taking
    the first does not import a heavy plugin later in the order); backends that cannot be
    loaded are passed over."""
    for name in sorted(available_backends()):
        try:
            backend = get_backend(name)
        except BackendError:
            continue
        if wants(capabilities(backend)):
            yield name


def reference_backend() -> Backend:
    """The reference backend: the first installed backend, by entry-point name, that declares
    ``Capabilities(reference=True)`` (graphspec's own: numpy)."""
    for name in declaring(lambda c: c.reference):
        return get_backend(name)
    raise BackendError(
        "no installed backend declares itself a reference (Capabilities(reference=True))",
        hint="install graphspec's numpy backend (it ships with graphspec)",
    )
