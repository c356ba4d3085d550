"""Everything training checks before its first epoch, in one function.

``graphspec train`` (the driver) and ``graphspec validate --train`` both call
:func:`prepare`, so a spec that validates with ``--train`` gets past these checks in
training: the data (opened, fitted to the declared inputs, split), the batch size, the
schedule, the optimizer's parameter groups and the early-stopping monitor.  What depends on
the backend (compiling, devices) or on a run directory (resume, locks) is the driver's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from graphspec.ir.graph import IR
from graphspec.spec.models import Spec, TrainSpec
from graphspec.train.data import Dataset, load_data
from graphspec.train.groups import param_groups
from graphspec.train.schedules import resolve
from graphspec.train.stopping import Tracker, resolve_monitor


@dataclass
class Prepared:
    """A run's data and the settings derived from it."""

    data: Dataset
    batch_size: int  # rows per step (``full``: every training row)
    steps: int  # optimizer steps per epoch
    train_spec: TrainSpec  # with the run's epochs and a cosine schedule's t_max filled in
    tracker: Tracker  # early stopping (without ``early_stopping``: tracks the best epoch)

    @property
    def has_val(self) -> bool:
        return "val" in self.data.splits

    @property
    def n_train(self) -> int:
        return self.data.rows("train")


def prepare(spec: Spec, ir: IR, seed: int, epochs: int | None = None) -> Prepared:
    """Load and check what training ``spec`` (built as ``ir``) needs; raises a located
    :class:`~graphspec.errors.DataError` or :class:`~graphspec.errors.SpecError`.
    ``epochs`` overrides ``train.epochs``."""
    assert spec.train is not None  # graphspec.spec.requirements.require_training
    tspec = spec.train
    data = load_data(spec, ir, seed)
    has_val = "val" in data.splits
    n_train = data.rows("train")
    bs = tspec.batch_size
    batch_size = n_train if bs == "full" else min(int(bs), n_train)
    steps = math.ceil(n_train / batch_size)
    n_epochs = tspec.epochs if epochs is None else int(epochs)
    train_spec = resolve(tspec.model_copy(update={"epochs": n_epochs}), steps)
    param_groups(ir, train_spec.optimizer)  # a group pattern that matches no parameter
    es = tspec.early_stopping
    monitor = es.monitor if es else ("val_loss" if has_val else "train_loss")
    mode = resolve_monitor(ir, monitor, es.mode if es else "auto", has_val)
    tracker = Tracker(monitor, mode, es.min_delta if es else 0.0, es.patience if es else None)
    return Prepared(data, batch_size, steps, train_spec, tracker)
