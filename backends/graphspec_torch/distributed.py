"""Data-parallel training on torch.distributed: torchrun's workers, DistributedDataParallel.

``graphspec train --nproc N`` (and ``gs.train(..., nproc=N)``) starts N workers on this
machine through torch's elastic agent (:func:`launch`); ``torchrun ... -m graphspec train``
starts them anywhere.  Each worker runs the ordinary training driver, which finds itself in
a process group (:func:`join`) and trains with a :class:`DistributedTrainer`.

The contract (docs/distributed.md): the spec's ``batch_size`` is the global batch.  Every
rank computes the single-process shuffle and takes a contiguous share of each batch
(``numpy.array_split``: the first ``B mod N`` ranks take one row more; a rank may have none
when a batch is smaller than N).  A rank's loss weighs its share so that the gradient
DistributedDataParallel averages is the gradient of the global batch's loss:

* a loss term that averages over the examples (every loss op) counts ``N * b_r / B`` times
  on rank r (``b_r`` of the batch's ``B`` rows; DDP divides by N);
* a term that reads no input (a weight penalty) counts ``N`` times on rank 0 and not at all
  elsewhere: once in the average.

Batch norm takes its statistics over every rank's rows (the kernel's ``group``), and each
rank draws noise from its own stream.  A spec whose graph combines examples in any other
way (a reduction over the batch axis, REINFORCE's leave-one-out baseline) cannot be split
by rows and is refused with the node's location.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pickle
import re
import signal
import socket
import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import networkx as nx
import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from graphspec.errors import (
    BackendError,
    GraphspecError,
    SpecError,
    TrainingError,
    UsageError,
)
from graphspec.ir.build import build
from graphspec.ir.graph import IR
from graphspec.ops.registry import norm_axis
from graphspec.train import checkpoint
from graphspec.train.driver import RunResult, TrainingInterrupted, train
from graphspec_torch.trainer import TorchTrainer

T = TypeVar("T")
DIST_BACKENDS = ("auto", "gloo", "nccl")
DEFAULT_TIMEOUT_S = 300.0  # a collective (or joining the group) that waits longer fails
SHUTDOWN_S = 60  # the launcher's grace for workers to finish their epoch after a signal
MAX_NPROC = 1024  # beyond any one machine; the machine's own bound is tighter
PAYLOAD, OUTCOME = "payload.pkl", "outcome.pkl"  # the launcher's files for its workers
EXIT_PEER_LOST = 75  # a worker whose group failed (EX_TEMPFAIL: a restart may succeed)
SYNCED_OPS = {"batch_norm"}  # combine examples, but with statistics over every rank's rows


# ---- which specs split by rows ---------------------------------------------------------------


def check_spec(ir: IR) -> None:
    """Refuse (with the node's location) a graph whose result depends on how the batch is
    split: data-parallel training computes each node on a shard of the rows."""
    problems = problems_with_rows(ir)
    if problems:
        node, why = problems[0]
        raise SpecError(
            f"node '{node}' {why}: data-parallel training computes it on each rank's share of "
            "the batch, so the result would depend on the number of processes",
            ir.node(node).src,
            hint="train this spec in one process (leave out --nproc)",
        )


def problems_with_rows(ir: IR) -> list[tuple[str, str]]:
    """(node, why) for each node that combines examples across the batch (besides the loss
    ops' means, the metrics' means and batch norm, which is synchronized)."""
    out: list[tuple[str, str]] = []
    batch_dims: set[Any] = set()
    for name in ir.inputs:
        shape = ir.type(name).shape
        if not shape or not isinstance(shape[0], str):
            out.append((name, f"has no symbolic batch axis first (shape {ir.type(name)})"))
        else:
            batch_dims.add(shape[0])
    per_row: set[str] = set()
    for name in ir.inputs:
        per_row |= nx.descendants(ir.graph, name)
    for n in ir.op_nodes():
        node = ir.op(n)
        if n not in per_row or node.opdef.category != "op" or node.op in SYNCED_OPS:
            continue
        shape = ir.type(n).shape
        if not shape or shape[0] not in batch_dims:
            out.append((n, f"({node.op}) has no batch axis first (shape {ir.type(n)})"))
        elif _touches_axis0(ir, n):
            out.append((n, f"({node.op}) works along the batch axis"))
    return out


def _touches_axis0(ir: IR, n: str) -> bool:
    node = ir.op(n)
    attrs = node.attrs
    rank = ir.type(node.inputs[0]).rank if node.inputs else 0
    if hasattr(attrs, "start_axis") and rank and norm_axis(attrs.start_axis, rank) == 0:
        return True
    if not hasattr(attrs, "axis") or not rank:
        return False
    axis = attrs.axis
    if axis is None:  # a reduction over every axis
        return True
    axes = [axis] if isinstance(axis, int) else list(axis)
    return any(-rank <= a < rank and norm_axis(a, rank) == 0 for a in axes)


def once_terms(ir: IR) -> set[str]:
    """Loss terms that read no input (weight penalties): the same on every rank."""
    fed = set().union(*(nx.descendants(ir.graph, i) for i in ir.inputs)) if ir.inputs else set()
    return {lid for lid, _ in ir.losses if lid not in fed}


def share(n: int, world: int, rank: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of ``n`` that ``rank`` takes: contiguous, as numpy.array_split."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


# ---- the process group ---------------------------------------------------------------------


class PeerLost(TrainingError):
    """A collective failed or timed out: another rank stopped, or the network did."""


@dataclass
class WorkerEnv:
    rank: int
    world_size: int
    local_rank: int
    host: str
    port: int
    restarts: int

    @property
    def master(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def read(cls) -> WorkerEnv:
        def num(key: str, default: str | None = None) -> int:
            raw = os.environ.get(key, default)
            if raw is None or not raw.isdigit() or len(raw) > 9:
                raise UsageError(
                    f"the environment variable {key} must be a non-negative "
                    f"integer (torchrun sets it), got {raw!r:.40}"
                )
            return int(raw)

        rank, world = num("RANK"), num("WORLD_SIZE")
        if world < 1 or rank >= world:
            raise UsageError(f"RANK {rank} does not fit WORLD_SIZE {world}")
        host = os.environ.get("MASTER_ADDR", "")
        if dist.is_initialized():  # the caller made the group: no store to meet in
            return cls(
                rank,
                world,
                num("LOCAL_RANK", "0"),
                host[:255],
                0,
                num("TORCHELASTIC_RESTART_COUNT", "0"),
            )
        if not host or len(host) > 255 or not host.isprintable():
            raise UsageError(
                "the environment variable MASTER_ADDR must name the host of rank "
                "0 (torchrun sets it)"
            )
        port = num("MASTER_PORT")
        if not 0 < port < 65536:
            raise UsageError(f"MASTER_PORT must be a port number, got {port}")
        return cls(
            rank, world, num("LOCAL_RANK", "0"), host, port, num("TORCHELASTIC_RESTART_COUNT", "0")
        )

    def store(self, timeout_s: float) -> Any:
        """The key-value store the group meets in (torchrun's: its agent serves it; else
        rank 0 does).  Keys live under the restart's prefix: a restarted group must not
        read the addresses the previous one left there."""
        agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
        store = dist.TCPStore(
            self.host,
            self.port,
            self.world_size,
            is_master=not agent and self.rank == 0,
            timeout=timedelta(seconds=timeout_s),
            multi_tenant=not agent,
        )
        return dist.PrefixStore(f"graphspec/attempt_{self.restarts}", store)


class WorkerGroup:
    """One rank's view of the run's process group (graphspec.train.parallel's interface).

    ``control`` (gloo, host tensors) carries the driver's small messages: decisions,
    records, evaluation sums, the checkpoint; ``data`` carries gradients and batch-norm
    statistics: the same group under gloo, an NCCL group when every rank has a GPU."""

    def __init__(self, env: WorkerEnv, use_nccl: bool, owns: bool, timeout_s: float) -> None:
        self.env = env
        self.rank, self.world_size = env.rank, env.world_size
        self.is_main = env.rank == 0
        self.restarted = env.restarts > 0
        self.timeout_s = timeout_s
        self.owns = owns  # whether leaving destroys the process group (gs.train made it)
        self.control: Any = None  # the default group
        if use_nccl:
            torch.cuda.set_device(env.local_rank)
        self.data: Any = (
            dist.new_group(backend="nccl", timeout=timedelta(seconds=timeout_s))
            if use_nccl
            else None
        )
        self.backend = "nccl" if use_nccl else "gloo"
        self.device = f"cuda:{env.local_rank}" if use_nccl else "cpu"

    # ---- graphspec.train.parallel's interface ----
    def trainer(self, program: Any, params: Any, train: Any, seed: int) -> DistributedTrainer:
        check_spec(program.ir)
        return DistributedTrainer(program, params, train, seed, self)

    def share(self, fn: Any) -> Any:
        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except GraphspecError as e:
                box[0] = ("error", e.message)
                dist.broadcast_object_list(box, src=0, group=self.control)
                raise
        dist.broadcast_object_list(box, src=0, group=self.control)
        kind, value = box[0]
        if kind == "error":
            raise TrainingError(f"rank 0 stopped: {value}")
        return value

    def decide(self, main: list[bool], any_: list[bool]) -> tuple[list[bool], list[bool]]:
        flags = [bool(f) and self.is_main for f in main] + [bool(f) for f in any_]
        t = torch.tensor(flags, dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)
        got = [bool(v) for v in t.tolist()]
        return got[: len(main)], got[len(main) :]

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of a host tensor (in place, returned)."""
        dist.all_reduce(t, group=self.control)
        return t

    def __enter__(self) -> WorkerGroup:
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if self.owns and dist.is_initialized():
            if exc is None:
                dist.destroy_process_group()
            # After a failure the group may be broken: leaving it to the process's exit
            # avoids a destroy that waits on peers that are gone.
        if exc is not None and _is_collective_failure(exc):
            raise PeerLost(
                f"rank {self.rank} of {self.world_size}: the process group failed "
                f"({_first_line(exc)}); another rank stopped or stalled (collectives wait "
                f"at most {self.timeout_s:g} s)",
                hint="the run directory keeps the last complete checkpoint: continue with --resume",
            ) from None


def _is_collective_failure(exc: BaseException) -> bool:
    if isinstance(exc, dist.DistError):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        return any(w in text for w in ("gloo", "nccl", "connection", "timed out", "c10d"))
    return False


def _first_line(exc: BaseException) -> str:
    """The gist of a torch.distributed error: its first sentence, without the C++ source
    location gloo puts first (``[.../pair.cc:537] Read error ...: Connection reset``)."""
    lines = str(exc).strip().splitlines()
    text = re.sub(r"^\[[^\]]*\.(?:cc|cpp|h):\d+\]\s*", "", lines[0] if lines else "")
    text = text.split(". ", 1)[0]
    return (text or type(exc).__name__)[:300]


def has_gpu(local_rank: int) -> bool:
    return torch.cuda.is_available() and torch.cuda.device_count() > local_rank


def _check_backend(dist_backend: str, gpu: bool, who: str) -> None:
    if dist_backend not in DIST_BACKENDS:
        raise UsageError(
            f"--dist-backend must be one of {', '.join(DIST_BACKENDS)}, not {dist_backend!r:.40}"
        )
    if dist_backend == "nccl" and not gpu:
        raise BackendError(
            f"--dist-backend nccl needs a CUDA GPU for every rank, and {who} has none "
            f"(torch {torch.__version__}, torch.cuda.is_available() is "
            f"{torch.cuda.is_available()})",
            hint="use --dist-backend gloo (or auto) to train on CPUs",
        )


def _loopback_gloo(master: str) -> None:
    """Keep a one-machine group on the loopback interface: gloo would otherwise pick the
    address the host name resolves to, which may be an outside one."""
    host = master.rsplit(":", 1)[0].strip("[]")
    if "GLOO_SOCKET_IFNAME" in os.environ or host not in ("127.0.0.1", "localhost", "::1"):
        return
    names = {name for _, name in socket.if_nameindex()}
    for lo in ("lo", "lo0"):
        if lo in names:
            os.environ["GLOO_SOCKET_IFNAME"] = lo
            return


def join(dist_backend: str = "auto", timeout: float | None = None) -> WorkerGroup:
    """Join the process group torchrun's environment describes (or the one already made)."""
    env = WorkerEnv.read()
    timeout_s = float(timeout or DEFAULT_TIMEOUT_S)
    gpu = has_gpu(env.local_rank)
    _check_backend(dist_backend, gpu, f"rank {env.rank}")
    owns = not dist.is_initialized()
    if owns:
        _loopback_gloo(env.master)
        try:
            dist.init_process_group(
                "gloo",
                store=env.store(timeout_s),
                rank=env.rank,
                world_size=env.world_size,
                timeout=timedelta(seconds=timeout_s),
            )
        except (RuntimeError, ValueError) as e:  # DistStoreError, DistNetworkError, ...
            raise PeerLost(
                f"rank {env.rank} of {env.world_size}: cannot join the process group at "
                f"{env.master} within {timeout_s:g} s ({_first_line(e)})",
                hint="is rank 0 running, and is MASTER_ADDR:MASTER_PORT (torchrun's "
                "--rdzv-endpoint) reachable from here? --dist-timeout sets the wait",
            ) from None
    use_nccl = dist_backend == "nccl"
    if dist_backend == "auto":
        every = torch.tensor([int(gpu)], dtype=torch.int64)
        dist.all_reduce(every, op=dist.ReduceOp.MIN)
        use_nccl = bool(every.item())
    return WorkerGroup(env, use_nccl, owns, timeout_s)


# ---- the trainer ---------------------------------------------------------------------------


class _Objective(torch.nn.Module):
    """DistributedDataParallel wraps a module's ``forward``; training calls ``losses``."""

    def __init__(self, model: torch.nn.Module, losses: Any) -> None:
        super().__init__()
        self.model = model
        self._fn = losses

    def forward(self, batch: Any, noise: Any) -> Any:
        return self._fn(batch, noise)


class DistributedTrainer(TorchTrainer):
    """TorchTrainer for one rank: its share of every batch, gradients averaged by DDP
    (weighted as the module docstring says), records and evaluations summed over ranks."""

    fuses = False  # DDP averages the gradients after they are accumulated
    captures = False  # its step talks to the other processes

    def __init__(
        self, program: Any, params: Any, train: Any, seed: int, group: WorkerGroup
    ) -> None:
        super().__init__(program, params, train, seed)
        self.group = group
        self.stream_keys = (group.rank,) if group.rank else ()
        self.model.sync_group = group.data if group.data is not None else dist.group.WORLD
        self._once = once_terms(self.ir)
        self._weights = [w for _, w in self.ir.losses]
        wrapper = _Objective(self.model, self._losses)
        # Parameters that never reach the loss get zero gradients on every rank already.
        attrs = program.module.SPEC_NAMES
        unreached = {id(p) for p, _ in self._unreached}
        ignore = [f"model.{attrs[n]}" for n, p in self.named.items() if id(p) in unreached]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(wrapper, ignore)
        on_gpu = self.device.type == "cuda"
        self.ddp = DistributedDataParallel(
            wrapper,
            process_group=group.data,
            device_ids=[self.device.index or 0] if on_gpu else None,
            forward_sync_buffers=False,  # synchronized batch norm keeps the buffers equal
        )
        # FGSM's second pass keeps TorchTrainer's _again (the bare module): DDP's hooks
        # expect one forward per backward.
        self._losses = self.ddp
        self._rows = (0, 1)  # this step's (rows here, rows in the global batch)
        self._global: list[int] = []

    def train_epoch(self, batches: list[np.ndarray], epoch: int) -> dict[str, float]:
        g = self.group
        self._global = [len(b) for b in batches]
        mine = [b[slice(*share(len(b), g.world_size, g.rank))] for b in batches]
        self._step_sizes = iter(self._global)
        return super().train_epoch(mine, epoch)

    def _step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        self._rows = (len(next(iter(batch.values()))), next(self._step_sizes))
        return super()._step(batch)

    def _objective(
        self, loss: torch.Tensor, terms: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        here, total = self._rows
        parts = []
        for lid, t in terms.items():
            if lid in self._once:
                parts.append(t * float(self.group.is_main))
            elif here == 0:  # no rows: the term is a mean of nothing (NaN); it weighs 0
                parts.append(torch.nan_to_num(t) * 0.0)
            else:
                parts.append(t * (here / total))
        mine = sum((w * p for w, p in zip(self._weights, parts)), torch.zeros_like(loss))
        record = torch.stack([mine.detach(), *(p.detach() for p in parts)])
        return mine * self.group.world_size, record

    def _epoch_summary(
        self, record: torch.Tensor, sizes: list[int], epoch: int
    ) -> dict[str, float]:
        total = self.group.all_reduce_sum(record.to(torch.float64).contiguous())
        return super()._epoch_summary(total.to(record.dtype), self._global, epoch)

    def evaluate(self, split: str) -> dict[str, float]:
        n = self.rows(split)
        if n == 0:
            return {}
        lo, hi = share(n, self.group.world_size, self.group.rank)
        total = self.group.all_reduce_sum(self._eval_sums(split, lo, hi))
        return dict(zip(self.eval_names, (total / n).tolist()))


# ---- the launcher --------------------------------------------------------------------------


def max_local_nproc(dist_backend: str) -> tuple[int, str]:
    """The most workers worth starting on this machine, and what bounds it."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if dist_backend == "nccl" or (dist_backend == "auto" and gpus):
        return gpus, f"{gpus} GPU{'s' * (gpus != 1)} (one rank per GPU)"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = max(1, cores or 1)
    return cores, f"{cores} CPU core{'s' * (cores != 1)} (one rank per core)"


def check_launch(nproc: Any, dist_backend: str, max_restarts: Any) -> None:
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise UsageError(f"--nproc must be a positive number of processes, not {nproc!r:.40}")
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
        raise UsageError(f"--max-restarts must be 0 or more, not {max_restarts!r:.40}")
    _check_backend(dist_backend, has_gpu(0), "this machine")
    bound, what = max_local_nproc(dist_backend)
    if nproc > min(bound, MAX_NPROC):
        raise UsageError(
            f"--nproc {nproc} is more processes than this machine has room for: {what}",
            hint=f"use --nproc {bound} or fewer; for more, run torchrun on several machines "
            "(docs/distributed.md)",
        )


def launch(
    spec: Any,
    train_kwargs: dict[str, Any],
    nproc: int,
    dist_backend: str = "auto",
    max_restarts: int = 0,
    timeout: float | None = None,
) -> Any:
    """Train ``spec`` with ``nproc`` workers on this machine; rank 0's RunResult."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    check_launch(nproc, dist_backend, max_restarts)
    check_spec(build(spec))  # before any process starts: one message, not N
    run_dir = Path(train_kwargs["out"])
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"graphspec-{uuid.uuid4().hex}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        local_addr="127.0.0.1",
        rdzv_configs={"timeout": int(timeout or DEFAULT_TIMEOUT_S)},
        max_restarts=max_restarts,
        monitor_interval=0.1,
        start_method="spawn",
        shutdown_timeout=SHUTDOWN_S,
    )
    payload = {
        "spec": spec,
        "kwargs": train_kwargs,
        "dist_backend": dist_backend,
        "timeout": timeout,
    }
    # Workers are fresh interpreters (python -m graphspec_torch._worker DIR), not spawned
    # functions: spawning would re-run the caller's __main__.  The payload goes in, and
    # rank 0's outcome comes back, as pickles in a directory only this user can read.
    with tempfile.TemporaryDirectory(prefix="graphspec-ddp-") as tmp, _launch_env(nproc):
        with open(Path(tmp) / PAYLOAD, "wb") as f:
            pickle.dump(payload, f)
        try:
            elastic_launch(config, sys.executable)("-m", "graphspec_torch._worker", tmp)
        except ChildFailedError as e:
            raise _failure(e, run_dir, max_restarts) from None
        except SignalException as e:
            raise _interrupted(int(e.sigval), run_dir) from None
        try:
            with open(Path(tmp) / OUTCOME, "rb") as f:
                outcome = pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError):
            raise TrainingError("the workers ended without rank 0's result") from None
    kind, *rest = outcome
    if kind == "ok":
        return rest[0]
    if kind == "interrupted":
        signum, message, result = rest
        raise TrainingInterrupted(
            message, result, signum, hint="continue with --resume (resume=True)"
        )
    if kind == "internal":
        raise RuntimeError(f"in worker rank 0: {rest[0]}")
    rendered, usage = rest
    raise (WorkerUsageError if usage else WorkerError)(rendered)


class WorkerError(TrainingError):
    """Rank 0's error, as it rendered it in its own process."""

    def __init__(self, rendered: str) -> None:
        super().__init__(rendered.splitlines()[0] if rendered else "rank 0 failed")
        self.rendered = rendered

    def render(self, source: str | None = None) -> str:
        return self.rendered


class WorkerUsageError(WorkerError, UsageError):
    """Rank 0's usage error (exit status 2)."""


class _launch_env:
    """The workers' environment: one thread each unless told otherwise (they share the
    cores), the group on the loopback interface, torch's agent quiet (graphspec reports)."""

    def __init__(self, nproc: int) -> None:
        self.nproc = nproc
        self.saved: set[str] = set()  # variables this context set, removed on exit
        self.levels: dict[str, int] = {}

    def __enter__(self) -> None:
        want = {"OMP_NUM_THREADS": "1"} if self.nproc > 1 else {}
        for key, value in want.items():
            if key not in os.environ:
                self.saved.add(key)
                os.environ[key] = value
        before = os.environ.get("GLOO_SOCKET_IFNAME")
        _loopback_gloo("127.0.0.1:0")
        if before is None and "GLOO_SOCKET_IFNAME" in os.environ:
            self.saved.add("GLOO_SOCKET_IFNAME")
        # Each of the agent's modules sets its own logger's level: quiet them one by one.
        for name in [*logging.root.manager.loggerDict, "torch.distributed.elastic"]:
            if name.startswith("torch.distributed.elastic"):
                log = logging.getLogger(name)
                self.levels[name] = log.level
                log.setLevel(logging.CRITICAL)

    def __exit__(self, *exc: Any) -> None:
        for key in self.saved:
            os.environ.pop(key, None)
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)


