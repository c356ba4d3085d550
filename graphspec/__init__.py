"""graphspec: a declarative graph-spec compiler for neural networks.

The public API::

    import graphspec as gs
    spec = gs.load("specs/xor.yaml")        # validated Spec; bad input raises gs.SpecError
    ir = gs.build(spec)                      # typed IR; ir.graph is a networkx.MultiDiGraph
    params = gs.init_params(ir, seed=0)      # {param name: np.ndarray}
    prog = gs.compile(ir, backend="numpy", dtype="float64")
    outputs = prog.forward(params, {"x": X})
    loss, terms, grads = prog.loss_and_grads(params, {"x": X, "y": Y})
"""

from __future__ import annotations

from typing import Any

import graphspec.train as train  # callable: gs.train(spec, ...) runs graphspec.train.train
from graphspec.backend import CompileOptions, Program, get_backend
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
from graphspec.init import init_params
from graphspec.ir.build import build
from graphspec.ir.graph import IR
from graphspec.spec.load import load, loads

__version__ = "0.1.0"


def compile(
    ir: IR,
    backend: str = "numpy",
    *,
    dtype: str = "float64",
    device: str = "auto",
    **options: Any,
) -> Program:
    """Compile the IR with a backend found through the ``graphspec.backends`` entry points."""
    opts = CompileOptions(dtype=dtype, device=device, **options)  # type: ignore[arg-type]
    return get_backend(backend).compile(ir, opts)


def load_run(path: Any) -> Any:
    """A finished run directory: ``.spec``, ``.params``, ``.history``, ``.summary``,
    ``.predict(X)``, ``.evaluate(data)``, ``.program(backend=...)`` (graphspec.run)."""
    from graphspec.run import load_run as _load_run

    return _load_run(path)


def verify(spec: Any, backends: tuple[str, ...] = ("numpy", "torch"), **options: Any) -> Any:
    """Compare backends on a spec: outputs, losses, gradients, steps (see graphspec.verify)."""
    from graphspec.verify import verify as _verify

    return _verify(spec, backends=backends, **options)


__all__ = [
    "BackendError", "CheckpointError", "CompileOptions", "DataError", "GraphspecError", "IR",
    "InputError", "Location", "Program", "SpecError", "TrainingError", "build", "compile",
    "get_backend", "init_params", "load", "load_run", "loads", "verify", "train", "__version__",
]
