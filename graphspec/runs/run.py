"""A finished run, loaded back: ``run = gs.load_run("runs/xor")``.

A run directory holds ``spec.yaml`` (the effective spec), ``summary.json`` and
``checkpoint.npz`` (graphspec.train.runspec); that is all this module reads.  Nothing here
writes into the run directory: predicting and evaluating leave it as it was.

    run.spec                  the validated Spec (the variant trained, overrides applied)
    run.params                parameters the run ended with (best ones after restore-best)
    run.last_params           the last epoch's parameters
    run.history               the metrics log, one dict per epoch
    run.summary               summary.json
    run.predict(X or dict)    outputs; for classifiers also classes and probabilities
    run.evaluate(data)        loss, terms and metrics on labelled data (+ a confusion matrix)
    run.program(backend=...)  the compiled Program

``predict`` and ``evaluate`` (and ``graphspec.runs.sample.sample_text``) take ``threads=``
as ``gs.train`` does (graphspec.threads): a count, ``"auto"``, or None for the auto rule.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from graphspec import threads as threads_
from graphspec.errors import DataError, GraphspecError, Location
from graphspec.ir.graph import IR
from graphspec.ir.node import OpNode
from graphspec.spec.models import Spec
from graphspec.spec.load import loads
from graphspec.spec.source import read_text
from graphspec.spec.variants import expand_variants
from graphspec.train.runspec import SPEC
from graphspec.ir.build import build
from graphspec.train.runlog import METRICS, read_metrics
from graphspec.train import checkpoint
from graphspec.backend import CompileOptions, get_backend
from graphspec.train.apply_data import from_arrays, read_file
from graphspec.train.data import input_roles
from graphspec.train.schedules import resolve
from graphspec.train.runlog import SUMMARY, read_summary

Arrays = dict[str, np.ndarray]
CHECKPOINTS = ("best", "last")
EVAL_ROWS = 8192  # the rows of one evaluation pass (both trainers' EVAL_CHUNK)
# Losses that read an output as class scores, and how those scores become probabilities.
CLASSIFIER_LOSSES = {
    "cross_entropy": "softmax",
    "bce_with_logits": "sigmoid",
    "bce": "probability",
    "nll": "log_softmax",
}


def load_run(path: str | os.PathLike[str]) -> Run:
    """The run in directory ``path`` (what ``graphspec train --out`` wrote)."""
    return Run(Path(path))


@dataclass
class Evaluation:
    """``evaluate``'s result: ``metrics`` ("loss", each loss term, each metric, as training
    reports them), the row count, and per classifier output a confusion matrix (rows: true
    class, columns: predicted class)."""

    metrics: dict[str, float]
    rows: int
    confusion: dict[str, np.ndarray] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        # Strict JSON: a non-finite value (a diverged model's loss) becomes null.
        metrics = {k: (v if math.isfinite(v) else None) for k, v in self.metrics.items()}
        return {
            "rows": self.rows,
            "metrics": metrics,
            "confusion": {k: v.tolist() for k, v in self.confusion.items()},
        }


class Run:
    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_dir():
            raise GraphspecError(
                f"{path} is not a run directory",
                Location(str(path)),
                hint="pass the --out directory of 'graphspec train'",
            )
        self.summary: dict[str, Any] = _read_summary(path)
        self.spec: Spec = self._load_spec()
        self._programs: dict[tuple[str, str, str], Any] = {}

    # ---- what the directory holds ---------------------------------------------------------
    def _load_spec(self) -> Spec:

        file = self.path / SPEC
        if not file.is_file():
            raise GraphspecError(
                f"{self.path} has no {SPEC}",
                Location(str(self.path)),
                hint="runs record their spec since this version of "
                "graphspec; train again to get one",
            )
        name, text = read_text(file)
        # Relative data paths in the spec stay relative to the file it was trained from.
        origin = self.summary.get("spec")
        base = Path(origin) if isinstance(origin, str) and Path(origin).is_file() else file
        spec = loads(text, name, base=base)
        variant = self.summary.get("variant")
        if isinstance(variant, str):
            variants = expand_variants(spec)
            if variant not in variants:
                raise GraphspecError(
                    f"{file} has no variant '{variant}' (summary.json names it)",
                    Location(str(file)),
                )
            spec = variants[variant]
        return spec

    @cached_property
    def ir(self) -> IR:

        return build(self.spec)

    @cached_property
    def history(self) -> list[dict[str, Any]]:

        if not (self.path / METRICS).is_file():
            return []
        return read_metrics(self.path)  # bounded and strict

    @cached_property
    def _checkpoint(self) -> Any:

        path = self.path / checkpoint.FILENAME
        ck = checkpoint.load(path)
        checkpoint.check_fits(ck.param, self.ir, path)  # every difference, listed
        return ck

    def checkpoint_params(self, which: str = "best") -> Arrays:
        """``best``: what the run ended with (the restored best epoch's parameters with
        early stopping's restore_best, else the last epoch's); ``last``: the last epoch's."""
        if which not in CHECKPOINTS:
            raise GraphspecError(
                f"checkpoint must be one of {', '.join(CHECKPOINTS)}, not {which!r}"
            )
        ck = self._checkpoint
        return dict(ck.last or ck.param) if which == "last" else dict(ck.param)

    @property
    def params(self) -> Arrays:
        return self.checkpoint_params("best")

    @property
    def last_params(self) -> Arrays:
        return self.checkpoint_params("last")

    def program(
        self, backend: str | None = None, device: str = "auto", dtype: str | None = None
    ) -> Any:
        """The run's model compiled with ``backend`` (default: the one it trained with)."""

        backend = backend or str(self.summary.get("backend") or "numpy")
        dtype = dtype or str(self.summary.get("dtype") or "float64")
        key = (backend, device, dtype)
        if key not in self._programs:
            opts = CompileOptions(dtype=dtype, device=device)  # type: ignore[arg-type]
            self._programs[key] = get_backend(backend).compile(self.ir, opts)
        return self._programs[key]

    # ---- using the model ------------------------------------------------------------------
    def inputs_from(self, data: Any, *, targets: bool | None = None) -> Arrays:
        """Arrays for the spec's inputs from a file path (.csv/.npz, read with the training
        column mapping), a dict of arrays by input name, or one array (the single feature
        input).  ``targets``: True requires them, False ignores them, None takes them
        when present."""

        if isinstance(data, str | os.PathLike):
            return read_file(self.spec, self.ir, Path(data), targets=targets)
        if not isinstance(data, dict):
            features, _ = input_roles(self.ir)
            if len(features) != 1:
                raise DataError(f"the model has inputs {features}: pass a dict of arrays")
            data = {features[0]: data}
        return from_arrays(self.spec, self.ir, data, targets=targets)

    @contextlib.contextmanager
    def computing(
        self, threads: threads_.Threads | None, backend: str | None, rows: int
    ) -> Iterator[threads_.Choice]:
        """Compute inside with the CPU threads ``threads`` asks for (graphspec.threads; None
        is the auto rule, weighed on passes of ``rows`` rows); what was set comes back on
        exit.  ``"auto"`` asked for says its choice on stderr, as ``train`` does."""
        choice = threads_.resolve(threads_.check(threads), self.ir, max(int(rows), 1))
        if threads == threads_.AUTO:
            print(choice.note(), file=sys.stderr)
        name = backend or str(self.summary.get("backend") or "numpy")
        with threads_.limited(choice.threads, torch_too=name == "torch"):
            yield choice

    def predict(
        self,
        data: Any,
        *,
        checkpoint: str = "best",
        backend: str | None = None,
        device: str = "auto",
        batch_size: int = 1024,
        threads: threads_.Threads | None = None,
    ) -> Arrays:
        """Each output for ``data`` (see :meth:`inputs_from`); for an output a classification
        loss reads, also ``<output>_class`` and ``<output>_prob`` (class probabilities; for a
        single logit, the probability of class 1)."""

        features, _ = input_roles(self.ir)
        inputs = self.inputs_from(data, targets=False)
        params = self.checkpoint_params(checkpoint)
        prog = self.program(backend, device)
        n = len(next(iter(inputs.values())))
        chunks: list[Arrays] = []
        step = max(int(batch_size), 1)
        with self.computing(threads, backend, min(step, n)):
            for start in range(0, n, step):
                batch = {k: inputs[k][start : start + step] for k in features}
                outputs = prog.forward(params, batch)
                chunks.append({k: np.asarray(v) for k, v in outputs.items()})
        out = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]} if chunks else {}
        for name, kind in classifier_outputs(self.ir).items():
            if name in out:
                out.update(class_predictions(name, out[name], kind))
        return out

    def evaluate(
        self,
        data: Any,
        *,
        checkpoint: str = "best",
        backend: str | None = None,
        device: str = "auto",
        threads: threads_.Threads | None = None,
    ) -> Evaluation:
        """Loss, terms and metrics on labelled ``data``, computed as training computes them
        for the validation split; a confusion matrix per classifier output."""

        inputs = self.inputs_from(data, targets=True)
        params = self.checkpoint_params(checkpoint)
        prog = self.program(backend, device)
        assert self.spec.train is not None
        seed = int(self.summary.get("seed", self.spec.seed))
        rows = len(next(iter(inputs.values())))
        with self.computing(threads, backend, min(rows, EVAL_ROWS)) as choice:
            trainer = prog.trainer(params, resolve(self.spec.train, 1), seed)
            trainer.set_data("evaluate", inputs)
            metrics = {k: float(v) for k, v in trainer.evaluate("evaluate").items()}
        confusion: dict[str, np.ndarray] = {}
        kinds = classifier_outputs(self.ir)
        if kinds:
            outputs = self.predict(
                inputs,
                checkpoint=checkpoint,
                backend=backend,
                device=device,
                threads=choice.threads,
            )
            for name, kind in kinds.items():
                target = _target_of(self.ir, name)
                if target in inputs and f"{name}_class" in outputs:
                    confusion[name] = confusion_matrix(
                        true_classes(inputs[target], kind, outputs[f"{name}_prob"]),
                        outputs[f"{name}_class"],
                        _n_classes(outputs[f"{name}_prob"], kind),
                    )
        return Evaluation(metrics, rows, confusion)


