"""Training: data, schedules, parameter groups, checkpoints and the driver every backend shares.

``train(spec, backend="numpy", ...)`` is the entry point; backends implement the
``Trainer`` protocol of :mod:`graphspec.backend` and call :func:`schedules.lr_factor` and
:func:`groups.param_groups` so that every backend optimizes the same way.

The package itself is callable, so that ``gs.train(spec, ...)`` (the public API) and
``import graphspec.train.data`` both work: binding a *function* named ``train`` on the
``graphspec`` package would hide this subpackage from attribute lookups.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from graphspec.train.driver import RunResult, TrainingInterrupted, train


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> RunResult:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["RunResult", "TrainingInterrupted", "train"]