def _checkpoint_note(run_dir: Path) -> str:

    path = run_dir / checkpoint.FILENAME
    try:
        meta = checkpoint.load(path).meta
    except GraphspecError:
        return f"no complete checkpoint is in {run_dir}"
    return (
        f"{path} holds the last complete checkpoint (epoch {meta.get('epoch')} of "
        f"{meta.get('epochs')})"
    )


def _failure(e: Any, run_dir: Path, max_restarts: int) -> TrainingError:
    failures = sorted(e.failures.items())
    # Survivors of a failure lose their peers or are stopped by the agent (SIGTERM): name
    # the cause, not them.
    stopped = (-signal.SIGTERM, -signal.SIGINT, EXIT_PEER_LOST)
    causes = [(r, f) for r, f in failures if f.exitcode not in stopped] or failures
    parts = []
    for rank, f in causes:
        if f.exitcode == EXIT_PEER_LOST:
            how = "lost the process group (its message is above)"
        elif f.exitcode < 0:
            how = f"was killed by {f.signal_name()}"
        else:
            text = f.message.strip() if isinstance(f.message, str) else ""
            how = f"exited with status {f.exitcode}" + (
                f" ({text.splitlines()[-1][:300]})" if text and "traceback" not in text else ""
            )
        parts.append(f"worker rank {rank} (pid {f.pid}) {how}")
    tried = f" after {max_restarts} restart{'s' * (max_restarts != 1)}" if max_restarts else ""
    return TrainingError(
        f"{'; '.join(parts)}{tried}; the other workers were stopped. {_checkpoint_note(run_dir)}",
        hint="continue with the same command and --resume; --max-restarts N restarts the "
        "workers from the last checkpoint by itself",
    )


