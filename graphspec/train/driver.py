"""The training driver shared by every backend.

The driver owns everything but the arithmetic of a step: data, seeded shuffling and
mini-batches, per-epoch metrics, early stopping with restore-best, the run directory,
checkpoints, resume, signals and failures.  A backend's ``Trainer`` (graphspec.backend) runs
the steps.

Reproducibility: each epoch's shuffle comes from a generator keyed by (seed, epoch) and the
numpy trainer's noise likewise, so a run resumed from a checkpoint (always taken at an epoch
boundary) repeats the uninterrupted run exactly on numpy.

Interruption: the first SIGINT or SIGTERM lets the current epoch finish, saves a checkpoint
and raises :class:`TrainingInterrupted` (a ``TrainingError`` whose ``result`` holds the
:class:`RunResult` so far); a second SIGINT aborts at once, leaving the previous checkpoint.
A NaN or Inf loss raises ``NonFiniteLoss`` naming the epoch, the step and the first node
with a non-finite value, and leaves the last good checkpoint untouched.
"""

from __future__ import annotations

import functools
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphspec import analysis
from graphspec import threads as threads_  # the parameter's name is threads
from graphspec.backend import (
    CompileOptions,
    Program,
    capabilities,
    get_backend,
    reference_backend,
)
from graphspec.errors import (
    BackendError,
    CheckpointError,
    Location,
    NonFiniteLoss,
    TrainingError,
    UsageError,
)
from graphspec.ir.build import build
from graphspec.ir.graph import IR
from graphspec.ir.initializers import init_params
from graphspec.ir.memory import check_memory
from graphspec.spec.load import load
from graphspec.spec.models import Spec, TrainSpec
from graphspec.spec.requirements import require_training
from graphspec.train import checkpoint, parallel, rundir, runspec, seeds
from graphspec.train.atomic import WriteError
from graphspec.train.data import Dataset
from graphspec.train.lock import RunLock
from graphspec.train.logsinks import Sinks
from graphspec.train.prepare import prepare
from graphspec.train.runlog import SUMMARY, MetricsLog, Progress, write_json_atomic
from graphspec.train.schedules import lr_factor

CHECKPOINT_EVERY_S = 1.0  # at most this much work is lost to a kill; every epoch costs I/O
Arrays = dict[str, np.ndarray]


@dataclass
class RunResult:
    run_dir: Path
    status: str  # "completed" | "early_stopped" | "interrupted"
    epochs: int  # epochs completed
    history: list[dict[str, Any]]
    final: dict[str, float]  # train_/val_ loss, terms and metrics of the final parameters
    best: dict[str, Any] | None  # {"monitor", "value", "epoch"}
    params: Arrays
    info: dict[str, Any] = field(default_factory=dict)  # what summary.json holds
    resumed_from: int | None = None  # when resumed: the checkpoint's epoch
    resumed_status: str | None = None  # and the status it had been saved with

    def summary(self) -> str:
        """A few lines for people: how the run ended and its final metrics."""
        lines = [f"{self.status.replace('_', ' ')} after {self.epochs} epochs "
                 f"({self.info.get('wall_time_s', 0.0):.1f} s)"]
        if self.best:
            lines.append(f"best {self.best['monitor']} {self.best['value']:.6g} at epoch "
                         f"{self.best['epoch']}" + (" (restored)" if self.info.get(
                             "restored_best") else ""))
        if self.final:
            lines.append("final: " + "  ".join(f"{k} {v:.6g}" for k, v in self.final.items()))
        return "\n".join(lines)


