"""Training data: synthetic sources, files, fitting to the declared inputs, and data errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import graphspec as gs
from graphspec.errors import DataError
from graphspec.train.data import input_roles, load_data

SOURCES = ["xor", "and", "or", "blobs", "circles", "moons", "spirals", "random_labels",
           "feature_select"]


def make_spec(tmp_path: Path, data: str, inputs: str = "x: [batch, 2]\n  y: [batch, 1]",
              graph: str = "- {id: logit, op: linear, in: x, units: 1}",
              loss: str = "- {op: bce_with_logits, in: [logit, y]}", extra: str = ""):
    text = (
        "graphspec: 1\nname: data-test\nseed: 3\ninputs:\n"
        f"  {inputs}\ngraph:\n  {graph}\nloss:\n  {loss}\ntrain:\n"
        f"  data: {data}\n{extra}\n"
    )
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    spec = gs.load(path)
    return spec, gs.build(spec)


def data_of(tmp_path, data, **kw):
    spec, ir = make_spec(tmp_path, data, **kw)
    return load_data(spec, ir, spec.seed)


@pytest.mark.parametrize("source", SOURCES)
def test_classification_sources_fill_binary_inputs(tmp_path, source):
    d = data_of(tmp_path, f"{{source: {source}, samples: 200, noise: 0.1, val_split: 0.25}}")
    tr, va = d.splits["train"], d.splits["val"]
    assert tr["x"].shape == (150, 2) and va["x"].shape == (50, 2)
    assert tr["y"].shape == (150, 1) and tr["y"].dtype == np.float64
    assert set(np.unique(tr["y"])) <= {0.0, 1.0}
    again = data_of(tmp_path, f"{{source: {source}, samples: 200, noise: 0.1, val_split: 0.25}}")
    np.testing.assert_array_equal(tr["x"], again.splits["train"]["x"])  # seeded
    other = data_of(tmp_path, f"{{source: {source}, samples: 200, noise: 0.1, seed: 9}}")
    assert not np.array_equal(tr["x"], other.splits["train"]["x"][:150])


def test_xor_corners_and_labels(tmp_path):
    d = data_of(tmp_path, "{source: xor, samples: 400, val_split: 0}")
    x, y = d.splits["train"]["x"], d.splits["train"]["y"][:, 0]
    assert "val" not in d.splits
    assert set(np.unique(x)) == {-1.0, 1.0}
    np.testing.assert_array_equal(y, (np.sign(x[:, 0]) != np.sign(x[:, 1])).astype(float))


def test_multiclass_targets_take_the_declared_form(tmp_path):
    three = "- {id: logit, op: linear, in: x, units: 3}"
    onehot = data_of(tmp_path, "{source: blobs, samples: 90, classes: 3}",
                     inputs="x: [batch, 2]\n  y: [batch, 3]", graph=three,
                     loss="- {op: mse, in: [logit, y]}")
    y = onehot.splits["train"]["y"]
    assert y.shape == (72, 3) and set(np.unique(y.sum(axis=1))) == {1.0}
    labels = data_of(tmp_path, "{source: spirals, samples: 90}",
                     inputs="x: [batch, 2]\n  y: {shape: [batch], dtype: int}", graph=three,
                     loss="- {op: l2_penalty}", extra="  metrics: [{op: accuracy, in: [logit, y]}]")
    y = labels.splits["train"]["y"]
    assert y.dtype == np.int64 and y.shape == (72,) and set(np.unique(y)) == {0, 1, 2}


def test_features_follow_the_declared_width(tmp_path):
    d = data_of(tmp_path, "{source: feature_select, samples: 60}",
                inputs="x: [batch, 7]\n  y: [batch, 1]")
    assert d.splits["train"]["x"].shape == (48, 7)
    assert "carries the label" in d.note
    with pytest.raises(DataError, match="gives 2 features") as e:
        data_of(tmp_path, "{source: xor}", inputs="x: [batch, 3]\n  y: [batch, 1]")
    assert e.value.location.line == 12  # the train.data value in the spec


def test_regression_sources(tmp_path):
    d = data_of(tmp_path, "{source: linear, samples: 50, features: 4, noise: 0.01}",
                inputs="x: [batch, 4]\n  t: [batch, 2]",
                graph="- {id: out, op: linear, in: x, units: 2}", loss="- {op: mse, in: [out, t]}")
    assert d.splits["train"]["t"].shape == (40, 2)
    x, t = d.splits["train"]["x"], d.splits["train"]["t"]
    a = np.c_[x, np.ones(len(x))]
    resid = t - a @ np.linalg.lstsq(a, t, rcond=None)[0]
    assert np.abs(resid).max() < 0.05  # linear up to the noise
    s = data_of(tmp_path, "{source: sine, samples: 50}", inputs="x: [batch, 1]\n  t: [batch, 1]",
                graph="- {id: out, op: linear, in: x, units: 1}", loss="- {op: mse, in: [out, t]}")
    np.testing.assert_allclose(s.splits["train"]["t"], np.sin(s.splits["train"]["x"]))


def test_split_without_shuffle_keeps_order(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.arange(20.0).reshape(10, 2), y=np.ones((10, 1)))
    d = data_of(tmp_path, "{path: d.npz, val_split: 0.3, shuffle: false}")
    np.testing.assert_array_equal(d.splits["val"]["x"][:, 0], [14.0, 16.0, 18.0])


def test_input_roles(tmp_path):
    _, ir = make_spec(tmp_path, "{source: xor}")
    assert input_roles(ir) == (["x"], ["y"])


# ---- files -------------------------------------------------------------------------------


def test_npz_by_input_names_and_by_columns(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 2)), rng.integers(0, 2, size=(20, 1)).astype(float)
    np.savez(tmp_path / "d.npz", x=x, y=y, feats=x, label=y[:, 0])
    d = data_of(tmp_path, "{path: d.npz, val_split: 0}")
    np.testing.assert_array_equal(d.splits["train"]["x"], x)
    d = data_of(tmp_path, "{path: d.npz, val_split: 0, columns: {x: feats, y: label}}")
    np.testing.assert_array_equal(d.splits["train"]["y"], y)


def test_csv_columns_by_name_index_and_default(tmp_path):
    (tmp_path / "sub").mkdir()
    rows = "\n".join(f"{i},{i * 0.5},{i % 2}" for i in range(10))
    (tmp_path / "sub" / "d.csv").write_text("a,b,label\n" + rows + "\n")
    d = data_of(tmp_path, "{path: sub/d.csv, val_split: 0}")  # last column is the target
    assert d.splits["train"]["x"].shape == (10, 2)
    np.testing.assert_array_equal(d.splits["train"]["y"][:, 0], np.arange(10) % 2)
    d = data_of(tmp_path, "{path: sub/d.csv, val_split: 0, columns: {x: [b, a], y: 2}}")
    np.testing.assert_array_equal(d.splits["train"]["x"][:3], [[0, 0], [0.5, 1], [1, 2]])
    (tmp_path / "noheader.csv").write_text(rows + "\n")
    d = data_of(tmp_path, "{path: noheader.csv, val_split: 0, columns: {x: [0, 1], y: -1}}")
    assert d.rows("train") == 10


def test_val_path(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((8, 2)), y=np.zeros((8, 1)))
    np.savez(tmp_path / "b.npz", x=np.ones((3, 2)), y=np.ones((3, 1)))
    d = data_of(tmp_path, "{path: a.npz, val_path: b.npz}")
    assert d.rows("train") == 8 and d.rows("val") == 3


@pytest.mark.parametrize("setup, data, message", [
    (None, "{path: missing.npz}", "data file not found"),
    ("csv:a,b,label\n1,2,0\n", "{path: d.csv, columns: {x: [a, c], y: label}}",
     "has no column 'c'"),
    ("csv:a,b,label\n1,2,0\n3,nan,1\n", "{path: d.csv}", r"d.csv:3: b is nan"),
    ("csv:a,b,label\n1,2,0\n3,,1\n", "{path: d.csv}", r"d.csv:3: b is empty"),
    ("csv:a,b,label\n1,2,0\n3,x7,1\n", "{path: d.csv}", r"'x7' is not a number"),
    ("csv:a,b,label\n1,2,0\n3,4\n", "{path: d.csv}", "row has 2 fields, expected 3"),
    ("csv:a,b,label\n1,2,0\n3,4,2\n", "{path: d.csv}", r"must lie in \[0, 1\]"),
    ("csv:a,b,c,label\n1,2,3,0\n", "{path: d.csv}", r"has shape \[n, 3\], but it is declared"),
    ("npz:nan", "{path: d.npz}", "holds NaN or Inf"),
    ("npz:object", "{path: d.npz}", "without pickle"),
    ("npz:wrongname", "{path: d.npz}", "has no array 'y'"),
    ("csv:a,b,label\n1,2,0\n", "{path: d.csv, columns: {z: a}}", "'z', which is not an input"),
    ("text", "{path: d.txt}", "unsupported data file type"),
])
def test_data_file_errors(tmp_path, setup, data, message):
    if setup and setup.startswith("csv:"):
        (tmp_path / "d.csv").write_text(setup[4:])
    elif setup == "npz:nan":
        np.savez(tmp_path / "d.npz", x=np.array([[0.0, np.nan]]), y=np.zeros((1, 1)))
    elif setup == "npz:object":
        np.savez(tmp_path / "d.npz", x=np.array([{"a": 1}], dtype=object), y=np.zeros((1, 1)))
    elif setup == "npz:wrongname":
        np.savez(tmp_path / "d.npz", x=np.zeros((2, 2)), why=np.zeros((2, 1)))
    elif setup == "text":
        (tmp_path / "d.txt").write_text("1 2 3")
    with pytest.raises(DataError, match=message) as e:
        data_of(tmp_path, data)
    loc = e.value.location
    assert loc is not None and loc.file.endswith("spec.yaml") and loc.line == 12 and loc.col


def test_labels_out_of_range_for_integer_targets(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)), y=np.array([0, 1, 3, 2]))
    with pytest.raises(DataError,
                       match=r"d.npz: row index 2: label 3 of 'y' is out of range.*3 classes"):
        data_of(tmp_path, "{path: d.npz}", inputs="x: [batch, 2]\n  y: {shape: [batch], "
                "dtype: int}", graph="- {id: logit, op: linear, in: x, units: 3}",
                loss="- {op: l2_penalty}", extra="  metrics: [{op: accuracy, in: [logit, y]}]")
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 2)), y=np.array([0.5, 1.0]))
    with pytest.raises(DataError,
                       match="d.npz: row index 0: input 'y' is declared int, but the row holds"):
        data_of(tmp_path, "{path: d.npz}", inputs="x: [batch, 2]\n  y: {shape: [batch], "
                "dtype: int}", graph="- {id: logit, op: linear, in: x, units: 3}",
                loss="- {op: l2_penalty}", extra="  metrics: [{op: accuracy, in: [logit, y]}]")


def test_column_error_points_at_the_columns_key(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,label\n1,2,0\n")
    with pytest.raises(DataError) as e:
        data_of(tmp_path, "\n    path: d.csv\n    columns: {x: [a, bb], y: label}")
    assert e.value.location.line == 14 and "did you mean 'b'" in (e.value.hint or "")
