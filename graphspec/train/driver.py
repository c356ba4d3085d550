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
from graphspec.backend import CompileOptions, get_backend
from graphspec.errors import (
    BackendError,
    CheckpointError,
    Location,
    NonFiniteLoss,
    TrainingError,
    UsageError,
)
from graphspec.init import init_params
from graphspec.ir.build import build
from graphspec.ir.graph import IR
from graphspec.ir.memory import check_memory
from graphspec.spec.load import load
from graphspec.spec.models import Spec, TrainSpec
from graphspec.spec.requirements import require_training
from graphspec.train import checkpoint, parallel, runspec, seeds
from graphspec.train.data import Dataset
from graphspec.train.logsinks import Sinks
from graphspec.train.prepare import prepare
from graphspec.train.rundir import run_dir_for
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
    seed: int | None = None, resume: bool = False, dtype: str = "float64",
    device: str = "auto", progress: bool = True, log_every: int | None = None,
    tensorboard: bool = False, nproc: int | None = None, dist_backend: str = "auto",
    max_restarts: int = 0, dist_timeout: float | None = None, **backend_options: Any,
) -> RunResult:
    """Train ``spec`` (a Spec or a path) with ``backend``; write the run to ``out``
    (default ``runs/<spec name>``).  ``epochs`` and ``seed`` override the spec's;
    ``resume`` continues from ``out/checkpoint.npz``.  Without a terminal, ``progress``
    prints a line every ``log_every`` epochs (default 1); ``tensorboard`` also writes
    event files (graphspec.train.logsinks).  Other keyword arguments are backend compile
    options (``amp``, ``compile``, ...).

    ``nproc`` trains data-parallel with that many worker processes on this machine
    (docs/distributed.md; ``dist_backend`` gloo, nccl or auto, ``max_restarts`` for
    torchrun's elastic restarts, ``dist_timeout`` seconds for a collective); a process
    that torchrun started joins its group by itself."""
    if not isinstance(spec, Spec):
        spec = load(os.fspath(spec))
    if nproc is not None:
        kwargs = dict(backend=backend, out=_run_dir(spec, out), epochs=epochs, seed=seed,
                      resume=resume, dtype=dtype, device=device, progress=progress,
                      log_every=log_every, tensorboard=tensorboard, **backend_options)
        return parallel.launch(backend, spec, kwargs, nproc, dist_backend, max_restarts,
                               dist_timeout)
    with parallel.join(backend, dist_backend, dist_timeout) as group:
        run = _Run(spec, backend, out, epochs, seed, resume, dtype, device, progress,
                   backend_options, group)
        run.log_every, run.tensorboard = log_every, tensorboard
        return run.execute()


def _run_dir(spec: Spec, out: Any) -> Path:
    return Path(out) if out is not None else run_dir_for(spec.name)


