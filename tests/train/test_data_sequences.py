"""Sequence tasks (adding, parity, copy) and character windows of a text file."""

from __future__ import annotations

import numpy as np
import pytest

import graphspec as gs
from graphspec.errors import DataError
from tests.train.test_data import data_of, make_spec

SEQ = "- {id: h, op: flatten, in: x}"


def test_adding_problem_has_two_markers_and_their_sum_as_target(tmp_path):
    d = data_of(
        tmp_path,
        "{source: adding, samples: 400, val_split: 0}",
        inputs="x: [batch, 20, 2]\n  y: [batch, 1]",
        graph=SEQ + "\n  - {id: p, op: linear, units: 1}",
        loss="- {op: mse, in: [p, y]}",
    )
    x, y = d.splits["train"]["x"], d.splits["train"]["y"]
    assert x.shape == (400, 20, 2) and y.shape == (400, 1)
    marker = x[:, :, 1]
    assert (marker.sum(axis=1) == 2).all()
    assert (marker[:, :10].sum(axis=1) == 1).all()  # one marker in each half
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * marker).sum(axis=1))
    assert ((x[:, :, 0] >= 0) & (x[:, :, 0] <= 1)).all()


def test_adding_baseline_predicting_one_has_mse_one_sixth(tmp_path):
    d = data_of(
        tmp_path,
        "{source: adding, samples: 20000, val_split: 0}",
        inputs="x: [batch, 50, 2]\n  y: [batch, 1]",
        graph=SEQ + "\n  - {id: p, op: linear, units: 1}",
        loss="- {op: mse, in: [p, y]}",
    )
    y = d.splits["train"]["y"]
    assert abs(np.mean((y - 1.0) ** 2) - 1 / 6) < 0.005  # Var(a + b) = 2/12


def test_parity_labels_every_step_or_the_last_as_declared(tmp_path):
    per_step = data_of(
        tmp_path,
        "{source: parity, samples: 50, val_split: 0}",
        inputs="x: [batch, 12, 1]\n  y: [batch, 12, 1]",
        graph="- {id: p, op: linear, in: x, units: 1}",
        loss="- {op: bce_with_logits, in: [p, y]}",
    )
    x, y = per_step.splits["train"]["x"], per_step.splits["train"]["y"]
    assert x.shape == (50, 12, 1) and y.shape == (50, 12, 1)
    np.testing.assert_array_equal(y[..., 0], np.cumsum(x[..., 0], axis=1) % 2)
    last = data_of(
        tmp_path,
        "{source: parity, samples: 50, val_split: 0}",
        inputs="x: [batch, 12, 1]\n  y: {shape: [batch], dtype: int}",
        graph=SEQ + "\n  - {id: p, op: linear, units: 2}",
        loss="- {op: cross_entropy, in: [p, y]}",
    )
    x, y = last.splits["train"]["x"], last.splits["train"]["y"]
    assert y.shape == (50,) and y.dtype == np.int64
    np.testing.assert_array_equal(y, x[:, :, 0].sum(axis=1) % 2)


def test_copy_reproduces_the_first_symbols_after_the_delimiter(tmp_path):
    d = data_of(
        tmp_path,
        "{source: copy, samples: 30, length: 13, copy_length: 4, val_split: 0}",
        inputs="x: [batch, 13, 6]\n  y: [batch, 13, 6]",
        graph="- {id: p, op: linear, in: x, units: 6}",
        loss="- {op: mse, in: [p, y]}",
    )
    x, y = d.splits["train"]["x"].argmax(-1), d.splits["train"]["y"].argmax(-1)
    assert ((x[:, :4] >= 1) & (x[:, :4] <= 4)).all()
    assert (x[:, 13 - 4 - 1] == 5).all() and (x[:, 4:8] == 0).all()
    np.testing.assert_array_equal(y[:, -4:], x[:, :4])
    assert (y[:, :-4] == 0).all()
    with pytest.raises(DataError, match=r"length >= 2 \* copy_length \+ 1 = 21"):
        data_of(
            tmp_path,
            "{source: copy, samples: 30, val_split: 0}",
            inputs="x: [batch, 13, 6]\n  y: [batch, 13, 6]",
            graph="- {id: p, op: linear, in: x, units: 6}",
            loss="- {op: mse, in: [p, y]}",
        )


def test_sequence_length_comes_from_the_declared_input_or_length(tmp_path):
    kw = dict(
        inputs="x: [batch, time, 1]\n  y: [batch, time, 1]",
        graph="- {id: p, op: linear, in: x, units: 1}",
        loss="- {op: bce_with_logits, in: [p, y]}",
    )
    d = data_of(tmp_path, "{source: parity, samples: 8, length: 7, val_split: 0}", **kw)
    assert d.splits["train"]["x"].shape == (8, 7, 1)
    with pytest.raises(DataError, match="symbolic time axis 'time'"):
        data_of(tmp_path, "{source: parity, samples: 8, val_split: 0}", **kw)
    with pytest.raises(DataError, match="length 9 does not fit input 'x'"):
        data_of(
            tmp_path,
            "{source: parity, samples: 8, length: 9}",
            inputs="x: [batch, 7, 1]\n  y: [batch, 7, 1]",
            graph=kw["graph"],
            loss=kw["loss"],
        )


