"""Hostile data files: each is a clear data error naming the file, at once, in bounded memory.

A forged .npy header claiming 64 GiB, a zip bomb, a ``data.csv`` linked to ``/dev/zero`` and
a FIFO used to exhaust memory or hang ``graphspec train``.  Through the command line (in a
child process, whose peak memory ``os.wait4`` reports) each ends with exit 1 and one error
naming the file; the in-process tests cover the other limits on small files by lowering them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hostile_data import GiB, endless, fifo, forged_npz, npy_bytes, npy_header, zip_bomb

from graphspec.errors import DataError
from graphspec.train import data_files

SPEC = """\
graphspec: 1
name: hostile
inputs:
  x: [batch, 2]
  y: [batch, 1]
graph:
  - {{id: logit, op: linear, in: x, units: 1}}
loss:
  - {{op: bce_with_logits, in: [logit, y]}}
train:
  data: {{path: {file}}}
  epochs: 1
"""
DATA_LINE = 11
HANG_S = 60  # a guard against hangs, not a speed requirement
# A child that imports graphspec (numpy, pydantic, networkx) and refuses the file peaks near
# 80 MiB; each hostile file claims at least 2 GiB, so a reader that allocated what it claims,
# or read /dev/zero for long, would show.
MAX_RSS_MIB = 512

Y = npy_bytes(np.zeros((4, 1)))


def write_spec(tmp_path: Path, file: str) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(file=file))
    return spec


# Linux carries a process's peak resident memory across fork and exec, so a child forked from
# this (large) pytest process would report the parent's peak. A small wrapper interpreter
# starts the command instead and reports its child's own peak (KiB) on stdout.
_MEASURE = """
import os, resource, subprocess, sys
try:
    rc = subprocess.run(sys.argv[2:], timeout=float(sys.argv[1])).returncode
except subprocess.TimeoutExpired:
    rc = 124
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)
"""


def run_cli(args: list[str], cwd: Path) -> tuple[int, str, int]:
    """(exit status, stderr, peak resident memory in MiB) of ``graphspec ARGS`` in a child."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NO_COLOR="1")
    command = [sys.executable, "-m", "graphspec", *args]
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(HANG_S), *command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    return proc.returncode, proc.stderr, int(proc.stdout.split()[-1]) // 1024


def _hostile(tmp_path: Path, kind: str) -> tuple[str, str]:
    """(the data file name in the spec, what its error says)."""
    if kind == "forged_header":  # 64 GiB declared in a file of a few hundred bytes
        forged_npz(tmp_path / "data.npz", (8 * GiB,), y=Y)
        assert (tmp_path / "data.npz").stat().st_size < 1024
        return (
            "data.npz",
            "array 'x' declares shape (8589934592,) of float64 (64.0 GiB); "
            "data files are limited to 2.0 GiB",
        )
    if kind == "zip_bomb":  # 3 GiB of zeros in 3 MB
        zip_bomb(tmp_path / "data.npz", 3 * GiB)
        assert (tmp_path / "data.npz").stat().st_size < 4 * 2**20
        return (
            "data.npz",
            "array 'x' unpacks to 3.0 GiB (from 3.0 MiB); data files are limited to 2.0 GiB",
        )
    if kind == "dev_zero":
        endless(tmp_path / "data.csv")
        return "data.csv", "data.csv is not a regular file (a character device)"
    assert kind == "fifo"
    fifo(tmp_path / "data.csv")
    return "data.csv", "data.csv is not a regular file (a named pipe)"


HOSTILE = ["forged_header", "zip_bomb", "dev_zero", "fifo"]


@pytest.mark.parametrize("command", [["train", "--out", "run"], ["validate", "--train"]])
@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_file_through_the_cli(tmp_path: Path, kind: str, command: list[str]) -> None:
    file, message = _hostile(tmp_path, kind)
    spec = write_spec(tmp_path, file)
    rc, err, rss_mib = run_cli([command[0], str(spec), *command[1:]], tmp_path)
    assert rc == 1, err
    headline = err.splitlines()[0]
    assert headline.startswith(f"{spec}:{DATA_LINE}:") and " error: " in headline, err
    assert str(tmp_path / file) in headline and message in headline, err
    assert "Traceback" not in err and "internal error" not in err
    assert rss_mib < MAX_RSS_MIB, f"peak memory {rss_mib} MiB"
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_the_bound_would_catch_a_reader_that_allocates(tmp_path: Path) -> None:
    """The memory assertion above means something: it measures the child, and a child that
    allocates 768 MiB peaks above the bound, while a child that allocates nothing does not."""
    big = "import numpy as np; a = np.ones(96 * 2**20); print(a.sum())"  # 768 MiB
    env = dict(os.environ, OMP_NUM_THREADS="1")
    sizes = []
    for code in (big, "pass"):
        proc = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(HANG_S), sys.executable, "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        sizes.append(int(proc.stdout.split()[-1]) // 1024)
    assert sizes[0] > MAX_RSS_MIB > sizes[1] * 4, sizes


