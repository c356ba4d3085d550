"""Loading what others wrote: checkpoints and data files are read without pickle.

A pickle runs code when it is loaded, so every reader refuses one -- a pickled object array
inside an .npz, a whole pickle file named .npz or .pt -- with a clear error, and the
payload (which would create a file) never runs.  Tampered and truncated checkpoints get a
CheckpointError through the API and through the CLI (exit 1, no traceback); broken data
files a DataError located at the spec's ``train.data``.
"""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
import time
import zipfile
from pathlib import Path
from typing import Any

import hostile_data
import numpy as np
import pytest
from paths import XOR

from graphspec.cli import main
from graphspec.errors import CheckpointError, DataError
from graphspec.train import checkpoint, train


class Payload:
    """Unpickling this runs ``touch <marker>``: evidence that a loader executed a pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def evil_npy(marker: Path) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return buf.getvalue()


def test_the_payload_is_live(tmp_path: Path) -> None:
    """The tests below mean something only if the payload would run if unpickled."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()
    marker.unlink()
    np.load(io.BytesIO(evil_npy(marker)), allow_pickle=True)
    assert marker.exists()


SPEC = """\
graphspec: 1
name: t
seed: 0
inputs:
  x: [batch, 2]
  y: {{shape: [batch], dtype: int}}
graph:
  - {{id: h, op: linear, in: x, units: 4}}
  - {{id: act, op: tanh}}
  - {{id: logits, op: linear, units: 2}}
loss:
  - {{op: cross_entropy, in: [logits, y]}}
train:
  data: {data}
  optimizer: {{name: adam, lr: 0.01}}
  epochs: 2
  batch_size: 8
"""
DATA_LINE = 14  # where `data:` stands in SPEC
XOR_DATA = "{source: xor, samples: 32}"


