"""Early stopping: watch one logged quantity, remember the best epoch, stop after patience.

``monitor`` names a key of the per-epoch record: ``train_loss``, ``val_loss``,
``{train,val}_<loss term id>`` or ``{train,val}_<metric id>``.  ``mode: auto`` minimizes
losses and loss terms and maximizes metrics, except metrics whose op name says they are an
error (``error``, ``mse``, ``mae``, ``loss``, ``perplexity``), which are minimized.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from graphspec.errors import SpecError, did_you_mean
from graphspec.ir.graph import IR

_LOWER_IS_BETTER = re.compile(r"error|mse|mae|loss|perplexity")


def record_keys(ir: IR, has_val: bool) -> dict[str, str]:
    """Every monitorable key -> its direction ("min" or "max")."""
    terms = {"loss": "min", **{lid: "min" for lid, _ in ir.losses}}
    for m in ir.metrics:
        op = str(ir.node(m).op)
        terms[m] = "min" if _LOWER_IS_BETTER.search(op) else "max"
    splits = ("train", "val") if has_val else ("train",)
    return {f"{s}_{k}": mode for s in splits for k, mode in terms.items()}


def resolve_monitor(ir: IR, monitor: str, mode: str, has_val: bool) -> str:
    """The direction for ``monitor`` (checked against what the run logs)."""
    keys = record_keys(ir, has_val)
    if monitor not in keys:
        loc = ir.spec.source.locate(("train", "early_stopping", "monitor")) \
            if ir.spec is not None and ir.spec.source else None
        why = " (there is no validation split: set train.data.val_split > 0)" \
            if monitor.startswith("val_") and not has_val else ""
        if monitor.startswith("test_"):  # held out: read once, at the end, never to select
            why = " (test data is never used for early stopping or selection; monitor val_*)"
        raise SpecError(f"early stopping monitors '{monitor}', which this run does not log{why}",
                        loc, hint=did_you_mean(monitor, keys) or "logged: " + ", ".join(keys))
    return keys[monitor] if mode == "auto" else mode


@dataclass
class Tracker:
    """The best value of the monitored key so far and how long since it improved."""

    monitor: str
    mode: str
    min_delta: float = 0.0
    patience: int | None = None  # None: track the best epoch only, never stop
    best: float | None = None
    best_epoch: int | None = None
    wait: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Feed one epoch's value; True when it is the new best."""
        if value != value:  # NaN never improves
            improved = False
        elif self.best is None:
            improved = True
        elif self.mode == "min":
            improved = value < self.best - self.min_delta
        else:
            improved = value > self.best + self.min_delta
        if improved:
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
        else:
            self.wait += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.wait >= self.patience

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")
        self.wait = int(state.get("wait", 0))