class TrainingInterrupted(TrainingError):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint; ``result`` has the run
    so far and ``signal`` the signal number.  Continue with ``resume=True``."""

    def __init__(self, message: str, result: RunResult, signum: int, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.result = result
        self.signal = signum


def train(
    spec: Spec | str | os.PathLike[str], *, backend: str = "numpy",
    out: str | os.PathLike[str] | None = None, epochs: int | None = None,
    seed: int | None = None, resume: bool = False, overwrite: bool = False,
    init_from: str | os.PathLike[str] | None = None, dtype: str = "float64",
    device: str = "auto", progress: bool = True, log_every: int | None = None,
    tensorboard: bool = False, nproc: int | None = None, dist_backend: str = "auto",
    max_restarts: int = 0, dist_timeout: float | None = None,
    threads: int | str | None = None, **backend_options: Any,
) -> RunResult:
    """Train ``spec`` (a Spec or a path) with ``backend``; write the run to ``out``
    (default ``runs/<spec name>/<n>``, the next free ``n``).  ``epochs`` and ``seed``
    override the spec's.  ``resume`` continues the run in ``out`` (default: the latest run
    of the spec) from its checkpoint, also past its end with more ``epochs``; a directory
    that holds a run is otherwise refused unless ``overwrite``.  ``init_from`` (a run
    directory or a checkpoint) starts from trained parameters.  Without a terminal,
    ``progress`` prints a line every ``log_every`` epochs (default 1); ``tensorboard`` also
    writes event files (graphspec.train.logsinks).  Other keyword arguments are backend
    compile options (``amp``, ``compile``, ...).

    ``nproc`` trains data-parallel with that many worker processes on this machine
    (docs/distributed.md; ``dist_backend`` gloo, nccl or auto, ``max_restarts`` for
    torchrun's elastic restarts, ``dist_timeout`` seconds for a collective); a process
    that torchrun started joins its group by itself.

    ``threads`` (a count; None: by the size of a step, graphspec.threads, ``"auto"``: the
    same, said on stderr) sets the CPU threads of numpy's BLAS and of torch for the run
    (each worker's, with ``nproc``); the previous settings come back afterwards."""
    threads_.check(threads)
    if not isinstance(spec, Spec):
        spec = load(os.fspath(spec))
    if resume and (overwrite or init_from is not None):
        raise TrainingError("resume continues a run; it cannot be combined with "
                            + ("overwrite" if overwrite else "init_from"))
    if nproc is not None:
        # The launcher picks the run directory once (a new number, or the latest to resume);
        # its rank 0 worker then locks and prepares it as a single process would.
        run_dir, created = _run_dir(spec, out, resume)
        threads_.warn_oversubscribed(threads, nproc)
        kwargs = dict(backend=backend, out=run_dir, epochs=epochs, seed=seed, resume=resume,
                      overwrite=overwrite, init_from=init_from, dtype=dtype, device=device,
                      progress=progress, log_every=log_every, tensorboard=tensorboard,
                      threads=threads, **backend_options)
        try:
            return parallel.launch(backend, spec, kwargs, nproc, dist_backend, max_restarts,
                                   dist_timeout)
        except BaseException:
            for path in created:
                rundir.discard_if_empty(path)
            raise
    with parallel.join(backend, dist_backend, dist_timeout) as group:
        claim = _Claim(spec, out, resume or group.restarted, overwrite)
        # Rank 0 (a single process: itself) creates, locks and checks the run directory;
        # every rank learns where it is, or the error that refused it.
        run_dir = group.share(claim.acquire)
        try:
            run = _Run(spec, backend, run_dir, epochs, seed, resume, dtype, device, progress,
                       backend_options, init_from, group)
            run.log_every, run.tensorboard = log_every, tensorboard
            run.threads = threads_.resolve(threads, run.ir)
            run.says_threads = threads == threads_.AUTO
            with threads_.limited(run.threads.threads, torch_too=backend == "torch"):
                return run.execute()
        except BaseException:
            claim.discard()
            raise
        finally:
            claim.release()


class _Claim:
    """A run directory held for one training: created if needed, locked, checked (refused
    when it holds a run, unless resuming or overwriting)."""

    def __init__(self, spec: Spec, out: Any, resume: bool, overwrite: bool) -> None:
        self.spec, self.out, self.resume, self.overwrite = spec, out, resume, overwrite
        self.lock: RunLock | None = None
        self.created: list[Path] = []

    def acquire(self) -> Path:
        run_dir, self.created = _run_dir(self.spec, self.out, self.resume)
        lock = RunLock(run_dir)
        lock.acquire()  # refused: the directory is another training's; leave it alone
        self.lock = lock
        try:
            rundir.prepare(run_dir, resume=self.resume, overwrite=self.overwrite)
        except BaseException:
            self.discard()
            self.release()
            raise
        return run_dir

    def discard(self) -> None:
        """Remove the directories this claim created, if the run wrote nothing into them
        (still under the lock: no other training is using them)."""
        if self.lock is not None:
            for path in self.created:
                rundir.discard_if_empty(path)

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def _run_dir(spec: Spec, out: Any, resume: bool) -> tuple[Path, list[Path]]:
    """The run directory, created; and the directories this call created (deepest first)."""
    created: list[Path] = []
    if out is None:
        root = rundir.spec_root(spec.name)
        if resume:
            path = rundir.latest_version(root)
            return (rundir.run_dir_for(spec.variant, path) if spec.variant else path), created
        path = rundir.next_version(root)
        created.append(path)
        if not spec.variant:
            return path, created
        path = rundir.run_dir_for(spec.variant, path)
    else:
        path = Path(out)
    if not path.exists():
        created.insert(0, path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise rundir.cannot_create(path, e) from None
    return path, created


class _Run:
    def __init__(
        self, spec: Spec, backend: str, run_dir: Path, epochs: int | None, seed: int | None,
        resume: bool, dtype: str, device: str, progress: bool, options: dict[str, Any],
        init_from: str | os.PathLike[str] | None = None, group: Any = None,
    ) -> None:
        self.spec = spec
        # The data-parallel group this process is a rank of (parallel.Solo when alone):
        # rank 0 writes the run directory, the ranks decide together.
        self.group = group if group is not None else parallel.Solo()
        self.main = bool(self.group.is_main)
        if self.group.device and device != "auto" and (
                device.split(":")[0] != self.group.device.split(":")[0]):
            raise UsageError(f"--device {device} does not fit the process group: its ranks "
                             f"train on {self.group.device.split(':')[0]}",
                             hint="leave --device out (auto), or choose --dist-backend")
        device = self.group.device or device
        require_training(spec)
        assert spec.train is not None
        self.tspec: TrainSpec = spec.train
        self.backend, self.dtype, self.device = backend, dtype, device
        self.run_dir = run_dir
        self.ckpt_path = self.run_dir / checkpoint.FILENAME
        self.ckpt: checkpoint.Checkpoint | None = None
        self.init_from = checkpoint.resolve(os.fspath(init_from)) if init_from is not None else None
        if self.group.restarted:  # torchrun restarted the workers: go on from the checkpoint
            resume = self.group.share(self.ckpt_path.exists)
        if resume:
            # Rank 0 reads the checkpoint for every rank (the others need no shared disk).
            self.ckpt = self.group.share(lambda: checkpoint.load(self.ckpt_path))
            seed = self._check_resume(seed)
        self.seed = spec.seed if seed is None else int(seed)
        self.n_epochs = int(epochs) if epochs is not None else self.tspec.epochs
        if self.n_epochs < 1:
            raise TrainingError(f"epochs must be at least 1, got {self.n_epochs}")
        done = int(self.ckpt.meta.get("epoch", 0)) if self.ckpt is not None else 0
        if self.n_epochs < done:
            raise TrainingError(
                f"the run in {self.run_dir} has trained {done} epochs already; it cannot "
                f"resume to {self.n_epochs}", Location(str(self.ckpt_path)),
                hint=f"resume with --epochs {done} or more")
        self.ir: IR = build(spec)
        check_memory(self.ir, "train", dtype)  # before parameters and data are allocated
        # The spec's analysis entries, checked before any training (graphspec.analysis).
        self.analysis = analysis.plan(spec, self.ir)
        # Data, batch size, schedule, parameter groups, monitor: what validate --train checks.
        ready = prepare(spec, self.ir, self.seed, self.n_epochs)
        self.data: Dataset = ready.data
        self.has_val, self.n_train = ready.has_val, ready.n_train
        self.batch_size, self.steps = ready.batch_size, ready.steps
        self.train_spec, self.tracker = ready.train_spec, ready.tracker
        es = self.tspec.early_stopping
        self.es = es
        self.keep_best = bool(es and es.restore_best)
        self.progress = Progress(self.n_epochs, progress and self.main, metrics=self.ir.metrics)
        if self.group.restarted and self.ckpt is not None and self.main:
            self.progress.message("the workers were restarted after a failure: resuming from "
                                  f"epoch {self.ckpt.meta.get('epoch')} of the checkpoint")
        # No terminal: epoch lines (rank 0's alone)
        self.lines = progress and self.main and not self.progress.enabled
        self.log_every: int | None = None
        self.tensorboard = False
        # CPU threads of the run's kernels (train's threads=, resolved by train())
        self.threads = threads_.Choice(1, "given", auto=False)
        self.says_threads = False  # threads="auto" asked for: its choice said on stderr
        self.speaks = progress and self.main  # notes on stderr (rank 0 of a group)
        self.options = options
        self.history: list[dict[str, Any]] = []
        self.best_params: Arrays = {}
        self.elapsed = 0.0
        self.start_epoch = 0

    # ---- setup ---------------------------------------------------------------------------
    def _check_resume(self, seed: int | None) -> int | None:
        assert self.ckpt is not None
        meta = self.ckpt.meta
        for key, value in (("backend", self.backend), ("dtype", self.dtype)):
            if meta.get(key) != value:
                raise CheckpointError(
                    f"the checkpoint was written with {key} {meta.get(key)!r}, not {value!r}",
                    Location(str(self.ckpt_path)),
                    hint=f"resume with the same {key}, or start a new run without --resume")
        if seed is not None and meta.get("seed") != seed:
            raise CheckpointError(f"the checkpoint's run used seed {meta.get('seed')}, not {seed}",
                                  Location(str(self.ckpt_path)))
        return int(meta["seed"]) if "seed" in meta else seed

    def _compile(self) -> Any:
        known = {k: self.options[k] for k in ("amp", "compile", "capture")
                 if k in self.options}
        extra = {k: v for k, v in self.options.items() if k not in known}
        try:
            opts = CompileOptions(dtype=self.dtype, device=self.device,  # type: ignore[arg-type]
                                  extra=extra, **known)
        except TypeError as e:
            raise BackendError(f"bad backend options: {e}") from None
        return get_backend(self.backend).compile(self.ir, opts)

    def _restore(self, trainer: Any) -> None:
        assert self.ckpt is not None
        ck, where = self.ckpt, Location(str(self.ckpt_path))
        for section in (ck.train_params, ck.param, ck.best):
            if section:
                checkpoint.check_fits(section, self.ir, self.ckpt_path)
        try:
            trainer.load_params(ck.train_params)
            trainer.load_state_dict(ck.opt)
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"the checkpoint's state does not fit: {e}", where) from None
        meta = ck.meta
        self.history = list(meta.get("history", []))
        self.start_epoch = int(meta.get("epoch", len(self.history)))
        self.elapsed = float(meta.get("wall_time_s", 0.0))
        self.tracker.load(meta.get("tracker", {}))
        self.best_params = dict(ck.best)

    # ---- the run -------------------------------------------------------------------------
    def execute(self) -> RunResult:
        # Temporary files of writers killed mid-write (the lock says none of them is alive).
        for stale in self.run_dir.glob(".*.*.tmp") if self.main else ():
            stale.unlink(missing_ok=True)
        try:
            return self._execute()
        except WriteError as e:
            raise self._write_failed(e) from None

    def _execute(self) -> RunResult:
        program = self._compile()
        self.program = program
        params0 = init_params(self.ir, self.seed)
        if self.init_from is not None:
            params0 = self._initial_from(self.init_from, params0)
        if self.ckpt is None:  # a resumed run has done its ``at: init`` analysis already
            self._analyse("init", params0)
        trainer = self.group.trainer(program, params0, self.train_spec, self.seed)
        for split, arrays in self.data.splits.items():
            trainer.set_data(split, arrays)
        if self.ckpt is not None:
            self._restore(trainer)
        self.trainer = trainer
        # A resumed run continues from its last epoch's parameters and early-stopping state
        # up to ``n_epochs``; one with nothing left to train (it finished, or a signal came
        # in its last epoch) goes straight to the ending, which is a function of that state:
        # the result equals the uninterrupted run's either way.
        if self.speaks and self.says_threads:  # once the run is set up and about to train
            self.progress.message(self.threads.note())
        if self.main:
            runspec.write(self.run_dir, self.spec)
            self.sinks: Sinks | _NoLog = Sinks.open(
                self.run_dir, self.history, self.n_epochs, lines=self.lines,
                log_every=self.log_every, tensorboard=self.tensorboard,
                shown=self.progress.shown)
            log: MetricsLog | _NoLog = MetricsLog(self.run_dir, self.history)
        else:  # rank 0 writes the run's logs
            self.sinks = log = _NoLog()
        try:
            with _Signals(self.progress, announce=self.main) as signals:
                status = self._loop(log, signals)
        finally:
            log.close()
            self.sinks.close()
            self.progress.close()
        if status == "interrupted":
            result = self._result("interrupted", final={})
            result.info = self._write_summary(result)
            name = signal.Signals(signals.received or signal.SIGINT).name
            raise TrainingInterrupted(
                f"training interrupted by {name} after epoch {result.epochs} of "
                f"{self.n_epochs}; checkpoint saved to {self.ckpt_path}", result,
                signals.received or signal.SIGINT,
                hint="continue with --resume (resume=True)")
        if self.keep_best and self.best_params and self.tracker.best_epoch != len(self.history):
            last = self.trainer.params()
            self.trainer.load_params(self.best_params)
            return self._finish(status, restored=True, last=last)
        return self._finish(status, restored=False)

    def _initial_from(self, path: Path, params0: Arrays) -> Arrays:
        """The parameters of a trained run (``param/``: its best after restore-best), which
        must match this spec's by name and shape."""
        # Rank 0 reads the file for every rank, as it reads a checkpoint to resume.
        params = self.group.share(lambda: checkpoint.load_params_for(self.ir, path))
        return {k: np.array(params[k], dtype=np.float64) for k in params0}

    def _loop(self, log: MetricsLog | _NoLog, signals: _Signals) -> str:
        if self.tracker.should_stop:  # resumed after early stopping: more epochs change nothing
            return "early_stopped"
        last_save = -math.inf  # the first epoch is always saved: a failure has a fallback
        # A trainer that cannot say where a non-finite value arose (it checks once per epoch,
        # after the later steps ran) gets its diagnosis from the reference backend replaying
        # the epoch: keep where the epoch started (one copy of the parameters per epoch).
        opaque = not self._locates
        for epoch in range(self.start_epoch, self.n_epochs):
            t0 = time.perf_counter()
            batches = self._batches(epoch)
            start = (self.trainer.params(), self.trainer.state_dict()) if opaque else None
            try:
                stats = self.trainer.train_epoch(batches, epoch)
            except NonFiniteLoss as e:
                raise self._nonfinite(e, batches, start) from None
            record = self._record(epoch, stats)
            self._check_validation(record, epoch)
            record["time"] = round(time.perf_counter() - t0, 6)
            self.elapsed += record["time"]
            improved = self.tracker.update(record[self.tracker.monitor], epoch + 1)
            # Decided once for all ranks: rank 0's tracker, a signal that any rank received.
            (improved, stop), (interrupted,) = self.group.decide(
                [improved, self.tracker.should_stop], [signals.received is not None])
            if improved and self.keep_best:
                self.best_params = self.trainer.params()
            self.history.append(record)
            log.append(record)
            self.sinks.append(record)
            self.progress.update(epoch + 1, record)
            if stop:
                return "early_stopped"
            if interrupted:
                signals.received = signals.received or signal.SIGTERM
                self._save("interrupted")
                return "interrupted"
            if epoch + 1 < self.n_epochs and time.perf_counter() - last_save >= CHECKPOINT_EVERY_S:
                self._save("running")
                last_save = time.perf_counter()
        return "completed"

    def _batches(self, epoch: int) -> list[np.ndarray]:
        n, bs = self.n_train, self.batch_size
        order = (seeds.stream(self.seed, seeds.SHUFFLE, epoch).permutation(n)
                 if self.tspec.data.shuffle else np.arange(n))
        return [order[i:i + bs].astype(np.int64) for i in range(0, n, bs)]

    def _record(self, epoch: int, stats: dict[str, float]) -> dict[str, Any]:
        rec: dict[str, Any] = {"epoch": epoch + 1}
        rec.update({f"train_{k}": float(v) for k, v in stats.items()})
        if self.ir.metrics:
            ev = self.trainer.evaluate("train")
            rec.update({f"train_{m}": float(ev[m]) for m in self.ir.metrics})
        if self.has_val:
            rec.update({f"val_{k}": float(v) for k, v in self.trainer.evaluate("val").items()})
        factor = lr_factor(self.train_spec.schedule, epoch, self.steps - 1, self.steps)
        rec["lr"] = self.train_spec.optimizer.lr * factor
        if self.tspec.log_grad_norms:
            rec.update({f"grad_norm/{k}": v for k, v in self.trainer.grad_norms().items()})
        return rec

    # ---- failures ------------------------------------------------------------------------
    def _nonfinite(
        self, e: NonFiniteLoss, batches: list[np.ndarray], start: tuple[Arrays, Arrays] | None
    ) -> NonFiniteLoss:
        message, node = e.message, e.node
        if node is None and self.main and not self._locates:
            found = self._reference_diagnosis(batches, e, start)
            if found:
                reference, node, where = found
                message += f"; on the {reference} reference the first non-finite value is {where}"
        return self._failed(NonFiniteLoss(message, e.epoch, e.step, node))

    def _check_validation(self, record: dict[str, Any], epoch: int) -> None:
        """A non-finite validation loss (or loss term) fails the run as a training loss
        does: early stopping would otherwise treat NaN as 'no improvement' and end the run
        as if it had converged."""
        keys = ["val_loss", *(f"val_{lid}" for lid, _ in self.ir.losses)]
        bad = [k for k in keys if k in record and not math.isfinite(record[k])]
        if not bad:
            return
        message = f"{bad[0].replace('_', ' ', 1)} is {record[bad[0]]} after epoch {epoch + 1}"
        found = self._locate("val")
        message += (f": first non-finite value on the validation data: {found[1]}" if found
                    else " (could not localize)")
        raise self._failed(NonFiniteLoss(message, epoch, 0, found[0] if found else None))

    @property
    def _locates(self) -> bool:
        """Whether this run's trainers say where a non-finite value arose (declared by the
        backend); the reference backend answers for those that cannot."""
        return capabilities(get_backend(self.backend)).locate_nonfinite

    @functools.cached_property
    def _reference(self) -> tuple[str, Program]:
        """(name, this IR compiled) of the reference backend (see
        graphspec.backend.reference_backend), compiled once on first need."""
        ref = reference_backend()
        return ref.name, ref.compile(self.ir, CompileOptions(dtype=self.dtype))  # type: ignore[arg-type]

    def _reference_trainer(self, params: Arrays, split: str) -> tuple[str, Any]:
        """(name, a trainer) of the reference backend from ``params``, holding ``split``: it
        locates non-finite values for backends that cannot."""
        name, program = self._reference
        trainer = program.trainer(params, self.train_spec, self.seed)
        trainer.set_data(split, self.data.splits[split])
        return name, trainer

    def _locate(self, split: str) -> tuple[str, str] | None:
        """(node, description) of the first non-finite value on ``split`` in evaluation
        mode, with the current parameters; the reference backend answers for backends that
        cannot.  Best effort: a diagnosis never masks the error it explains."""
        index = np.arange(self.data.rows(split))
        try:
            trainer = self.trainer
            if not self._locates:
                _, trainer = self._reference_trainer(self.trainer.params(), split)
            found: tuple[str, str] | None = trainer.locate_nonfinite(split, index, training=False)
            return found
        except Exception:  # noqa: BLE001 - diagnosis is a courtesy on an error path
            return None

    def _failed(self, err: NonFiniteLoss) -> NonFiniteLoss:
        """The user-facing error for a non-finite loss: located at its node, saying which
        checkpoint is kept; ``summary.json`` records the failure."""
        kept = (f"the last good checkpoint is kept: {self.ckpt_path}" if self.ckpt_path.exists()
                else "no checkpoint had been written yet")
        err.message = f"{err.message}; {kept}"
        err.args = (err.message,)
        if err.node is not None and err.node in self.ir.graph:
            err.location = self.ir.node(err.node).src
        err.hint = ("lower the learning rate, clip gradients (train.clip_grad_norm) or check "
                    "the data; metrics.jsonl has the epochs before the failure")
        result = self._result("failed", final={})
        self._write_summary(result, error=err.message)
        return err

    def _write_failed(self, e: WriteError) -> WriteError:
        """A run file could not be written: say which, and from where the run can go on
        (``e.checkpoint``: the intact checkpoint, or None).  The summary says 'failed' if it
        can still be written."""
        e.checkpoint = self.ckpt_path if self.ckpt_path.is_file() else None
        if e.checkpoint is not None:
            e.message += f"; the last checkpoint is intact: {self.ckpt_path}"
            e.args = (e.message,)
            e.hint = "free some space or make the directory writable, then continue with " \
                     "--resume (resume=True)"
        if hasattr(self, "trainer"):
            try:
                self._write_summary(self._result("failed", final={}), error=e.message)
            except WriteError:
                pass
        return e

    def _reference_diagnosis(
        self, batches: list[np.ndarray], e: NonFiniteLoss, start: tuple[Arrays, Arrays] | None
    ) -> tuple[str, str, str] | None:
        """Ask the reference backend where the first non-finite value appears (for backends
        that cannot say themselves): (the reference's name, node, description), or None.
        Best effort, never masks the original error.

        With ``start`` (the parameters and optimizer state the failing epoch began from) the
        reference replays the epoch and stops at its own first non-finite loss, before that
        step's update: the node it names is the one that broke, not a parameter already
        spoiled by the steps the backend took after the failure."""
        found: tuple[str, str] | None
        try:
            if start is not None:
                name, rt = self._reference_trainer(start[0], "train")
                rt.load_state_dict(start[1])
                try:
                    rt.train_epoch(batches, e.epoch)
                except NonFiniteLoss as replayed:
                    if replayed.node is not None:
                        found = rt.locate_nonfinite("train", batches[replayed.step])
                        return name, *(found or (replayed.node, f"node '{replayed.node}'"))
            if e.step >= len(batches):
                return None
            name, rt = self._reference_trainer(self.trainer.params(), "train")
            found = rt.locate_nonfinite("train", batches[e.step])
            return (name, *found) if found else None
        except Exception:  # noqa: BLE001 - diagnosis is a courtesy on an error path
            return None

    # ---- endings -------------------------------------------------------------------------
    def _final_metrics(self) -> dict[str, float]:
        final = {f"train_{k}": float(v) for k, v in self.trainer.evaluate("train").items()}
        if self.has_val:
            final.update({f"val_{k}": float(v) for k, v in self.trainer.evaluate("val").items()})
        if "test" in self.data.splits:  # held out: read only here, on the final parameters
            final.update({f"test_{k}": float(v)
                          for k, v in self.trainer.evaluate("test").items()})
        return final

    def _finish(self, status: str, restored: bool, last: Arrays | None = None) -> RunResult:
        self._save(status, last=last)
        result = self._result(status, self._final_metrics())
        result.info = self._write_summary(result, restored=restored)
        self._analyse("end", result.params)
        return result

    def _analyse(self, at: str, params: Arrays) -> None:
        if not self.main:  # rank 0 analyses and writes; the others have the same parameters
            return
        analysis.run_stage(self.analysis, at, spec=self.spec, ir=self.ir, program=self.program,
                           params=params, splits=self.data.splits, seed=self.seed,
                           run_dir=self.run_dir)

    def _save(self, status: str, last: Arrays | None = None) -> None:
        if not self.main:
            return
        meta = {
            "name": self.spec.name, "backend": self.backend, "dtype": self.dtype,
            "seed": self.seed, "epoch": len(self.history), "epochs": self.n_epochs,
            "status": status, "batch_size": self.batch_size, "history": self.history,
            "tracker": self.tracker.state(), "wall_time_s": self.elapsed,
        }
        ck = checkpoint.Checkpoint(meta, self.trainer.params(), self.trainer.state_dict(),
                                   self.best_params, last or {})
        checkpoint.save(self.ckpt_path, ck)

    def _result(self, status: str, final: dict[str, float]) -> RunResult:
        best = None
        if self.tracker.best_epoch is not None:
            best = {"monitor": self.tracker.monitor, "value": self.tracker.best,
                    "epoch": self.tracker.best_epoch}
        return RunResult(self.run_dir, status, len(self.history), list(self.history), final,
                         best, self.trainer.params(),
                         resumed_from=self.start_epoch if self.ckpt is not None else None,
                         resumed_status=self.ckpt.meta.get("status") if self.ckpt else None)

    def _write_summary(
        self, result: RunResult, restored: bool = False, error: str | None = None
    ) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "name": self.spec.name, "status": result.status,
            "spec": str(self.spec.path) if self.spec.path else None,
            "backend": self.backend, "dtype": self.dtype, "device": self.device,
            "seed": self.seed, "epochs": result.epochs, "epochs_planned": self.n_epochs,
            "batch_size": self.batch_size, "steps_per_epoch": self.steps,
            "params": self.ir.param_count(),
            "samples": {k: self.data.rows(k) for k in self.data.splits},
            "wall_time_s": round(self.elapsed, 3), "final": result.final, "best": result.best,
            "restored_best": restored, "checkpoint": checkpoint.FILENAME,
            "spec_file": runspec.SPEC, "variant": self.spec.variant,
            "overrides": list(self.spec.overrides),
            "scale": self.spec.scale,
            "threads": self.threads.threads,
            "threads_reason": self.threads.reason,
        }
        if self.data.note:
            summary["data_note"] = self.data.note
        if self.data.vocabulary is not None:  # what a character model's token ids mean
            summary["vocabulary"] = self.data.vocabulary
        if self.init_from is not None:
            summary["init_from"] = str(self.init_from)
        if error:
            summary["error"] = error
        if self.group.world_size > 1:
            summary["nproc"] = self.group.world_size
        if self.main:
            write_json_atomic(self.run_dir / SUMMARY, summary)
        return summary


class _NoLog:
    """The metrics log of a rank other than 0: rank 0 writes the run's."""

    def append(self, record: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class _Signals:
    """SIGINT/SIGTERM while training: remember the first (finish the epoch, save, stop);
    a second SIGINT raises KeyboardInterrupt at once.  Only the main thread can install
    handlers; elsewhere signals keep their default behaviour."""

    def __init__(self, progress: Progress, announce: bool = True) -> None:
        self.progress = progress
        self.announce = announce  # say so on the terminal (one rank of several speaks)
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum
        if not self.announce:
            return
        self.progress.message(
            f"received {signal.Signals(signum).name}: finishing this epoch, then saving a "
            "checkpoint (Ctrl-C again stops at once)")

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
