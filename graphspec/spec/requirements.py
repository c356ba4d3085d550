"""What a command needs from a spec beyond validity: training needs a loss and data."""

from __future__ import annotations

from graphspec.errors import SpecError
from graphspec.spec.models import Spec


def require_training(spec: Spec) -> None:
    """Raise a located :class:`SpecError` unless ``spec`` can be trained.

    A spec without ``loss`` or ``train.data`` is valid (it can be inspected, compiled and
    verified), so the schema cannot require them; ``graphspec train`` does, before any work.
    """
    smap = spec.source
    file_loc = smap.locate(()) if smap is not None else None
    if not spec.loss:
        raise SpecError(
            "training needs a loss: the spec has no 'loss' section",
            file_loc,
            hint="add one, e.g. loss: [{op: mse, in: [prediction, target]}]",
        )
    if spec.train is None:
        raise SpecError(
            "training needs a 'train' section with 'data'",
            file_loc,
            hint="add e.g. train: {data: {source: xor}, optimizer: {name: sgd, lr: 0.1}}",
        )