# ---- classifiers --------------------------------------------------------------------------


def classifier_outputs(ir: IR) -> dict[str, str]:
    """Outputs that a classification loss reads as class scores: {output: kind}."""
    found: dict[str, str] = {}
    for name, node in ir.outputs.items():
        for _, consumer in ir.graph.out_edges(node):
            d = ir.node(consumer)
            if (
                isinstance(d, OpNode)
                and d.role == "loss"
                and d.op in CLASSIFIER_LOSSES
                and (d.inputs and d.inputs[0] == node)
            ):
                found.setdefault(name, CLASSIFIER_LOSSES[d.op])
    return found


def _target_of(ir: IR, output: str) -> str | None:
    node = ir.outputs[output]
    for _, consumer in ir.graph.out_edges(node):
        d = ir.node(consumer)
        if d.op in CLASSIFIER_LOSSES and len(d.inputs) > 1 and d.inputs[0] == node:
            return d.inputs[1]
    return None


def class_predictions(name: str, scores: np.ndarray, kind: str) -> Arrays:
    """``<name>_class`` and ``<name>_prob`` from the scores a classification loss reads."""
    z = np.asarray(scores, dtype=np.float64)
    binary = z.ndim >= 2 and z.shape[-1] == 1 and kind in ("sigmoid", "probability")
    if kind == "sigmoid":
        p = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow
    elif kind == "probability":
        p = z
    elif kind == "log_softmax":
        p = np.exp(z)
    else:
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)
    if binary:
        return {f"{name}_class": (p[..., 0] > 0.5).astype(np.int64), f"{name}_prob": p[..., 0]}
    return {f"{name}_class": p.argmax(axis=-1).astype(np.int64), f"{name}_prob": p}