TEXT = "abcabcdabcdd" * 3
# token ids -> a [4, 3] table's rows -> next-character logits at every step
CHAR_MODEL = dict(
    inputs="x: {shape: [batch, 5], dtype: int}\n  y: {shape: [batch, 5], dtype: int}",
    graph="- {id: table, op: param, shape: [4, 3]}\n  - {id: e, op: gather, in: [table, x]}"
    "\n  - {id: p, op: linear, units: 4}",
    loss="- {op: cross_entropy, in: [p, y]}",
)


def text_data(
    tmp_path, data="{source: text, path: t.txt, val_split: 0}", text=TEXT, raw=None, **kw
):
    f = tmp_path / "t.txt"
    f.write_bytes(raw if raw is not None else text.encode("utf-8"))
    return data_of(tmp_path, data, **{**CHAR_MODEL, **kw})


def test_text_windows_with_next_character_targets(tmp_path):
    d = text_data(tmp_path)
    assert d.vocabulary == "abcd"
    x, y = d.splits["train"]["x"], d.splits["train"]["y"]
    assert x.shape == y.shape == (7, 5) and x.dtype == y.dtype == np.int64  # (36 - 1) // 5
    assert "".join("abcd"[i] for i in x[1]) == TEXT[5:10]
    assert "".join("abcd"[i] for i in y[1]) == TEXT[6:11]
    last = text_data(
        tmp_path,
        inputs="x: {shape: [batch, 5], dtype: int}\n  y: {shape: [batch], dtype: int}",
        graph=CHAR_MODEL["graph"] + "\n  - {id: q, op: flatten}\n  - {id: r, op: linear, units: 4}",
        loss="- {op: cross_entropy, in: [r, y]}",
    )
    np.testing.assert_array_equal(last.splits["train"]["y"], y[:, -1])


def test_text_as_one_hot_rows_for_float_inputs(tmp_path):
    d = text_data(
        tmp_path,
        inputs="x: [batch, 5, 4]\n  y: [batch, 5, 4]",
        graph="- {id: p, op: linear, in: x, units: 4}",
        loss="- {op: mse, in: [p, y]}",
    )
    x = d.splits["train"]["x"]
    assert x.shape == (7, 5, 4) and (x.sum(-1) == 1).all()


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "t.txt is empty"),
        (b"ab\0cd" * 4, "t.txt is not a text file"),
        (b"\xff\xfe abc" * 4, "t.txt is not UTF-8 text"),
        (b"abc", "t.txt holds 3 characters, too few for one window of 5"),
    ],
)
def test_unusable_text_files_are_named(tmp_path, raw, message):
    with pytest.raises(DataError, match=message):
        text_data(tmp_path, raw=raw)


def test_text_needs_a_path_and_a_model_of_its_vocabulary(tmp_path):
    with pytest.raises(
        DataError, match="t.txt has 4 distinct characters, but the prediction has 6"
    ):
        text_data(tmp_path, graph=CHAR_MODEL["graph"].replace("units: 4", "units: 6"))
    with pytest.raises(Exception, match="source 'text' needs 'path'"):
        data_of(tmp_path, "{source: text}", **CHAR_MODEL)


def test_the_vocabulary_is_saved_with_the_run(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    spec, _ = make_spec(
        tmp_path, "{source: text, path: t.txt, val_split: 0}", extra="  epochs: 1", **CHAR_MODEL
    )
    gs.train(spec, backend="numpy", out=tmp_path / "run")
    assert gs.load_run(tmp_path / "run").summary["vocabulary"] == "abcd"


@pytest.mark.parametrize(
    "data, inputs, graph, loss, message",
    [
        (
            "{source: adding, samples: 8}",
            "x: {shape: [batch, 6, 2], dtype: int}\n  y: [batch, 1]",
            "- {id: t, op: param, shape: [3, 1]}\n  - {id: p, op: gather, in: [t, x]}\n"
            "  - {id: q, op: flatten}\n  - {id: r, op: linear, units: 1}",
            "- {op: mse, in: [r, y]}",
            "source 'adding' gives float features, but input 'x' is declared int",
        ),
        (
            "{source: copy, samples: 8, length: 7, copy_length: 2}",
            "x: [batch, 7, 5]\n  y: {shape: [batch], dtype: int}",
            "- {id: f, op: flatten, in: x}\n  - {id: p, op: linear, units: 5}",
            "- {op: cross_entropy, in: [p, y]}",
            "copy labels every step: declare target 'y'",
        ),
        (
            "{source: parity, samples: 8}",
            "x: [batch, 6]\n  y: [batch, 1]",
            "- {id: p, op: linear, in: x, units: 1}",
            "- {op: bce_with_logits, in: [p, y]}",
            None,
        ),
    ],
)
def test_sequence_forms_that_do_not_fit(tmp_path, data, inputs, graph, loss, message):
    if message is None:  # [batch, 6] floats: 6 bits per row, the parity of all of them
        d = data_of(tmp_path, data, inputs=inputs, graph=graph, loss=loss)
        x, y = d.splits["train"]["x"], d.splits["train"]["y"]
        np.testing.assert_array_equal(y[:, 0], x.sum(axis=1) % 2)
        return
    with pytest.raises(DataError, match=message):
        data_of(tmp_path, data, inputs=inputs, graph=graph, loss=loss)