class _Run:
    def __init__(
        self, spec: Spec, backend: str, out: Any, epochs: int | None, seed: int | None,
        resume: bool, dtype: str, device: str, progress: bool, options: dict[str, Any],
        group: Any = None,
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
        self.run_dir = _run_dir(spec, out)
        self.ckpt_path = self.run_dir / checkpoint.FILENAME
        self.ckpt: checkpoint.Checkpoint | None = None
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
        self.options = options
        self.history: list[dict[str, Any]] = []
        self.best_params: Arrays = {}
        self.elapsed = 0.0
        self.start_epoch = 0
        self.status = "running"

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
        known = {k: self.options[k] for k in ("amp", "compile") if k in self.options}
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
        expected = {k: tuple(self.ir.type(k).shape) for k in self.ir.params + self.ir.state}
        for section in (ck.train_params, ck.param):
            got = {k: tuple(v.shape) for k, v in section.items()}
            if got != expected:
                diff = sorted(set(got.items()) ^ set(expected.items()))[:3]
                raise CheckpointError(f"the checkpoint does not fit this spec's parameters "
                                      f"(differences: {diff})", where,
                                      hint="was it written by another spec?")
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
        self.status = str(meta.get("status", "running"))

    # ---- the run -------------------------------------------------------------------------
    def execute(self) -> RunResult:
        if self.main:
            self._prepare_run_dir()
        program = self._compile()
        self.program = program
        if self.main:
            runspec.write(self.run_dir, self.spec)
        params0 = init_params(self.ir, self.seed)
        if self.ckpt is None:  # a resumed run has done its ``at: init`` analysis already
            self._analyse("init", params0)
        trainer = self.group.trainer(program, params0, self.train_spec, self.seed)
        for split, arrays in self.data.splits.items():
            trainer.set_data(split, arrays)
        if self.ckpt is not None:
            self._restore(trainer)
        self.trainer = trainer
        finished = self.status in ("early_stopped",) or self.start_epoch >= self.n_epochs
        if finished and self.ckpt is not None:
            trainer.load_params(self.ckpt.param)  # the run's final parameters
            return self._finish(self.status if self.status != "running" else "completed",
                                restored=bool(self.ckpt.last), save=False)
        if self.main:
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
        restored = False
        if self.keep_best and self.best_params and self.tracker.best_epoch != len(self.history):
            last = self.trainer.params()
            self.trainer.load_params(self.best_params)
            restored = True
            return self._finish(status, restored, last=last)
        return self._finish(status, restored)

    def _prepare_run_dir(self) -> None:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrainingError(f"cannot create the run directory {self.run_dir}: "
                                f"{e.strerror or e}", hint="choose another --out") from None
        for stale in self.run_dir.glob(f".{checkpoint.FILENAME}.*.tmp"):  # from killed writers
            stale.unlink(missing_ok=True)

    def _loop(self, log: MetricsLog | _NoLog, signals: _Signals) -> str:
        last_save = -math.inf  # the first epoch is always saved: a failure has a fallback
        # A trainer that cannot say where a non-finite value arose (it checks once per epoch,
        # after the later steps ran) gets its diagnosis from the numpy reference replaying
        # the epoch: keep where the epoch started (one copy of the parameters per epoch).
        opaque = not hasattr(self.trainer, "locate_nonfinite")
        for epoch in range(self.start_epoch, self.n_epochs):
            t0 = time.perf_counter()
            batches = self._batches(epoch)
            start = (self.trainer.params(), self.trainer.state_dict()) if opaque else None
            try:
                stats = self.trainer.train_epoch(batches, epoch)
            except NonFiniteLoss as e:
                raise self._nonfinite(e, batches, start) from None
            record = self._record(epoch, stats)
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
        if node is None and self.main and not hasattr(self.trainer, "locate_nonfinite"):
            found = self._reference_diagnosis(batches, e, start)
            if found:
                node = found[0]
                message += f"; on the numpy reference the first non-finite value is {found[1]}"
        kept = (f"the last good checkpoint is kept: {self.ckpt_path}" if self.ckpt_path.exists()
                else "no checkpoint had been written yet")
        err = NonFiniteLoss(f"{message}; {kept}", e.epoch, e.step, node)
        if node is not None and node in self.ir.graph:
            err.location = self.ir.node(node).get("src")
        err.hint = ("lower the learning rate, clip gradients (train.clip_grad_norm) or check "
                    "the data; metrics.jsonl has the epochs before the failure")
        result = self._result("failed", final={})
        self._write_summary(result, error=err.message)
        return err

    def _reference_diagnosis(
        self, batches: list[np.ndarray], e: NonFiniteLoss, start: tuple[Arrays, Arrays] | None
    ) -> tuple[str, str] | None:
        """Ask the numpy reference where the first non-finite value appears (for backends
        that cannot say themselves); best effort, never masks the original error.

        With ``start`` (the parameters and optimizer state the failing epoch began from) the
        reference replays the epoch and stops at its own first non-finite loss, before that
        step's update: the node it names is the one that broke, not a parameter already
        spoiled by the steps the backend took after the failure."""
        found: tuple[str, str] | None
        try:
            ref = get_backend("numpy").compile(
                self.ir, CompileOptions(dtype=self.dtype))  # type: ignore[arg-type]
            if start is not None:
                rt = ref.trainer(start[0], self.train_spec, self.seed)
                rt.set_data("train", self.data.splits["train"])
                rt.load_state_dict(start[1])
                try:
                    rt.train_epoch(batches, e.epoch)
                except NonFiniteLoss as replayed:
                    if replayed.node is not None:
                        locate = getattr(rt, "locate_nonfinite")  # noqa: B009 - numpy's own
                        found = locate("train", batches[replayed.step])
                        return found or (replayed.node, f"node '{replayed.node}'")
            if e.step >= len(batches):
                return None
            rt = ref.trainer(self.trainer.params(), self.train_spec, self.seed)
            rt.set_data("train", self.data.splits["train"])
            found = getattr(rt, "locate_nonfinite")("train", batches[e.step])  # noqa: B009
            return found
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

    def _finish(
        self, status: str, restored: bool, last: Arrays | None = None, save: bool = True
    ) -> RunResult:
        if save:
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
                         best, self.trainer.params())

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
        }
        if self.data.note:
            summary["data_note"] = self.data.note
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
