"""Atomic file writes: readers (and a process killed mid-write) never see half a file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def temp_path(path: Path) -> Path:
    """The temporary sibling a write goes through (``.NAME.PID.tmp``)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "wb", encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Write to a temporary sibling; on success flush, fsync and ``os.replace`` it over
    ``path``, then fsync the folder so the rename itself survives a crash."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
