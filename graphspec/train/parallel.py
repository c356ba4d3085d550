"""What the training driver needs to know about data-parallel runs, without importing one.

A run is either alone (:class:`Solo`, every single-process run) or one rank of a process
group that a backend sets up (the torch backend's ``graphspec_torch.distributed``: torchrun
and DistributedDataParallel).  The driver asks the group four things and nothing else:

* ``is_main``: rank 0 owns the run directory (metrics log, summary, checkpoints, analysis);
  the other ranks write nothing there;
* ``trainer(...)``: the backend's trainer for this rank (it shards every batch and keeps
  the ranks' parameters equal);
* ``share(fn)``: rank 0 computes a value (reads the checkpoint) and every rank gets it,
  or the error it raised;
* ``decide(main, any_)``: flags decided once at an epoch boundary: ``main`` as rank 0 sees
  them (a new best, early stopping), ``any_`` true when any rank saw it (a signal).

Workers are recognised by torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from graphspec.backend import (
    DistributedTraining,
    capabilities,
    declaring,
    get_backend,
)
from graphspec.errors import UsageError

T = TypeVar("T")
WORKER_ENV = ("RANK", "WORLD_SIZE")  # set by torchrun (and torch.distributed.run) per worker


def in_worker() -> bool:
    """True inside a process that torchrun (or ``--nproc``) started as one rank of a group."""
    return all(k in os.environ for k in WORKER_ENV)


def worker_rank() -> int:
    """This process's rank under torchrun, 0 outside one (for who prints what)."""
    try:
        return int(os.environ.get("RANK", "0")) if in_worker() else 0
    except ValueError:
        return 0


class Solo:
    """The group of a single-process run: it is the main rank and decides alone."""

    rank = 0
    world_size = 1
    is_main = True
    device: str | None = None  # the device the group dictates (None: the caller's choice)
    restarted = False  # a worker group restarted by torchrun resumes by itself

    def trainer(self, program: Any, params: Any, train: Any, seed: int) -> Any:
        return program.trainer(params, train, seed)

    def share(self, fn: Callable[[], T]) -> T:
        return fn()

    def decide(self, main: Sequence[bool], any_: Sequence[bool]) -> tuple[list[bool], list[bool]]:
        return list(main), list(any_)

    def __enter__(self) -> Solo:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def single_process(backend: str) -> str:
    """Why ``backend`` cannot train data-parallel (its declared ``single_process`` note),
    and which installed backend can."""
    note = capabilities(get_backend(backend)).single_process
    able = next(declaring(lambda c: c.distributed is not None), None)
    where = (
        f"runs on --backend {able}"
        if able
        else "needs a backend that declares it (none is installed)"
    )
    return f"the {backend} backend {note}; data-parallel training {where}"


def require_distributed(backend: str, what: str) -> Callable[[], DistributedTraining]:
    """The loader of ``backend``'s declared data-parallel training (not called: nothing of
    it is imported yet), or a usage error for ``what`` saying why there is none."""
    load = capabilities(get_backend(backend)).distributed
    if load is None:
        raise UsageError(f"{what}: {single_process(backend)}")
    return load


def join(backend: str, dist_backend: str = "auto", timeout: float | None = None) -> Any:
    """The group this process belongs to: :class:`Solo` outside a torchrun worker, else the
    backend's group (a context manager: it leaves the process group on exit)."""
    if not in_worker():
        return Solo()
    if os.environ.get("WORLD_SIZE") == "1" and not capabilities(get_backend(backend)).distributed:
        return Solo()  # one rank of one: nothing to share, any backend will do
    return require_distributed(backend, "a torchrun worker")().join(dist_backend, timeout)


def launch(
    backend: str,
    spec: Any,
    train_kwargs: dict[str, Any],
    nproc: int,
    dist_backend: str = "auto",
    max_restarts: int = 0,
    timeout: float | None = None,
) -> Any:
    """Start ``nproc`` workers on this machine (torch.distributed.run's elastic agent) that
    train ``spec`` together; returns rank 0's RunResult."""
    if in_worker():
        raise UsageError(
            "--nproc starts the workers itself; under torchrun leave it out "
            "(torchrun's --nproc-per-node says how many)"
        )
    impl = require_distributed(backend, "--nproc")()
    return impl.launch(spec, train_kwargs, nproc, dist_backend, max_restarts, timeout)