def _n_classes(prob: np.ndarray, kind: str) -> int:
    return 2 if prob.ndim == 1 else int(prob.shape[-1])


def true_classes(target: np.ndarray, kind: str, prob: np.ndarray) -> np.ndarray:
    """Class labels from targets as the data holds them: labels, 0/1 values, one-hot rows."""
    t = np.asarray(target)
    if prob.ndim == 1:  # binary: one value per row
        return (t.reshape(len(t), -1)[:, 0] > 0.5).astype(np.int64)
    if t.ndim == prob.ndim and t.shape[-1] == prob.shape[-1] and t.shape[-1] > 1:
        return t.argmax(axis=-1).astype(np.int64)
    return t.reshape(prob.shape[:-1]).astype(np.int64)


def confusion_matrix(true: np.ndarray, pred: np.ndarray, classes: int) -> np.ndarray:
    """``m[i, j]``: rows of true class i predicted as class j."""
    m = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(m, (true.reshape(-1), pred.reshape(-1)), 1)
    return m


# ---- reading -------------------------------------------------------------------------------


def _read_summary(path: Path) -> dict[str, Any]:

    if not (path / SUMMARY).is_file():
        raise GraphspecError(
            f"{path} is not a finished run (no {SUMMARY})",
            Location(str(path / SUMMARY)),
            hint="pass the --out directory of 'graphspec train'",
        )
    return read_summary(path)  # bounded, strict, checked to be a run's summary