# ---- the same files and the other limits, in-process ---------------------------------------


def read_npz(path: Path, *names: str) -> list[np.ndarray]:
    with data_files.read(path, path.name, None) as table:
        return [data_files.select(table, n, None) for n in names]


def test_a_bomb_that_lies_about_its_size(tmp_path: Path) -> None:
    """The directory says 4 KiB, the stream inflates to 3 GiB: zipfile stops at the declared
    size, where the checksum (of 3 GiB) fails, whatever the header claims; the reader
    allocates nothing near either size."""
    for shape in [None, (512,)]:  # a header telling the truth, a header agreeing with the lie
        path = zip_bomb(tmp_path / "d.npz", 3 * GiB, declared=4096 + 128, shape=shape)
        tracemalloc.start()
        try:
            with pytest.raises(DataError, match=r"d.npz: array 'x' .*\(Bad CRC-32"):
                read_npz(path, "x")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 * 2**20, peak


def test_header_declaring_more_than_the_member_holds(tmp_path: Path) -> None:
    path = forged_npz(tmp_path / "d.npz", (1000, 2), body=b"\0" * 64)
    with pytest.raises(
        DataError,
        match=r"declares shape \(1000, 2\) of float64 \(15.6 KiB\) "
        r"but its member holds 64 bytes",
    ):
        read_npz(path, "x")


@pytest.mark.parametrize(
    "header, message",
    [
        (b"\x93NUMPY\x02\x00" + (2**31).to_bytes(4, "little"), "not a readable .npy array"),
        (b"\x93NUMPY\x01\x00\x10\x00{'descr': 'x'}   ", "not a readable .npy array"),
        (b"\x93NUMPY\x07\x00", "unsupported .npy format version"),
        (b"not an npy at all", "not a readable .npy array"),
        (npy_header((-3,)), r"invalid shape \(-3,\)"),
        (npy_header((0, 2**63)), r"invalid shape \(0, 9223372036854775808\)"),
        (npy_header((2**31, 2**31, 0)), r"invalid shape \(2147483648, 2147483648, 0\)"),
        (npy_header((2,), descr="|O"), "cannot load without pickle"),
    ],
)
def test_malformed_npy_headers(tmp_path: Path, header: bytes, message: str) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "d.npz", "w") as z:
        z.writestr("x.npy", header + b"\0" * 32)
    with pytest.raises(DataError, match=message):
        read_npz(tmp_path / "d.npz", "x")


def test_the_limit_counts_every_selected_array(tmp_path: Path, monkeypatch) -> None:
    np.savez(tmp_path / "d.npz", a=np.zeros(100), b=np.zeros(100))
    monkeypatch.setattr(data_files, "MAX_DATA_BYTES", 1000)  # each array: 800 bytes
    with data_files.read(tmp_path / "d.npz", "d.npz", None) as table:
        assert data_files.select(table, "a", None).shape == (100,)
        with pytest.raises(DataError, match="the selected arrays hold more than 1000 bytes"):
            data_files.select(table, "b", None)


def test_csv_limits(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b\n" + "1,2\n" * 100)
    monkeypatch.setattr(data_files, "MAX_CSV_BYTES", 200)
    with pytest.raises(DataError, match="d.csv is larger than 200 bytes"):
        data_files.read(path, "d.csv", None)
    monkeypatch.setattr(data_files, "MAX_CSV_BYTES", 2**20)
    monkeypatch.setattr(data_files, "MAX_DATA_BYTES", 8 * 150)
    with pytest.raises(DataError, match="d.csv holds more than 150 numbers"):
        data_files.read(path, "d.csv", None)


def test_arrays_read_as_numpy_writes_them(tmp_path: Path) -> None:
    """The reader that replaced np.load reads what np.savez writes: both byte orders, Fortran
    order, compressed members, empty and 3-D arrays."""
    rng = np.random.default_rng(0)
    arrays = {
        "c": rng.normal(size=(5, 3)),
        "f": np.asfortranarray(rng.normal(size=(4, 6))),
        "big_endian": rng.normal(size=7).astype(">f4"),
        "ints": rng.integers(-5, 5, size=(3, 2, 2)).astype(np.int16),
        "empty": np.zeros((0, 4)),
        "flags": np.array([True, False, True]),
    }
    for save in (np.savez, np.savez_compressed):
        save(tmp_path / "d.npz", **arrays)
        got = read_npz(tmp_path / "d.npz", *arrays)
        for (name, want), have in zip(arrays.items(), got):
            np.testing.assert_array_equal(
                have, want.astype(np.float64) if name == "flags" else want, err_msg=name
            )


def test_only_regular_files_are_opened(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError, match="data path is a directory"):
        data_files.read(tmp_path / "dir.csv", "dir.csv", None)
    with pytest.raises(DataError, match="not a regular file"):
        data_files.read(fifo(tmp_path / "p.npz"), "p.npz", None)
    with pytest.raises(DataError, match="data file not found"):
        data_files.read(tmp_path / "none.csv", "none.csv", None)
