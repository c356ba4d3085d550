"""Open a user's file only if it is a regular file, without ever blocking.

A FIFO named as a spec or a data file would block ``open`` until a writer comes, and a
device such as ``/dev/zero`` reads without end. ``O_NONBLOCK`` makes opening a FIFO return
at once; the file's type is then checked on the opened descriptor, so it cannot change
between the check and the read. Callers turn the exceptions into their own located errors.
"""

from __future__ import annotations

import os
import stat
import zipfile
from typing import IO

# What np.load may unpack from a checkpoint or an analysis result: far above any model this
# project trains, far below what a small crafted archive could otherwise make it allocate.
MAX_NPZ_BYTES = 2 * 2**30


class NotARegularFile(OSError):
    """The path names a pipe, a device, a socket or a directory; ``kind`` says which."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def open_regular(path: str | os.PathLike[str]) -> IO[bytes]:
    """``path`` opened for binary reading; FileNotFoundError, NotARegularFile or OSError."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:  # pragma: no cover - Linux opens directories read-only
        raise NotARegularFile("a directory") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError:  # pragma: no cover - fstat of an open descriptor
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotARegularFile(_kind(mode))
    return os.fdopen(fd, "rb")


def _kind(mode: int) -> str:
    for test, what in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return what
    return "not a file"  # pragma: no cover - no other kinds on POSIX


def npz_too_large(path: str | os.PathLike[str]) -> int | None:
    """The bytes an .npz archive's directory says its members unpack to, when over
    MAX_NPZ_BYTES;
    None when within it. zipfile stops reading a member at its declared size, so the
    directory bounds what np.load can allocate."""
    with zipfile.ZipFile(path) as z:
        total = sum(i.file_size for i in z.infolist())
    return total if total > MAX_NPZ_BYTES else None
