"""Synthetic data sets, drawn from a seeded generator.

Each source returns features ``X [n, features]`` and either integer class labels ``[n]``
(classification) or float targets ``[n, k]`` (regression).  ``noise`` is the standard
deviation of Gaussian noise added to the features after the labels are fixed (for the
regression sources: added to the targets).  Sources with a fixed geometry have a fixed
feature count (``FIXED_FEATURES``) and class count (``FIXED_CLASSES``).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

FIXED_FEATURES = {"xor": 2, "and": 2, "or": 2, "circles": 2, "moons": 2, "spirals": 2, "sine": 1}
FIXED_CLASSES = {"xor": 2, "and": 2, "or": 2, "circles": 2, "moons": 2}
REGRESSION = {"linear", "sine"}
BLOB_RADIUS = 4.0  # blob centres lie this far from the origin: separable at noise 1


@dataclass
class Synthetic:
    x: np.ndarray
    y: np.ndarray  # int labels [n] for classification, float [n, k] for regression
    regression: bool
    note: str = ""  # what a reader of the run needs to know (e.g. the informative feature)
    strata: np.ndarray | None = None  # groups a validation split keeps in proportion


def _corners(
    rng: np.random.Generator, n: int, rule: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The four corners of [-1, 1]^2, equally often (to within one), labelled by a boolean
    rule; also returns each sample's corner, so that a split can keep the corners balanced
    (then no line classifies more than 3/4 of XOR, in either split)."""
    corner = _balanced_labels(rng, n, 4)
    a, b = (corner & 1).astype(bool), (corner >> 1).astype(bool)
    y = {"xor": a ^ b, "and": a & b, "or": a | b}[rule].astype(np.int64)
    return np.stack([2.0 * a - 1.0, 2.0 * b - 1.0], axis=1), y, corner


def _balanced_labels(rng: np.random.Generator, n: int, classes: int) -> np.ndarray:
    """Each class ``n // classes`` or one more times, in random order."""
    return rng.permutation(np.arange(n) % classes).astype(np.int64)


def generate(
    source: str, rng: np.random.Generator, *, n: int, features: int, classes: int,
    noise: float, targets: int = 1,
) -> Synthetic:
    """Draw ``n`` samples of ``source``; ``targets`` is the regression output width."""
    note = ""
    strata = None
    if source in ("xor", "and", "or"):
        x, y, strata = _corners(rng, n, source)
    elif source == "blobs":
        y = _balanced_labels(rng, n, classes)
        centres = np.zeros((classes, features))
        angles = 2 * np.pi * np.arange(classes) / classes
        if features == 1:
            centres[:, 0] = BLOB_RADIUS * np.linspace(-1.0, 1.0, classes)
        else:
            centres[:, 0] = BLOB_RADIUS * np.cos(angles)
            centres[:, 1] = BLOB_RADIUS * np.sin(angles)
        x = centres[y].copy()
    elif source == "circles":
        y = _balanced_labels(rng, n, 2)
        t = rng.uniform(0, 2 * np.pi, size=n)
        r = np.where(y == 0, 1.0, 0.5)  # outer circle class 0, inner class 1
        x = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    elif source == "moons":
        y = _balanced_labels(rng, n, 2)
        t = rng.uniform(0, np.pi, size=n)
        upper = np.stack([np.cos(t), np.sin(t)], axis=1)
        lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
        x = np.where((y == 0)[:, None], upper, lower)
    elif source == "spirals":
        y = _balanced_labels(rng, n, classes)
        t = rng.uniform(0.05, 1.0, size=n)
        theta = 2 * np.pi * y / classes + 3 * np.pi * t  # one and a half turns per arm
        x = np.stack([t * np.cos(theta), t * np.sin(theta)], axis=1)
    elif source == "random_labels":
        x = rng.standard_normal((n, features))
        y = rng.integers(0, classes, size=n).astype(np.int64)
    elif source == "feature_select":
        x = rng.standard_normal((n, features))
        k = int(rng.integers(0, features))
        # Class boundaries at the quantiles of N(0, 1): balanced classes, one feature decides.
        edges = np.array([NormalDist().inv_cdf(c / classes) for c in range(1, classes)])
        y = np.searchsorted(edges, x[:, k]).astype(np.int64)
        note = f"feature {k} of {features} carries the label"
    elif source == "linear":
        x = rng.standard_normal((n, features))
        w = rng.standard_normal((features, targets))
        b = rng.standard_normal(targets)
        y = x @ w + b + noise * rng.standard_normal((n, targets))
        return Synthetic(x, y, True)
    elif source == "sine":
        x = rng.uniform(-np.pi, np.pi, size=(n, 1))
        y = np.sin(x) + noise * rng.standard_normal((n, 1))
        return Synthetic(x, y, True)
    else:  # pragma: no cover - the spec model admits only the names above
        raise ValueError(f"unknown data source '{source}'")
    if noise:
        x = x + noise * rng.standard_normal(x.shape)
    return Synthetic(np.asarray(x, dtype=np.float64), y, False, note,
                     y if strata is None else strata)


def corrupt_labels(
    y: np.ndarray, fraction: float, classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Zhang et al. (2017), "partially corrupted labels": each label independently, with
    probability ``fraction``, replaced by a class drawn uniformly (which may be the true
    one); ``fraction`` 1 gives labels independent of the inputs."""
    hit = rng.random(len(y)) < fraction
    noisy = rng.integers(0, classes, size=len(y)).astype(np.int64)
    return np.where(hit, noisy, y)
