"""Atomic file writes: readers (and a process killed mid-write) never see half a file.

A write that fails (disk full, read-only directory, quota) raises :class:`WriteError`, a
user-facing error naming the file, instead of a bare OSError: the old file is untouched.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from graphspec.errors import Location, TrainingError


class WriteError(TrainingError):
    """A run file could not be written (``path``); whatever was there before is intact."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(f"cannot write {path}: {error.strerror or error}", Location(str(path)),
                         hint="free some space or make the directory writable, then try again")
        self.path = path
        self.errno = error.errno
        self.checkpoint: Path | None = None  # set by the driver: an intact checkpoint, if any


def write_error(path: Path, error: OSError) -> WriteError:
    """``error`` as a WriteError for ``path`` (an existing WriteError is kept as it is)."""
    return error if isinstance(error, WriteError) else WriteError(path, error)


def temp_path(path: Path) -> Path:
    """The temporary sibling a write goes through (``.NAME.PID.tmp``)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "wb", encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Write to a temporary sibling; on success flush, fsync and ``os.replace`` it over
    ``path``, then fsync the folder so the rename itself survives a crash.  An OSError
    while writing becomes a :class:`WriteError` naming ``path``."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            raise write_error(path, e) from None
        raise


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
