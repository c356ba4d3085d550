"""Sequence tasks drawn from a seeded generator, and character windows of a text file.

Each task returns per-step integer symbols or float features and its labels; the shape a
spec's inputs receive (token ids, one-hot rows, a label per step or one per sequence) is
decided in :mod:`graphspec.train.data` from the declared inputs.

- ``adding`` (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015): ``[n, T, 2]``,
  channel 0 uniform in [0, 1], channel 1 a marker with exactly two 1s, one in each half of
  the sequence; the target ``[n, 1]`` is the sum of the two marked values.  Predicting the
  constant 1 has mean squared error Var(a + b) = 2/12 ≈ 0.167.
- ``parity``: ``T`` random bits; the label at step t is the parity (XOR) of bits 0..t, so
  the label of the sequence is that of its last step.
- ``copy`` (Arjovsky et al. 2016): ``V`` symbols, 0 the blank and ``V - 1`` the delimiter.
  The first ``K`` steps show symbols drawn from 1..V-2, blanks follow, the delimiter comes at
  step ``T - K - 1``; the label is blank at every step but the last ``K``, which reproduce
  the first ``K`` inputs.
- ``text``: characters of a UTF-8 file, the vocabulary its distinct characters in code
  point order; non-overlapping windows of ``T`` characters, each labelled with the ``T``
  characters that follow each of its characters (its window shifted by one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphspec.errors import DataError, Location
from graphspec.train import data_files

# The most of a text file read: a character-level model trains in memory on far less.
MAX_TEXT_BYTES = 64 * 2**20
SEQUENCE_SOURCES = ("adding", "copy", "parity", "text")


@dataclass
class Sequences:
    """A sequence task's rows: ``x`` float features ``[n, T, F]`` or integer symbols
    ``[n, T]``; ``y`` float targets (regression) or integer labels per step ``[n, T]``."""

    x: np.ndarray
    y: np.ndarray
    regression: bool
    vocabulary: str | None = None  # text: the characters token ids index


def adding(rng: np.random.Generator, n: int, length: int) -> Sequences:
    values = rng.uniform(0.0, 1.0, size=(n, length))
    half = length // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    marker = np.zeros((n, length))
    rows = np.arange(n)
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    target = values[rows, first] + values[rows, second]
    return Sequences(np.stack([values, marker], axis=2), target[:, None], True)


def parity(rng: np.random.Generator, n: int, length: int) -> Sequences:
    bits = rng.integers(0, 2, size=(n, length))
    return Sequences(bits, np.cumsum(bits, axis=1) % 2, False)


def copy(rng: np.random.Generator, n: int, length: int, k: int, vocab: int) -> Sequences:
    """``vocab`` symbols in all (blank, ``vocab - 2`` to copy, delimiter); checked by the
    caller: ``vocab >= 3`` and ``length >= 2 k + 1``."""
    shown = rng.integers(1, vocab - 1, size=(n, k))
    x = np.zeros((n, length), dtype=np.int64)
    y = np.zeros((n, length), dtype=np.int64)
    x[:, :k] = shown
    x[:, length - k - 1] = vocab - 1
    y[:, length - k :] = shown
    return Sequences(x, y, False)


def read_text(path: Path, display: str, loc: Location | None) -> str:
    """The UTF-8 text of ``path``, bounded and refused when empty or binary."""
    with data_files.open_regular(path, display, loc) as f:
        raw = f.read(MAX_TEXT_BYTES + 1)
    if len(raw) > MAX_TEXT_BYTES:
        raise DataError(
            f"{display} is larger than {MAX_TEXT_BYTES // 2**20} MiB",
            loc,
            hint="train a character model on a smaller text",
        )
    if b"\0" in raw:
        raise DataError(f"{display} is not a text file (it holds NUL bytes)", loc)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{display} is not UTF-8 text (byte {e.start} cannot be decoded)", loc
        ) from None
    if not text:
        raise DataError(f"{display} is empty", loc)
    return text


def text_windows(text: str, display: str, length: int, loc: Location | None) -> Sequences:
    vocabulary = "".join(sorted(set(text)))
    if len(text) < length + 1:
        raise DataError(
            f"{display} holds {len(text)} characters, too few for one window of {length} "
            "and the character after it",
            loc,
            hint="give a shorter 'length' or a longer text",
        )
    ids = np.searchsorted(
        np.frombuffer(vocabulary.encode("utf-32-le"), dtype=np.uint32),
        np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32),
    )
    n = (len(text) - 1) // length
    starts = np.arange(n) * length
    window = starts[:, None] + np.arange(length)
    return Sequences(
        ids[window].astype(np.int64), ids[window + 1].astype(np.int64), False, vocabulary
    )
