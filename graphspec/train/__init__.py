"""Training: data, schedules, parameter groups, checkpoints and the driver every backend shares.

``train(spec, backend="numpy", ...)`` is the entry point (graphspec.train.driver); backends
implement the ``Trainer`` protocol of :mod:`graphspec.backend` and call
:func:`schedules.lr_factor` and :func:`groups.param_groups` so that every backend optimizes
the same way.

The package itself is callable, so that ``gs.train(spec, ...)`` (the public API) and
``import graphspec.train.data`` both work: binding a *function* named ``train`` on the
``graphspec`` package would hide this subpackage from attribute lookups.  The driver is
imported on the first call, not with the package: reading data or a checkpoint does not
load the training loop, its analyses and their plotting.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graphspec.train.driver import RunResult, TrainingInterrupted, train

_DRIVER_NAMES = ("RunResult", "TrainingInterrupted", "train")


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> RunResult:
        return importlib.import_module("graphspec.train.driver").train(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in _DRIVER_NAMES:
            return getattr(importlib.import_module("graphspec.train.driver"), name)
        raise AttributeError(f"module 'graphspec.train' has no attribute '{name}'")


sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["RunResult", "TrainingInterrupted", "train"]
