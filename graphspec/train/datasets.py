"""The small real data sets scikit-learn ships (no download): ``digits``, ``iris``, ``wine``,
``breast_cancer``, behind the optional extra ``graphspec[datasets]``.

``digits`` (1,797 handwritten digits, 8×8 pixels of 0..16) comes scaled to [0, 1]
(pixel / 16), in the shape the feature input declares: ``[batch, 1, 8, 8]`` images or
``[batch, 64]`` rows.  The tabular sets come standardized with the mean and standard
deviation of the *training* split alone (:func:`standardized`), so nothing about the
validation or test rows leaks into training.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphspec.errors import DataError, Location

EXTRA = "pip install 'graphspec[datasets]'"


@dataclass(frozen=True)
class Bundled:
    file: str  # in sklearn/datasets/data/: rows of features, the class label last
    classes: int
    standardize: bool  # tabular features: standardized with training-split statistics


DATASETS = {
    "digits": Bundled("digits.csv.gz", 10, False),  # no header line
    "iris": Bundled("iris.csv", 3, True),  # a header line: "150,4,setosa,..."
    "wine": Bundled("wine_data.csv", 3, True),
    "breast_cancer": Bundled("breast_cancer.csv", 2, True),
}
DIGIT_SCALE = 16.0  # the largest pixel value of the 8x8 digits


def load(source: str, loc: Location | None) -> tuple[np.ndarray, np.ndarray]:
    """``(features [n, k] float64, labels [n] int64)`` of a bundled data set.

    The files are read where scikit-learn installed them, as its ``load_*`` functions read
    them, without importing it: importing scikit-learn (and SciPy with it) takes seconds,
    longer than training on these sets (tests/train/test_data_arrays.py checks the arrays
    are the ones its loaders return)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"source '{source}' needs scikit-learn, which is not installed",
            loc,
            hint=f"install the optional extra: {EXTRA}",
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    bundled = DATASETS[source]
    path = folder / bundled.file
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=0 if source == "digits" else 1)
    except (OSError, ValueError) as e:
        raise DataError(
            f"cannot read scikit-learn's {source} data ({path}): {e}",
            loc,
            hint=f"reinstall it: {EXTRA}",
        ) from None
    x, labels = table[:, :-1], table[:, -1].astype(np.int64)
    if source == "digits":
        x = x / DIGIT_SCALE
    return x, labels


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
