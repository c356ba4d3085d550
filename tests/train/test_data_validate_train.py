"""``validate --train`` checks what ``train`` checks before its first epoch, and data messages.

Both commands call one function (``graphspec.train.prepare.prepare``), so each problem that
``train`` refuses before training is refused by ``validate --train`` with the same error.
Also: unused inputs are a warning and need no data; a CSV that is not comma-separated gets
a suggestion; rows in data errors are file lines (CSV) or row indexes (npz), one way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphspec.cli import main
from graphspec.errors import DataError
from graphspec.train import train

SPEC = """\
graphspec: 1
name: vt
seed: 0
inputs:
  x: [batch, 2]
  y: {{shape: [batch], dtype: int}}
graph:
  - {{id: h, op: linear, in: x, units: 4}}
  - {{id: logits, op: linear, units: 3}}
loss:
  - {{op: cross_entropy, in: [logits, y]}}
train:
  data: {data}
  optimizer: {optimizer}
  epochs: 2
{extra}"""
DATA_LINE = 13
SGD = "{name: sgd, lr: 0.1}"


def write(tmp_path: Path, data: str, optimizer: str = SGD, extra: str = "") -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(data=data, optimizer=optimizer, extra=extra))
    return path


def cli(argv: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    return rc, out, err


def npz(tmp_path: Path, x: np.ndarray, y: np.ndarray) -> str:
    np.savez(tmp_path / "d.npz", x=x, y=y)
    return "{path: d.npz}"


X, Y = np.random.default_rng(0).normal(size=(10, 2)), np.arange(10) % 3


def _case(tmp_path: Path, name: str) -> tuple[Path, str]:
    """(a spec that train refuses before its first epoch, a fragment of the error)."""
    if name == "wrong_width":
        data = npz(tmp_path, np.ones((10, 3)), Y)
        return write(tmp_path, data), "data for input 'x' has shape [n, 3], but it is declared"
    if name == "missing_file":
        return write(tmp_path, "{path: nowhere.csv}"), "data file not found"
    if name == "monitor_typo":
        return (
            write(tmp_path, npz(tmp_path, X, Y), extra="  early_stopping: {monitor: val_los}\n"),
            "early stopping monitors 'val_los'",
        )
    if name == "group_typo":
        return (
            write(
                tmp_path,
                npz(tmp_path, X, Y),
                optimizer="{name: sgd, lr: 0.1, groups: [{params: ['hiden.*'], lr: 0.01}]}",
            ),
            "parameter group pattern 'hiden.*' matches no trainable parameter",
        )
    if name == "label_out_of_range":
        return write(tmp_path, npz(tmp_path, X, Y + 1)), "label 3 of 'y' is out of range"
    if name == "no_training_rows":
        npz(tmp_path, X[:1], Y[:1])
        return write(tmp_path, "{path: d.npz, val_split: 0.9}"), "1 sample leaves none for training"
    assert name == "no_data_section"
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(data="", optimizer="", extra="").split("train:")[0])
    return path, "training needs a 'train' section"


CASES = [
    "wrong_width",
    "missing_file",
    "monitor_typo",
    "group_typo",
    "label_out_of_range",
    "no_training_rows",
    "no_data_section",
]


@pytest.mark.parametrize("name", CASES)
def test_validate_train_refuses_what_train_refuses(tmp_path: Path, name: str, capsys) -> None:
    spec, fragment = _case(tmp_path, name)
    rc, out, err_validate = cli(["validate", "--train", spec], capsys)
    assert rc == 1 and fragment in err_validate, err_validate
    rc, _, err_train = cli(["train", spec, "--out", tmp_path / "run"], capsys)
    assert rc == 1
    assert err_train.splitlines()[0] == err_validate.splitlines()[0]  # the same error
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_validate_train_reports_the_rows_it_would_train_on(tmp_path: Path, capsys) -> None:
    spec = write(tmp_path, npz(tmp_path, X, Y))
    rc, out, err = cli(["validate", "--train", spec], capsys)
    assert rc == 0 and "8 training and 2 validation rows" in out, out + err
    rc, out, _ = cli(["validate", spec], capsys)  # without --train no data is read
    assert rc == 0 and "rows" not in out
    (tmp_path / "d.npz").unlink()
    assert cli(["validate", spec], capsys)[0] == 0
    assert cli(["validate", "--train", spec], capsys)[0] == 1


def test_a_variants_data_error_names_the_variant(tmp_path: Path, capsys) -> None:
    spec = write(
        tmp_path,
        npz(tmp_path, X, Y),
        extra="variants:\n  good: {}\n  bad: {train: {data: {path: gone.npz}}}\n",
    )
    rc, _, err = cli(["validate", "--train", spec], capsys)
    assert rc == 1 and "data file not found" in err and "in variant 'bad'" in err, err


# ---- unused inputs -----------------------------------------------------------------------

UNUSED = """\
graphspec: 1
name: unused
inputs:
  x: [batch, 2]
  spare: [batch, 7]
  y: [batch, 1]
graph:
  - {id: logit, op: linear, in: x, units: 1}
loss:
  - {op: bce_with_logits, in: [logit, y]}
train:
  data: {path: d.csv}
  epochs: 2
