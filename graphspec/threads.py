"""``--threads N|auto`` (``threads=`` in ``gs.train``): the CPU threads a run computes with.

Left out (None), the ``auto`` rule applies silently and the run's summary.json records the
count and the reason; ``auto`` asked for also says them on stderr, as ``--backend auto``
says its choice.

``N`` sets numpy's BLAS threads (through threadpoolctl, which reaches OpenBLAS, MKL and
OpenMP wherever numpy loaded them) and torch's intra-op threads (``torch.set_num_threads``)
for the run, and :func:`limited` puts back what was there afterwards.

``auto`` (and the default) is the measured rule (docs/training.md, from
``tools/bench/bench_threads.py``):

* a training step of at most :data:`ONE_THREAD_MAX_FLOPS` gets one thread: up to there a
  second thread did not pay on both backends, and on a busy machine cost up to 25x (torch's
  default threads made a tiny model ~40x slower on a 2-core machine, issue 17);
* a larger step gets every core this process may use (:func:`cores`).

The cores of a process are those its CPU affinity allows, capped by ``OMP_NUM_THREADS``
when it is set (the variable is how a launcher shares the machine between processes: the
workers of ``--nproc`` get 1 each, ``graphspec sweep -j N`` gives each member a share) and
by the cores other work leaves idle (the machine's cores less its one-minute load average):
a thread that waits for a busy core slows every kernel it takes part in.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from graphspec.backend_choice import step_batch, step_flops
from graphspec.ir.graph import IR

AUTO = "auto"
# Measured (docs/training.md, BENCHMARKS.md, tools/bench/bench_threads.py) on this 2-core
# machine, idle (load 0.8-1.1): the second core gains from 2.6e8 FLOPs per step on both
# backends (0.83-0.88x, down to 0.59x at 4.5e9) and at 1.6e8 not on torch (1.2x, the deep
# 64-wide model); below that it is within noise or slower (up to 1.08x).  Busy (load 3-9),
# a second thread lost at every size (up to 25x on tiny torch models): cores() counts only
# idle cores for that reason.
ONE_THREAD_MAX_FLOPS = 200_000_000

Threads = int | str  # a positive count, or "auto"


def parse(text: str) -> Threads:
    """``--threads``' argument type: ``auto`` or a positive integer (argparse's error, exit
    2, otherwise)."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of threads or 'auto', got {text!r:.40}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of threads or 'auto', got {value}"
        )
    return value


def check(threads: Threads | None) -> Threads | None:
    """The Python API's check of ``threads=`` (what :func:`parse` refuses, as a ValueError)."""
    if (
        threads is None
        or threads == AUTO
        or (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1)
    ):
        return threads
    raise ValueError(f"threads must be a positive integer or 'auto', got {threads!r:.40}")


def cores() -> int:
    """CPU cores this process may use: its affinity, capped by ``OMP_NUM_THREADS`` and by
    the idle cores (module docstring)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity call
        n = os.cpu_count() or 1
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        n = min(n, int(env))
    if hasattr(os, "getloadavg"):  # not on Windows
        n = min(n, (os.cpu_count() or 1) - round(os.getloadavg()[0]))
    return max(1, n)


@dataclass(frozen=True)
class Choice:
    threads: int
    reason: str
    auto: bool = True  # chosen by the rule (False: given)

    def note(self) -> str:
        """The one line that says what was chosen and why."""
        return f"note: threads auto: {self.threads} ({self.reason})"


def choose(flops: int, available: int) -> Choice:
    """The rule of the module docstring for a step of ``flops`` on ``available`` cores."""
    size = f"{flops:.3g} FLOPs per training step"
    if flops <= ONE_THREAD_MAX_FLOPS:
        return Choice(
            1,
            f"{size}, at most {ONE_THREAD_MAX_FLOPS:.3g}: more threads cost more "
            "than they share out",
        )
    if available == 1:
        return Choice(
            1,
            f"{size}; 1 core free for this process (its affinity, "
            "OMP_NUM_THREADS or the machine's load)",
        )
    return Choice(
        available, f"{size}, above {ONE_THREAD_MAX_FLOPS:.3g}: every core this process may use"
    )


def resolve(threads: Threads | None, ir: IR, batch: int | None = None) -> Choice:
    """The threads for training ``ir``: as given, or what ``auto`` (or None) chooses, with
    the reason (:meth:`Choice.note`).  ``batch``: the rows of one pass when they are not
    the training batch (a forward pass of ``predict``): the rule then weighs the training
    step those rows would make, whose products have the pass's sizes."""
    if threads is not None and threads != AUTO:
        return Choice(int(threads), "given", auto=False)
    return choose(step_flops(ir, batch or step_batch(ir)), cores())


def warn_oversubscribed(threads: Threads | None, processes: int) -> None:
    """A note on stderr when ``processes`` each computing with ``threads`` threads would
    need more cores than the machine has (``auto`` shares them out itself)."""
    total = os.cpu_count() or 1
    if threads is not None and threads != AUTO and int(threads) * processes > total:
        print(
            f"note: {processes} processes with {threads} threads each on {total} cores: "
            "they compete for the cores (use --threads auto, or at most "
            f"{max(1, total // processes)})",
            file=sys.stderr,
        )


def share(processes: int) -> int:
    """Threads each of ``processes`` processes run side by side may take: the machine's
    cores divided among them (at least 1)."""
    return max(1, (os.cpu_count() or 1) // processes)


@contextlib.contextmanager
def limited(threads: int, torch_too: bool) -> Iterator[None]:
    """Compute with ``threads`` threads inside: numpy's BLAS and OpenMP pools, and torch's
    intra-op threads when ``torch_too`` (imports torch: say so only for the torch backend);
    the previous settings come back on exit."""
    # threadpoolctl finds the pools of the libraries loaded now: torch's own OpenMP is set
    # through torch, which also covers a pool it loads later.
    from threadpoolctl import threadpool_limits  # deferred: only a run that trains needs it

    torch_before = None
    if torch_too:
        import torch  # heavy: the torch backend has loaded it already

        torch_before = torch.get_num_threads()
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        if torch_before is not None:
            torch.set_num_threads(torch_before)
