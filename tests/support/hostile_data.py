"""Hostile data files for the tests: forged .npy headers, zip bombs, endless and blocking files.

Each builder writes a file in a few milliseconds and a few megabytes at most, whatever it
claims to hold.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

from numpy.lib import format as npy

GiB = 2**30


def npy_header(shape: tuple[int, ...], descr: str = "<f8", fortran_order: bool = False) -> bytes:
    """A version 1.0 ``.npy`` header, as numpy writes it, declaring any shape."""
    buf = io.BytesIO()
    npy.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": fortran_order, "shape": shape}
    )
    return buf.getvalue()


def forged_npz(
    path: Path, shape: tuple[int, ...], body: bytes = b"\0" * 16, name: str = "x", **members: bytes
) -> Path:
    """An .npz whose array ``name`` declares ``shape`` (float64) over ``body`` alone; other
    members are written as given (name -> raw .npy bytes)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}.npy", npy_header(shape) + body)
        for other, data in members.items():
            z.writestr(f"{other}.npy", data)
    return path


def npy_bytes(array: object) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def zip_bomb(
    path: Path,
    unpacked: int = 3 * GiB,
    declared: int | None = None,
    shape: tuple[int, ...] | None = None,
    with_crc: bool = False,
) -> Path:
    """An .npz of one deflated member ``x.npy`` that inflates to ``unpacked`` bytes: an .npy
    header for a float64 array (of the size that fills the member, or ``shape``), then
    zeros.  ``declared`` is the uncompressed size written in the archive's directories
    (default: the truth; smaller for a bomb that lies).

    Deflate streams restart after a full flush, so one compressed MiB of zeros is repeated
    instead of compressing gigabytes.  The CRC is computed only ``with_crc`` (over
    gigabytes it takes seconds): a reader must refuse the member from its directory entry
    and header, long before reading enough to check one."""
    head = npy_header(((unpacked - 128) // 8,) if shape is None else shape)
    head += b"\0" * (128 - len(head))  # header and padding take the first 128 bytes exactly
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    mib = b"\0" * 2**20
    block = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH) == block  # the block repeats
    reps, rest = divmod(unpacked - 128, 2**20)
    tail = c.compress(b"\0" * rest) + c.flush()
    data = first + block * reps + tail
    size = unpacked if declared is None else declared
    member = b"x.npy"
    crc = 0
    if with_crc:
        crc = zlib.crc32(head)
        for _ in range(reps):
            crc = zlib.crc32(mib, crc)
        crc = zlib.crc32(b"\0" * rest, crc)
    local = (
        struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(member), 0
        )
        + member
    )
    central = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            8,
            0,
            0x21,
            crc,
            len(data),
            size,
            len(member),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        + member
    )
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    path.write_bytes(local + data + central + end)
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def endless(path: Path) -> Path:
    """``path`` a link to /dev/zero: a file that never ends."""
    os.symlink("/dev/zero", path)
    return path
