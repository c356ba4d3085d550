"""graphspec: a declarative graph-spec compiler for neural networks.

The public API::

    import graphspec as gs
    spec = gs.load("specs/xor.yaml")        # validated Spec; bad input raises gs.SpecError
    ir = gs.build(spec)                      # typed IR; ir.graph is a networkx.MultiDiGraph
    params = gs.init_params(ir, seed=0)      # {param name: np.ndarray}
    prog = gs.compile(ir, backend="numpy", dtype="float64")
    outputs = prog.forward(params, {"x": X})
    loss, terms, grads = prog.loss_and_grads(params, {"x": X, "y": Y})

``import graphspec`` loads only the error classes: each other name is imported the first
time it is used (PEP 562), so a command line that only validates a spec never pays for
networkx, the training driver, torch or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from graphspec.errors import (
    BackendError,
    CheckpointError,
    DataError,
    GraphspecError,
    InputError,
    Location,
    SpecError,
    TrainingError,
)

if TYPE_CHECKING:
    from graphspec import train
    from graphspec.backend import CompileOptions, Program, get_backend
    from graphspec.ir.build import build
    from graphspec.ir.graph import IR
    from graphspec.ir.initializers import init_params
    from graphspec.spec.load import load, loads
    from graphspec.verify import verify

__version__ = "0.1.0"

# Public name -> the module that defines it (imported on first use).
_LAZY = {
    "CompileOptions": "graphspec.backend",
    "Program": "graphspec.backend",
    "get_backend": "graphspec.backend",
    "build": "graphspec.ir.build",
    "IR": "graphspec.ir.graph",
    "init_params": "graphspec.ir.initializers",
    "load": "graphspec.spec.load",
    "loads": "graphspec.spec.load",
    "verify": "graphspec.verify",
}


def __getattr__(name: str) -> Any:
    if name == "train":
        # The training package is callable (gs.train(spec, ...)) and stays importable as a
        # package (graphspec.train.data); see graphspec/train/__init__.py.
        return importlib.import_module("graphspec.train")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'graphspec' has no attribute '{name}'")


def compile(
    ir: IR,
    backend: str = "numpy",
    *,
    dtype: str = "float64",
    device: str = "auto",
    **options: Any,
) -> Program:
    """Compile the IR with a backend found through the ``graphspec.backends`` entry points;
    ``backend="auto"`` picks numpy or torch and the device by model size
    (graphspec.backend_choice) and says which on stderr."""
    from graphspec.backend import CompileOptions, get_backend  # deferred: see the docstring
    from graphspec.backend_choice import resolve  # deferred: see the docstring

    backend, device = resolve(backend, ir, device)
    opts = CompileOptions(dtype=dtype, device=device, **options)  # type: ignore[arg-type]
    return get_backend(backend).compile(ir, opts)


def load_run(path: Any) -> Any:
    """A finished run directory: ``.spec``, ``.params``, ``.history``, ``.summary``,
    ``.predict(X)``, ``.evaluate(data)``, ``.program(backend=...)`` (graphspec.runs.run)."""
    from graphspec.runs.run import load_run as _load_run  # deferred: see the docstring

    return _load_run(path)


__all__ = [
    "BackendError", "CheckpointError", "CompileOptions", "DataError", "GraphspecError", "IR",
    "InputError", "Location", "Program", "SpecError", "TrainingError", "build", "compile",
    "get_backend", "init_params", "load", "load_run", "loads", "verify", "train", "__version__",
]
