"""Independent, reproducible random streams derived from one seed.

Each use of randomness (data generation, the validation split, each epoch's shuffle, each
epoch's noise draws) gets its own generator keyed by purpose and epoch.  A run therefore
needs no generator state to resume exactly at an epoch boundary, and adding randomness in
one place never shifts the numbers drawn in another.
"""

from __future__ import annotations

import numpy as np

DATA, SPLIT, SHUFFLE, NOISE, EVAL = 1, 2, 3, 4, 5
TEST_SPLIT, LABEL_NOISE = 16, 17  # apart from the above: other purposes may be numbered 6...


def stream(seed: int, purpose: int, *keys: int) -> np.random.Generator:
    """A generator for ``purpose`` (and e.g. the epoch) under ``seed`` (any int)."""
    entropy = [int(seed) % 2**64, purpose, *(int(k) % 2**64 for k in keys)]
    return np.random.default_rng(np.random.SeedSequence(entropy))
