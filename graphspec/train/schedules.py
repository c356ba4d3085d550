"""Learning-rate schedules as a factor of each parameter group's base learning rate.

Every backend calls :func:`lr_factor` before each optimizer step and sets a group's lr to
``base_lr * factor`` (torch: like ``LambdaLR``), so all backends follow one definition.

Time ``t`` counts epochs (``unit: epoch``; constant within an epoch) or optimizer steps
(``unit: step``), from 0.  The first ``warmup`` units ramp the factor linearly,
``(t + 1) / warmup`` (torch: ``LinearLR(start_factor=1/warmup, total_iters=warmup - 1)``);
the schedule proper then runs on ``s = t - warmup``:

``constant``     1
``step``         ``gamma ** (s // step_size)``                      (torch ``StepLR``)
``exponential``  ``gamma ** s``                                     (torch ``ExponentialLR``)
``cosine``       ``eta_min + (1 - eta_min) * (1 + cos(pi * s / t_max)) / 2`` for s <= t_max,
                 then ``eta_min``

``eta_min`` is a *fraction* of the base lr, unlike torch's ``CosineAnnealingLR`` whose
``eta_min`` is an absolute lr: a fraction means the same thing for every parameter group.
(With one group of base lr ``b`` the two agree for torch ``eta_min = eta_min * b``.)  After
``t_max`` the factor stays at ``eta_min`` where torch's would rise again along the cosine.
``t_max`` defaults to the training length after warm-up; :func:`resolve` fills it in.
"""

from __future__ import annotations

import math

from graphspec.spec.models import ScheduleSpec, TrainSpec


def lr_factor(schedule: ScheduleSpec, epoch: int, step: int, steps_per_epoch: int) -> float:
    """The lr factor for optimizer step ``step`` (0-based, within the epoch) of epoch
    ``epoch`` (0-based) when an epoch has ``steps_per_epoch`` steps."""
    t = epoch if schedule.unit == "epoch" else epoch * steps_per_epoch + step
    if t < schedule.warmup:
        return (t + 1) / schedule.warmup
    s = t - schedule.warmup
    name = schedule.name
    if name == "constant":
        return 1.0
    if name == "step":
        return float(schedule.gamma ** (s // schedule.step_size))
    if name == "exponential":
        return float(schedule.gamma**s)
    if name == "cosine":
        if schedule.t_max is None:
            raise ValueError(
                "cosine schedule without t_max: resolve the train spec first "
                "(graphspec.train.schedules.resolve)"
            )
        if s >= schedule.t_max:
            return schedule.eta_min
        cos = (1.0 + math.cos(math.pi * s / schedule.t_max)) / 2.0
        return schedule.eta_min + (1.0 - schedule.eta_min) * cos
    raise ValueError(f"unknown schedule '{name}'")


def resolve(train: TrainSpec, steps_per_epoch: int) -> TrainSpec:
    """``train`` with a cosine schedule's missing ``t_max`` set to the training length after
    warm-up (in the schedule's unit), so that backends need not know the run length."""
    sch = train.schedule
    if sch.name != "cosine" or sch.t_max is not None:
        return train
    total = train.epochs if sch.unit == "epoch" else train.epochs * steps_per_epoch
    t_max = max(total - sch.warmup, 1)
    return train.model_copy(update={"schedule": sch.model_copy(update={"t_max": t_max})})
