"""Training: data, schedules, parameter groups, checkpoints and the driver every backend shares.

``train(spec, backend="numpy", ...)`` is the entry point; backends implement the
``Trainer`` protocol of :mod:`graphspec.backend` and call :func:`schedules.lr_factor` and
:func:`groups.param_groups` so that every backend optimizes the same way.
"""

from __future__ import annotations

from graphspec.train.driver import RunResult, TrainingInterrupted, train

__all__ = ["RunResult", "TrainingInterrupted", "train"]
