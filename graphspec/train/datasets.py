"""The small real data sets scikit-learn ships (no download): ``digits``, ``iris``, ``wine``,
``breast_cancer``, behind the optional extra ``graphspec[datasets]``.

``digits`` (1,797 handwritten digits, 8×8 pixels of 0..16) comes scaled to [0, 1]
(pixel / 16), in the shape the feature input declares: ``[batch, 1, 8, 8]`` images or
``[batch, 64]`` rows.  The tabular sets come standardized with the mean and standard
deviation of the *training* split alone (:func:`standardized`), so nothing about the
validation or test rows leaks into training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphspec.errors import DataError, Location

EXTRA = "pip install 'graphspec[datasets]'"


@dataclass(frozen=True)
class Bundled:
    loader: str  # the sklearn.datasets function
    classes: int
    standardize: bool  # tabular features: standardized with training-split statistics


DATASETS = {
    "digits": Bundled("load_digits", 10, False),
    "iris": Bundled("load_iris", 3, True),
    "wine": Bundled("load_wine", 3, True),
    "breast_cancer": Bundled("load_breast_cancer", 2, True),
}
DIGIT_SCALE = 16.0  # the largest pixel value of the 8x8 digits


def load(source: str, loc: Location | None) -> tuple[np.ndarray, np.ndarray]:
    """``(features [n, k] float64, labels [n] int64)`` of a bundled data set."""
    try:
        # Deferred: scikit-learn is an optional extra and slow to import.
        from sklearn import datasets
    except ImportError:
        raise DataError(
            f"source '{source}' needs scikit-learn, which is not installed",
            loc,
            hint=f"install the optional extra: {EXTRA}",
        ) from None
    bunch = getattr(datasets, DATASETS[source].loader)()
    x = np.asarray(bunch.data, dtype=np.float64)
    if source == "digits":
        x = x / DIGIT_SCALE
    return x, np.asarray(bunch.target, dtype=np.int64)


def standardize(
    source: str, splits: dict[str, dict[str, np.ndarray]], features: list[str]
) -> dict[str, dict[str, np.ndarray]]:
    """``splits`` with the tabular features standardized by the training split's mean and
    standard deviation (a constant feature is only centred)."""
    if not DATASETS[source].standardize:
        return splits
    out = {k: dict(v) for k, v in splits.items()}
    for name in features:
        train = splits["train"][name]
        mean = train.mean(axis=0)
        std = train.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        for split in out.values():
            split[name] = (split[name] - mean) / std
    return out
