""".npz arrays of any rank (images, sequences), integer arrays for int inputs, and the
bundled scikit-learn data sets."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from graphspec.errors import DataError
from graphspec.train import datasets
from tests.train.test_data import data_of

IMAGES = dict(
    inputs="x: [batch, 1, 8, 8]\n  y: {shape: [batch], dtype: int}",
    graph="- {id: f, op: flatten, in: x}\n  - {id: p, op: linear, units: 10}",
    loss="- {op: cross_entropy, in: [p, y]}",
)


def test_npz_images_load_with_their_rank(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((20, 1, 8, 8))
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(20) % 10)
    d = data_of(tmp_path, "{path: d.npz, val_split: 0, shuffle: false}", **IMAGES)
    np.testing.assert_array_equal(d.splits["train"]["x"], x)
    assert d.splits["train"]["y"].dtype == np.int64


def test_npz_shape_errors_name_file_array_and_axis(tmp_path):
    np.savez(tmp_path / "d.npz", img=np.zeros((20, 1, 7, 8)), y=np.arange(20) % 10)
    with pytest.raises(
        DataError,
        match=r"d.npz: data for input 'x' has shape \[n, 1, 7, 8\], "
        r"but it is declared \[batch, 1, 8, 8\] \(array 'img', axis 2 is 7, "
        r"not 8\)",
    ):
        data_of(tmp_path, "{path: d.npz, columns: {x: img}}", **IMAGES)


def test_npz_integer_tokens_and_lengths_feed_int_inputs(tmp_path):
    tokens = np.array([[1, 2, 3, 0], [3, 3, 0, 0]] * 5, dtype=np.int32)
    np.savez(tmp_path / "d.npz", x=tokens, n=np.array([3, 2] * 5), y=np.array([0, 1] * 5))
    d = data_of(
        tmp_path,
        "{path: d.npz, val_split: 0, shuffle: false}",
        inputs="x: {shape: [batch, 4], dtype: int}\n  n: {shape: [batch], dtype: int}\n"
        "  y: {shape: [batch], dtype: int}",
        graph="- {id: table, op: param, shape: [5, 3]}\n  - {id: e, op: gather, in: [table, x]}\n"
        "  - {id: f, op: flatten}\n  - {id: g, op: gather, in: [table, n]}\n"
        "  - {id: h, op: concat, in: [f, g], axis: 1}\n  - {id: p, op: linear, units: 2}",
        loss="- {op: cross_entropy, in: [p, y]}",
    )
    tr = d.splits["train"]
    assert tr["x"].dtype == tr["n"].dtype == np.int64
    np.testing.assert_array_equal(tr["x"], tokens)
    np.testing.assert_array_equal(tr["n"], [3, 2] * 5)


# ---- scikit-learn's data sets ---------------------------------------------------------------


def test_digits_as_images_or_rows_scaled_to_unit_interval(tmp_path):
    d = data_of(tmp_path, "{source: digits, val_split: 0.2}", **IMAGES)
    tr, va = d.splits["train"], d.splits["val"]
    assert tr["x"].shape[1:] == (1, 8, 8) and len(tr["x"]) + len(va["x"]) == 1797
    assert tr["x"].min() == 0.0 and tr["x"].max() == 1.0
    assert set(np.unique(va["y"])) == set(range(10))  # split per class
    flat = data_of(
        tmp_path,
        "{source: digits, val_split: 0.2}",
        inputs="x: [batch, 64]\n  y: [batch, 10]",
        graph="- {id: p, op: linear, in: x, units: 10}",
        loss="- {op: cross_entropy, in: [p, y]}",
    )
    np.testing.assert_array_equal(flat.splits["train"]["x"], tr["x"].reshape(-1, 64))
    np.testing.assert_array_equal(flat.splits["train"]["y"].argmax(1), tr["y"])  # one-hot


TABULAR = dict(
    inputs="x: [batch, 4]\n  y: {shape: [batch], dtype: int}",
    graph="- {id: p, op: linear, in: x, units: 3}",
    loss="- {op: cross_entropy, in: [p, y]}",
)


def test_tabular_sets_are_standardized_with_training_statistics_only(tmp_path):
    d = data_of(tmp_path, "{source: iris, val_split: 0.3}", **TABULAR)
    tr, va = d.splits["train"]["x"], d.splits["val"]["x"]
    np.testing.assert_allclose(tr.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(tr.std(0), 1, atol=1e-12)
    assert np.abs(va.mean(0)).max() > 1e-3  # not standardized by its own statistics
    # One affine map per feature sends the raw data onto both splits together: the
    # validation rows were transformed with the training split's mean and deviation.
    raw, _ = datasets.load("iris", None)
    both = np.concatenate([tr, va])
    for j in range(4):
        slope, icpt = np.polyfit(np.sort(raw[:, j]), np.sort(both[:, j]), 1)
        np.testing.assert_allclose(
            slope * np.sort(raw[:, j]) + icpt, np.sort(both[:, j]), atol=1e-9
        )


@pytest.mark.parametrize(
    "source, features, classes", [("wine", 13, 3), ("breast_cancer", 30, 2), ("iris", 4, 3)]
)
def test_bundled_tabular_sets(tmp_path, source, features, classes):
    d = data_of(
        tmp_path,
        f"{{source: {source}, samples: 100}}",
        inputs=f"x: [batch, {features}]\n  y: {{shape: [batch], dtype: int}}",
        graph=f"- {{id: p, op: linear, in: x, units: {classes}}}",
        loss=TABULAR["loss"],
    )
    assert d.rows("train") + d.rows("val") == 100
    assert set(np.unique(d.splits["train"]["y"])) == set(range(classes))


def test_bundled_set_errors(tmp_path):
    with pytest.raises(
        DataError,
        match=r"input 'x' has shape \[n, 4\], but it is declared "
        r"\[batch, 5\]",
    ):
        data_of(
            tmp_path,
            "{source: iris}",
            **{**TABULAR, "inputs": TABULAR["inputs"].replace("[batch, 4]", "[batch, 5]")},
        )
    with pytest.raises(DataError, match="source 'iris' has 3 classes"):
        data_of(tmp_path, "{source: iris, classes: 4}", **TABULAR)


@pytest.mark.parametrize("source", sorted(datasets.DATASETS))
def test_bundled_sets_are_scikit_learns(source):
    sk = pytest.importorskip("sklearn.datasets")  # slow to import: only this test does
    bunch = getattr(sk, f"load_{source}")()
    x, y = datasets.load(source, None)
    scale = datasets.DIGIT_SCALE if source == "digits" else 1.0
    np.testing.assert_array_equal(x * scale, bunch.data)
    np.testing.assert_array_equal(y, bunch.target)


def test_without_scikit_learn_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn raises ImportError
    with pytest.raises(DataError, match="source 'digits' needs scikit-learn") as e:
        data_of(tmp_path, "{source: digits}", **IMAGES)
    assert "pip install 'graphspec[datasets]'" in e.value.render()
