"""One training per run directory: an exclusive ``flock`` on a lock file inside it.

The lock is held for the run's lifetime.  The kernel releases it when the process ends,
however it ends (``kill -9`` included), so a stale lock file never blocks a resume: only a
living holder does.  The holder writes its pid, host, start time and command into the file
so that a refused training can say who holds the directory.  The file itself stays (never
unlinked): removing a lock file that another process has already opened would let two
processes each hold a lock on a different file.

Advisory locks need ``fcntl`` (POSIX); elsewhere runs are not protected.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from graphspec.errors import Location, TrainingError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK = ".graphspec.lock"
MAX_INFO_BYTES = 4096  # what the holder writes, and what a refused process reads of it


class RunLock:
    """``with RunLock(run_dir):`` (or ``acquire()`` ... ``release()``) -- hold
    ``run_dir``'s lock or raise a TrainingError naming the process that holds it.  The
    directory must exist."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise TrainingError(
                f"cannot create the lock file {self.path}: {e.strerror or e}",
                Location(str(self.path)),
                hint="is the run directory writable?",
            ) from None
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise self._held(fd) from None
            self._write_holder(fd)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)  # the holder is gone; the lock goes with the close
            os.close(self.fd)
            self.fd = None

    def _write_holder(self, fd: int) -> None:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "command": " ".join(sys.argv)[:1000],
        }
        data = json.dumps(info).encode("utf-8")[:MAX_INFO_BYTES]
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, data)
        except OSError as e:
            raise TrainingError(
                f"cannot write the lock file {self.path}: {e.strerror or e}",
                Location(str(self.path)),
            ) from None

    def _held(self, fd: int) -> TrainingError:
        holder = read_holder(fd)
        # The holder may have taken the lock a moment ago and not yet written who it is;
        # give it a few milliseconds before falling back to "another process".
        for _ in range(5):
            if holder:
                break
            time.sleep(0.01)
            holder = read_holder(fd)
        who = "another process"
        if holder:
            who = f"process {holder.get('pid', '?')} on host {holder.get('host', '?')}"
            if holder.get("started"):
                who += f", started {holder['started']}"
            if holder.get("command"):
                who += f" ({holder['command']})"
        return TrainingError(
            f"the run directory {self.path.parent} is in use: {who} is training into it",
            Location(str(self.path.parent)),
            hint="wait for that run to end (or stop it), or choose another --out",
        )


def read_holder(fd: int) -> dict[str, Any]:
    """What the lock's holder wrote about itself, or {} (it may not have written yet)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, MAX_INFO_BYTES).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(info, dict):
        return {}
    return {k: str(v)[:1000] for k, v in info.items() if k in ("pid", "host", "started", "command")}
