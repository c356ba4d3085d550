"""Register an op for the length of a test: its definition, numpy kernels and torch kernel,
loaded from real module files (so kernel copying sees a family module as it would in the
package), and removed from every registry afterwards."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from graphspec.ops import REGISTRY
from graphspec_numpy import kernels as numpy_kernels
from graphspec_torch import kernels as torch_kernels


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@contextmanager
def temporary_op(
    op: str, definition: str, numpy_source: str, torch_source: str, directory: Path
) -> Iterator[tuple[ModuleType, ModuleType, ModuleType]]:
    """Write the three sources as modules (the kernels as ``graphspec_numpy.kernels.<op>``
    and ``graphspec_torch.kernels.<op>``: their families), import them (registering ``op``),
    and undo every registration on exit."""
    names = {
        "definition": f"graphspec_test_ops_{op}",
        "numpy": f"{numpy_kernels.__name__}.{op}",
        "torch": f"{torch_kernels.__name__}.{op}",
    }
    sources = {"definition": definition, "numpy": numpy_source, "torch": torch_source}
    loaded: list[str] = []
    try:
        modules = []
        for key, name in names.items():
            path = directory / f"{name.replace('.', '_')}.py"
            path.write_text(sources[key], encoding="utf-8")
            loaded.append(name)
            modules.append(_load(name, path))
        yield modules[0], modules[1], modules[2]
    finally:
        REGISTRY.pop(op, None)
        for table in (
            numpy_kernels.KERNELS,
            numpy_kernels.VJPS,
            numpy_kernels.SPECS,
            torch_kernels.KERNELS,
        ):
            table.pop(op, None)
        numpy_kernels.RESIDUALS.discard(op)
        for name in loaded:
            sys.modules.pop(name, None)
