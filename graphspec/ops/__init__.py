"""The op registry. Every module in this package defines ops; importing the package loads all.

Adding an op: define it in the family module it belongs to (or a new module here), then
give it a kernel in each backend's ``kernels`` package.
"""

from __future__ import annotations

import importlib
import pkgutil

from graphspec.ops.registry import (
    REGISTRY,
    Attrs,
    Input,
    Noise,
    OpDef,
    ParamDecl,
    Sample,
    ShapeError,
    TensorType,
    get_op,
    op,
)

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _mod != "registry":
        importlib.import_module(f"{__name__}.{_mod}")

__all__ = [
    "REGISTRY", "Attrs", "Input", "Noise", "OpDef", "ParamDecl", "Sample", "ShapeError",
    "TensorType", "get_op", "op",
]