def _interrupted(signum: int, run_dir: Path) -> Exception:
    """The launcher got SIGINT/SIGTERM: torch's agent passed it on to the workers, which
    finished their epoch and saved (within SHUTDOWN_S); say so from the checkpoint."""

    path = run_dir / checkpoint.FILENAME
    try:
        ck = checkpoint.load(path)
    except GraphspecError:
        return TrainingError(
            f"training stopped by {signal.Signals(signum).name} before a "
            f"checkpoint was saved in {run_dir}"
        )
    meta = ck.meta
    history = list(meta.get("history", []))
    result = RunResult(run_dir, "interrupted", len(history), history, {}, None, dict(ck.param))
    return TrainingInterrupted(
        f"training interrupted by {signal.Signals(signum).name} after epoch "
        f"{meta.get('epoch')} of {meta.get('epochs')}; checkpoint saved to {path}",
        result,
        signum,
        hint="continue with --resume (resume=True)",
    )


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when the launcher dies (it then saves at the epoch end),
    so no orphan trains on; elsewhere a no-op."""
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def worker_main(tmp: str) -> int:
    """One worker of :func:`launch`, in its own session (torch's agent starts it so:
    Ctrl-C in the terminal reaches the launcher, which passes it on once; a second SIGINT
    would abort the epoch instead of finishing it).  Rank 0 writes the outcome."""
    _die_with_parent()
    with open(Path(tmp) / PAYLOAD, "rb") as f:
        payload = pickle.load(f)
    outcome = _work(payload)
    if outcome[0] == "lost":  # the agent must stop the others (and may restart the group)
        return EXIT_PEER_LOST
    if int(os.environ.get("RANK", "0")) == 0:
        write = Path(tmp) / f".{OUTCOME}.tmp"
        with open(write, "wb") as f:
            pickle.dump(outcome, f)
        os.replace(write, Path(tmp) / OUTCOME)
    return 0  # input errors too: the outcome carries them, and a restart would not help


def _work(payload: dict[str, Any]) -> tuple[Any, ...]:

    rank = int(os.environ.get("RANK", "0"))
    try:
        result = train(
            payload["spec"],
            dist_backend=payload["dist_backend"],
            dist_timeout=payload["timeout"],
            **payload["kwargs"],
        )
        return ("ok", result if rank == 0 else None)
    except TrainingInterrupted as e:
        return ("interrupted", int(e.signal), e.message, e.result if rank == 0 else None)
    except PeerLost as e:  # each rank says what it saw; the launcher names who failed
        print(f"graphspec: {e.render()}", file=sys.stderr, flush=True)
        return ("lost", e.render())
    except GraphspecError as e:  # the same on every rank: rank 0 speaks for them
        return ("error", e.render(), isinstance(e, UsageError))
    except Exception as e:  # noqa: BLE001 - a bug: reported as one, by the launcher
        text = f"{type(e).__name__}: {e}"
        if rank != 0:
            print(f"graphspec: rank {rank}: internal error: {text}", file=sys.stderr, flush=True)
        return ("internal", text)