def write_spec(tmp_path: Path, data: str = XOR_DATA) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(data=data))
    return path


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "internal error" not in err, err
    return rc, err


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A finished two-epoch run with its checkpoint."""
    out = tmp_path / "run"
    train(write_spec(tmp_path), out=out, progress=False)
    return out


# ---- pickles are never run -------------------------------------------------------------------


def test_pickled_array_in_a_checkpoint_is_refused(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    ckpt = run / "checkpoint.npz"
    with zipfile.ZipFile(ckpt, "a") as z:  # a real checkpoint with one more entry
        z.writestr("opt/evil.npy", evil_npy(marker))
    with pytest.raises(CheckpointError, match="cannot be read without pickle"):
        checkpoint.load(ckpt)
    spec = tmp_path / "spec.yaml"
    rc, err = cli(["train", spec, "--out", run, "--resume", "--epochs", 3], capsys)
    assert rc == 1 and err.startswith(f"{ckpt}: error: checkpoint {ckpt} cannot be read "
                                      "without pickle")
    rc, err = cli(["export", spec, "--onnx", tmp_path / "m.onnx", "--checkpoint", ckpt], capsys)
    assert rc == 1 and "cannot be read without pickle" in err
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "npy"])
def test_a_pickle_named_npz_is_refused(
    run: Path, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    ckpt = run / "checkpoint.npz"
    ckpt.write_bytes(pickle.dumps(Payload(marker)) if kind == "pickle" else evil_npy(marker))
    with pytest.raises(CheckpointError, match="not an .npz archive"):
        checkpoint.load(ckpt)
    with pytest.raises(CheckpointError, match="not an .npz archive"):
        checkpoint.load_params(ckpt)
    rc, err = cli(["train", tmp_path / "spec.yaml", "--out", run, "--resume"], capsys)
    assert rc == 1 and err.startswith(f"{ckpt}: error: ")
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_generated_torch_module_refuses_a_malicious_pickle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch = pytest.importorskip("torch")
    module_path = tmp_path / "model.py"
    rc, _ = cli(["compile", write_spec(tmp_path), "--backend", "torch", "-o", module_path],
                capsys)
    assert rc == 0
    spec = importlib.util.spec_from_file_location("gs_generated_model", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.read_params(module_path.with_suffix(".pt"))) >= {"h.weight"}
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"h.weight": Payload(marker)}, evil)  # torch's zip format, pickled inside
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        module.read_params(evil)
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps(Payload(marker)))  # a bare pickle, torch's legacy format
    with pytest.raises(pickle.UnpicklingError):
        module.read_params(legacy)
    assert not marker.exists()


def test_pickled_data_file_is_refused_at_train_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.npy", evil_npy(marker))
        z.writestr("y.npy", evil_npy(marker))
    (tmp_path / "data.npz").write_bytes(buf.getvalue())
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps(Payload(marker)))
    for name, message in [("data.npz", "cannot load without pickle"),
                          ("pickle.npz", "is not an .npz archive")]:
        spec = write_spec(tmp_path, f"{{path: {name}}}")
        with pytest.raises(DataError, match=message) as e:
            train(spec, out=tmp_path / "run", progress=False)
        assert e.value.location is not None and e.value.location.line == DATA_LINE
        rc, err = cli(["train", spec, "--out", tmp_path / "run"], capsys)
        assert rc == 1 and err.startswith(f"{spec}:{DATA_LINE}:"), err
        assert message in err.splitlines()[0]
    assert not marker.exists()


# ---- tampered and truncated checkpoints -------------------------------------------------------


def _rewrite(path: Path, change: Any) -> None:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) * 2 // 3])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "flipped_byte":
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("param/h.weight.npy")
        at = info.header_offset + 30 + len(info.filename) + info.compress_size - 2
        path.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :])
    elif how == "tampered_value":
        _rewrite(path, lambda a: a.__setitem__("param/h.weight", a["param/h.weight"] * 2))
    elif how == "tampered_meta":
        _rewrite(path, lambda a: a.__setitem__(
            "meta", np.frombuffer(a["meta"].tobytes().replace(b'"epoch": 2', b'"epoch": 1'),
                                  dtype=np.uint8)))
    elif how == "no_digest":
        _rewrite(path, lambda a: a.pop("digest"))
    elif how == "foreign_npz":
        path.unlink()
        np.savez(path, weights=np.ones(3))
    elif how == "directory":
        path.unlink()
        path.mkdir()
    else:
        assert how == "garbage"
        path.write_bytes(os.urandom(len(data)))


DAMAGES = {
    "truncated": "truncated or corrupt",
    "empty": "truncated or corrupt",
    "flipped_byte": "truncated or corrupt|integrity check",
    "tampered_value": "fails its integrity check",
    "tampered_meta": "fails its integrity check",
    "no_digest": "is not a graphspec checkpoint",
    "foreign_npz": "is not a graphspec checkpoint",
    "directory": "no checkpoint at .* \\(it is a directory\\)",
    "garbage": "truncated or corrupt",
}


@pytest.mark.parametrize("how", sorted(DAMAGES))
def test_damaged_checkpoint_is_a_clear_error(
    run: Path, tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    ckpt = run / "checkpoint.npz"
    _damage(ckpt, how)
    with pytest.raises(CheckpointError, match=DAMAGES[how]) as e:
        checkpoint.load(ckpt)
    assert e.value.location is not None and e.value.location.file == str(ckpt)
    rc, err = cli(["train", tmp_path / "spec.yaml", "--out", run, "--resume", "--epochs", 4],
                  capsys)
    assert rc == 1
    headline = err.splitlines()[0]
    assert headline.startswith(f"{ckpt}: error: ") and re.search(DAMAGES[how], headline), err


@pytest.mark.parametrize("how", ["truncated", "tampered_value", "directory", "garbage"])
def test_export_refuses_a_damaged_checkpoint(
    run: Path, tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = run / "checkpoint.npz"
    _damage(ckpt, how)
    rc, err = cli(["export", tmp_path / "spec.yaml", "--onnx", tmp_path / "m.onnx",
                   "--checkpoint", ckpt], capsys)
    assert rc == 1 and err.startswith(f"{ckpt}: error: "), err
    assert not (tmp_path / "m.onnx").exists()


def test_checkpoint_of_another_spec_is_refused(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.yaml"
    other.write_text((tmp_path / "spec.yaml").read_text().replace("units: 4", "units: 5"))
    rc, err = cli(["train", other, "--out", run, "--resume", "--epochs", 4], capsys)
    assert rc == 1 and "do not fit spec" in err
    assert "shape: 'h.weight': the spec's shape is [2, 5], the checkpoint's [2, 4]" in err


# ---- data files: each problem a DataError at train.data -----------------------------------


def _npz(path: Path, **arrays: Any) -> str:
    np.savez(path, **arrays)
    return path.name


GOOD_X = np.random.default_rng(0).normal(size=(32, 2))
GOOD_Y = np.arange(32) % 2


def _case(tmp_path: Path, name: str) -> tuple[str, str]:
    """(the train.data mapping, a fragment of the expected message)."""
    d = tmp_path
    if name == "missing":
        return "{path: nowhere.npz}", "data file not found: "
    if name == "directory":
        (d / "adir.npz").mkdir()
        return "{path: adir.npz}", "data path is a directory"
    if name == "unsupported_type":
        (d / "data.txt").write_text("1 2 3\n")
        return "{path: data.txt}", "unsupported data file type '.txt'"
    if name == "nan":
        x = GOOD_X.copy()
        x[5, 1] = np.nan
        return f"{{path: {_npz(d / 'd.npz', x=x, y=GOOD_Y)}}}", "holds NaN or Inf"
    if name == "inf":
        x = GOOD_X.copy()
        x[3, 0] = -np.inf
        return f"{{path: {_npz(d / 'd.npz', x=x, y=GOOD_Y)}}}", "holds NaN or Inf"
    if name == "missing_array":
        return (f"{{path: {_npz(d / 'd.npz', x=GOOD_X, label=GOOD_Y)}}}",
                "has no array 'y'")
    if name == "wrong_shape":
        return (f"{{path: {_npz(d / 'd.npz', x=np.ones((32, 3)), y=GOOD_Y)}}}",
                "data for input 'x' has shape [n, 3], but it is declared [batch, 2]")
    if name == "label_out_of_range":
        return (f"{{path: {_npz(d / 'd.npz', x=GOOD_X, y=GOOD_Y * 5)}}}",
                "d.npz: row index 1: label 5 of 'y' is out of range")
    if name == "negative_label":
        return (f"{{path: {_npz(d / 'd.npz', x=GOOD_X, y=GOOD_Y - 1)}}}",
                "d.npz: row index 0: label -1 of 'y' is out of range")
    if name == "fractional_label":
        return (f"{{path: {_npz(d / 'd.npz', x=GOOD_X, y=GOOD_Y + 0.5)}}}",
                "d.npz: row index 0: input 'y' is declared int, but the row holds")
    if name == "strings":
        return (f"{{path: {_npz(d / 'd.npz', x=GOOD_X.astype(str), y=GOOD_Y)}}}",
                "non-numeric dtype")
    if name == "rows_differ":
        return (f"{{path: {_npz(d / 'd.npz', x=GOOD_X, y=GOOD_Y[:30])}}}",
                "inputs have different numbers of rows")
    if name == "empty_npz":
        return f"{{path: {_npz(d / 'd.npz')}}}", "holds no arrays"
    if name == "truncated_npz":
        _npz(d / "d.npz", x=GOOD_X, y=GOOD_Y)
        (d / "d.npz").write_bytes((d / "d.npz").read_bytes()[:300])
        return "{path: d.npz}", "is not a readable .npz file"
    if name == "csv_ragged":
        (d / "d.csv").write_text("a,b,label\n1,2,0\n3,4\n")
        return "{path: d.csv, columns: {x: [a, b], y: label}}", "d.csv:3: row has 2 fields"
    if name == "csv_not_a_number":
        (d / "d.csv").write_text("a,b,label\n1,2,0\n3,four,1\n")
        return "{path: d.csv, columns: {x: [a, b], y: label}}", "b: 'four' is not a number"
    if name == "csv_empty":
        (d / "d.csv").write_text("\n\n")
        return "{path: d.csv}", "d.csv is empty"
    if name == "csv_not_utf8":
        (d / "d.csv").write_bytes(b"a,b,label\n1,2,\xff\n")
        return "{path: d.csv}", "is not UTF-8 text"
    if name == "csv_header_only":
        (d / "d.csv").write_text("a,b,label\n")
        return "{path: d.csv}", "has a header but no data rows"
    if name == "csv_escape_sequence":  # shown, but never sent to the terminal raw
        (d / "d.csv").write_text("a,b,label\n1,\x1b[2J\x1b]0;pwned\x07,0\n")
        return "{path: d.csv, columns: {x: [a, b], y: label}}", "b: '\ufffd[2J\ufffd]0;pwned"
    if name == "fifo":  # would block forever
        hostile_data.fifo(d / "d.csv")
        return "{path: d.csv}", "d.csv is not a regular file (a named pipe)"
    if name == "endless":  # /dev/zero: would be read without end
        hostile_data.endless(d / "d.csv")
        return "{path: d.csv}", "d.csv is not a regular file (a character device)"
    if name == "forged_header":  # 64 GiB claimed in a few hundred bytes
        hostile_data.forged_npz(d / "d.npz", (8 * hostile_data.GiB,), y=hostile_data.npy_bytes(
            GOOD_Y))
        return "{path: d.npz}", "declares shape (8589934592,) of float64 (64.0 GiB)"
    if name == "zip_bomb":  # 3 GiB of zeros in 3 MB
        hostile_data.zip_bomb(d / "d.npz", 3 * hostile_data.GiB)
        return "{path: d.npz}", "data files are limited to 2.0 GiB"
    assert name == "csv_missing_value"
    (d / "d.csv").write_text("a,b,label\n1,,0\n")
    return "{path: d.csv, columns: {x: [a, b], y: label}}", "b is empty (a missing value)"


DATA_CASES = [
    "missing", "directory", "unsupported_type", "nan", "inf", "missing_array", "wrong_shape",
    "label_out_of_range", "negative_label", "fractional_label", "strings", "rows_differ",
    "empty_npz", "truncated_npz", "csv_ragged", "csv_not_a_number", "csv_empty", "csv_not_utf8",
    "csv_header_only", "csv_missing_value", "csv_escape_sequence", "fifo", "endless",
    "forged_header", "zip_bomb",
]


@pytest.mark.parametrize("name", DATA_CASES)
def test_bad_data_file_is_a_located_data_error(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data, fragment = _case(tmp_path, name)
    spec = write_spec(tmp_path, data)
    with pytest.raises(DataError) as e:
        train(spec, out=tmp_path / "run", progress=False)
    assert fragment in e.value.render()
    loc = e.value.location
    assert loc is not None and loc.file == str(spec) and loc.line == DATA_LINE, loc
    rc, err = cli(["train", spec, "--out", tmp_path / "run"], capsys)
    assert rc == 1
    headline = err.splitlines()[0]
    assert headline.startswith(f"{spec}:{DATA_LINE}:{loc.col}: error: ") and fragment in headline
    assert all(c.isprintable() for c in err.replace("\n", ""))
    assert not (tmp_path / "run" / "checkpoint.npz").exists()  # refused before training


# ---- whatever is given as FILE, to every command that reads a spec -----------------------

COMMANDS = {
    "validate": [],
    "inspect": [],
    "compile": ["-o", "{tmp}/m.py"],
    "train": ["--out", "{tmp}/run"],
    "verify": [],
    "export": ["--onnx", "{tmp}/m.onnx"],
    "diff": [str(XOR)],  # FILE as diff's B
}
# diff(1)'s convention: 1 means "the files differ", trouble is 2.
BAD_INPUT_STATUS = {"diff": 2}
CORPUS = Path(__file__).parents[1] / "spec" / "bad_specs"


def _bad_file(tmp_path: Path, kind: str) -> tuple[Path, str, str | None]:
    """(the FILE, the headline's expected start after 'FILE', a message fragment)."""
    if kind == "directory":
        return tmp_path, ": error: ", "is a directory"
    if kind == "missing":
        return tmp_path / "nope.yaml", ": error: ", "no such file"
    if kind == "ten_megabytes":
        big = tmp_path / "big.yaml"
        big.write_text("graphspec: 1\n" + ("# " + "x" * 1022 + "\n") * (10 * 1024))
        return big, ": error: ", "specs are limited to 4 MiB"
    if kind == "endless_device":
        return Path("/dev/zero"), ": error: ", "is not a regular file (a character device)"
    if kind == "fifo":  # opening a pipe with no writer would block forever
        fifo = tmp_path / "pipe.yaml"
        os.mkfifo(fifo)
        return fifo, ": error: ", "is not a regular file (a named pipe)"
    if kind == "nul_byte":
        path = tmp_path / "nul.yaml"
        path.write_bytes(b"graphspec: 1\nname: t\x00\n")
        return path, ":2:8: error: ", "the control character U+0000 is not allowed"
    name = {"non_utf8": "non_utf8", "empty": "empty", "alias_bomb": "alias_bomb",
            "python_tag": "tag_python_object"}[kind]
    path = CORPUS / f"{name}.yaml"
    where = {"non_utf8": ":4:10", "empty": ":1:1", "alias_bomb": ":8:4",
             "python_tag": ":"}[kind]
    return path, f"{where}" + (": error: " if where != ":" else ""), None


BAD_FILES = ["directory", "missing", "ten_megabytes", "endless_device", "fifo", "nul_byte",
             "non_utf8",
             "empty", "alias_bomb", "python_tag"]


@pytest.mark.parametrize("kind", BAD_FILES)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_a_bad_file(
    tmp_path: Path, command: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path, after, fragment = _bad_file(tmp_path, kind)
    if not path.exists() and kind == "endless_device":
        pytest.skip("no /dev/zero here")
    extra = [a.format(tmp=tmp_path) for a in COMMANDS[command]]
    start = time.perf_counter()
    rc, err = cli([command, *extra, path], capsys)
    elapsed = time.perf_counter() - start
    assert rc == BAD_INPUT_STATUS.get(command, 1), err
    assert err.startswith(f"{path}{after}"), err
    if fragment:
        assert fragment in err.splitlines()[0], err
    assert elapsed < 1.0 or kind not in ("alias_bomb", "ten_megabytes", "endless_device", "fifo")
    assert not list(tmp_path.glob("m.*")) and not (tmp_path / "run").exists()


@pytest.mark.parametrize("content, message", [
    ("[1, 2]\n", "line 1 of {m} is not a JSON object"),
    ('{"epoch": 1, "train_loss": 0.5}\nnot json\n', "line 2 of {m} is not a JSON object"),
    (b"\xff\xfe\n", "cannot read {m}"),
])
def test_report_refuses_a_damaged_metrics_log(
    tmp_path: Path, content: str | bytes, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = tmp_path / "metrics.jsonl"
    if isinstance(content, bytes):
        metrics.write_bytes(content)
    else:
        metrics.write_text(content)
    rc, err = cli(["report", tmp_path, "-o", tmp_path / "out"], capsys)
    assert rc == 1 and err.startswith(f"{metrics}"), err
    assert message.format(m=metrics) in err.splitlines()[0]


@pytest.mark.parametrize("patch, problem", [
    ({"epoch": "abc"}, "'epoch' is 'abc'"),
    ({"epoch": 10**30}, "but the history has 2 epochs"),
    ({"seed": "x"}, "'seed' is 'x'"),
    ({"history": 5}, "'history' is 5"),
    ({"history": [1, 2]}, "per-epoch records of numbers"),
    ({"tracker": {"best": "x"}}, "early-stopping state's 'best' is 'x'"),
    ({"wall_time_s": "soon"}, "'wall_time_s' is 'soon'"),
])
def test_forged_metadata_with_a_valid_digest_is_refused(
    run: Path, tmp_path: Path, patch: dict[str, Any], problem: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The digest proves a file is as written, not who wrote it: a checkpoint re-signed
    after editing its metadata must still be refused cleanly, not crash the resume."""
    ckpt = run / "checkpoint.npz"
    good = checkpoint.load(ckpt)
    checkpoint.save(ckpt, checkpoint.Checkpoint({**good.meta, **patch}, good.param, good.opt,
                                                good.best, good.last))
    with pytest.raises(CheckpointError, match="inconsistent metadata"):
        checkpoint.load(ckpt)
    rc, err = cli(["train", tmp_path / "spec.yaml", "--out", run, "--resume", "--epochs", 4],
                  capsys)
    assert rc == 1 and err.startswith(f"{ckpt}: error: ") and problem in err.splitlines()[0]