"""


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_an_unused_input_is_a_warning_and_needs_no_data(tmp_path: Path, backend, capsys) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(UNUSED)
    rows = "\n".join(f"{i % 3},{i % 2},{i % 2}" for i in range(12))
    (tmp_path / "d.csv").write_text(rows + "\n")  # no header: the last column is the target
    warning = (
        f"{spec}:5:10: warning: input 'spare' is never used: no output, loss or metric "
        "depends on it"
    )
    for argv in (["validate", spec], ["validate", "--train", spec]):
        rc, out, err = cli(argv, capsys)
        assert rc == 0 and warning in err, err
    rc, _, err = cli(["train", spec, "-b", backend, "--out", tmp_path / "run"], capsys)
    assert rc == 0 and warning in err, err
    assert "no columns" not in err
    rc, _, err = cli(["validate", "-W", spec], capsys)  # -W makes the warning fail
    assert rc == 1


# ---- CSV delimiters and row numbers ------------------------------------------------------


@pytest.mark.parametrize("sep, name", [(";", "semicolon"), ("\t", "tab")])
def test_a_csv_with_another_delimiter_gets_a_suggestion(tmp_path: Path, sep, name, capsys) -> None:
    (tmp_path / "d.csv").write_text(
        sep.join(["a", "b", "label"]) + "\n" + sep.join(["1", "2", "0"]) + "\n"
    )
    spec = write(tmp_path, "{path: d.csv}")
    rc, _, err = cli(["validate", "--train", spec], capsys)
    assert rc == 1
    assert "d.csv:1: the file has one column, but the line contains" in err
    assert f"it looks {name}-separated" in err
    assert "hint: graphspec reads comma-separated files" in err


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(needle))


@pytest.mark.parametrize(
    "edit, fragment",
    [
        ("7,8,1", "d.csv:{line}: label 3 of 'y' is out of range"),
        ("7,8,1.5", "d.csv:{line}: input 'y' is declared int, but the row holds [1.5]"),
        ("7,x8,1", "d.csv:{line}: b: 'x8' is not a number"),
        ("7,,1", "d.csv:{line}: b is empty"),
        ("7,nan,1", "d.csv:{line}: b is nan"),
    ],
)
def test_csv_rows_are_named_by_their_file_line(tmp_path: Path, edit: str, fragment: str) -> None:
    text = 'a,b,label\n\n1,2,0\n"3",4,1\n5,"6\n",2\n\n' + edit + "\n" + "9,9,0\n"
    if "label 3" in fragment:
        text = text.replace(edit, "7,8,3")
    (tmp_path / "d.csv").write_text(text)
    line = line_of(text, edit.split(",")[0] + ",")  # the edited row, as an editor numbers it
    assert line == 8
    with pytest.raises(DataError) as e:
        train(
            write(tmp_path, "{path: d.csv, columns: {x: [a, b], y: label}}"),
            out=tmp_path / "run",
            progress=False,
        )
    assert fragment.format(line=line) in e.value.message, e.value.message


def test_a_multiline_record_is_named_by_its_first_line(tmp_path: Path) -> None:
    text = 'a,b,label\n1,2,0\n5,"6\n7",1\n'  # the record on lines 3-4 has b = '6\n7'
    (tmp_path / "d.csv").write_text(text)
    with pytest.raises(DataError, match=r"d.csv:3: b: '6\n7' is not a number"):
        train(
            write(tmp_path, "{path: d.csv, columns: {x: [a, b], y: label}}"),
            out=tmp_path / "run",
            progress=False,
        )


def test_npz_rows_are_named_by_their_index(tmp_path: Path) -> None:
    y = Y.copy()
    y[6] = 9
    with pytest.raises(DataError, match=r"d.npz: row index 6: label 9 of 'y' is out of range"):
        train(write(tmp_path, npz(tmp_path, X, y)), out=tmp_path / "run", progress=False)


def test_a_spec_whose_inputs_are_all_unused_reads_no_data(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "graphspec: 1\nname: t\ninputs: {x: [batch, 2]}\ngraph:\n"
        "  - {id: w, op: param, shape: [2]}\nloss:\n  - {op: l2_penalty, in: [w]}\n"
        "train:\n  data: {path: d.csv}\n"
    )
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n")
    rc, _, err = cli(["validate", "--train", spec], capsys)
    assert rc == 1
    assert f"{spec}:9:16: error: no input of the spec reads data from" in err, err


def test_a_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path: Path) -> None:
    """Spreadsheets save 'CSV UTF-8' with a byte-order mark before the header."""
    text = "a,b,label\n" + "".join(f"{i},{i + 1},{i % 3}\n" for i in range(10))
    (tmp_path / "d.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    spec = write(tmp_path, "{path: d.csv, columns: {x: [a, b], y: label}}")
    result = train(spec, out=tmp_path / "run", progress=False)
    assert result.status == "completed"


def test_data_for_a_trained_model_names_rows_and_refuses_hostile_files(tmp_path: Path) -> None:
    """predict and evaluate read files with the same reader: rows named by file line, and
    a FIFO refused at once."""
    from hostile_data import fifo

    import graphspec as gs
    from graphspec.train.apply_data import read_file

    spec = gs.load(write(tmp_path, npz(tmp_path, X, Y)))
    ir = gs.build(spec)
    (tmp_path / "new.csv").write_text("0.5,0.5,1\n\n0.1,0.2,5\n")  # no header: y is last
    with pytest.raises(DataError, match=r"new.csv:3: label 5 of 'y' is out of range"):
        read_file(spec, ir, tmp_path / "new.csv", targets=True)
    with pytest.raises(DataError, match="is not a regular file"):
        read_file(spec, ir, fifo(tmp_path / "pipe.csv"), targets=None)


def test_validate_train_counts_every_split(tmp_path: Path, capsys) -> None:
    spec = write(tmp_path, "{source: blobs, samples: 100, val_split: 0.2, test_split: 0.1}")
    rc, out, err = cli(["validate", "--train", spec], capsys)
    assert rc == 0 and "70 training, 20 validation and 10 test rows" in out, out + err
