"""What a procedure sees: names checked against the IR, and a Program with the run's data.

Everything goes through the Program interface (``forward``, ``evaluate``,
``loss_and_grads``), so each procedure runs on any backend.  Noise for stochastic ops is
drawn here, by the core, from the run's seed (as ``verify`` does) and handed to the
backend: a procedure gives the same numbers on every backend and on every rerun.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphspec.errors import Location, SpecError, did_you_mean
from graphspec.ir.graph import IR
from graphspec.ir.node import InputNode, OpNode
from graphspec.spec.models import Spec
from graphspec.spec.source import SourceMap
from graphspec.train import seeds
from graphspec.train.atomic import atomic_open
from graphspec.train.data import input_roles
from graphspec.train.runlog import write_json_atomic
from graphspec.verify.inputs import draw_noise

Arrays = dict[str, np.ndarray]
# The random stream of analysis procedures (graphspec.train.seeds keeps 1-5 for training);
# each entry draws from its own, keyed by its position, so entries never shift each other.
ANALYSIS_STREAM = 17
CHUNK = 4096  # rows per Program call, to bound memory on large splits


@dataclass
class CheckContext:
    """An entry being checked: where it stands in the file, and the IR it must fit."""

    spec: Spec
    ir: IR
    index: int

    @property
    def smap(self) -> SourceMap:
        return self.spec.source or SourceMap(file="<spec>")

    def loc(self, *keys: Any) -> Location:
        return self.smap.locate(("analysis", self.index) + keys)

    def error(self, message: str, *keys: Any, hint: str | None = None) -> SpecError:
        return SpecError(message, self.loc(*keys), hint=hint)

    def feature_input(self, name: str | None, key: str = "input") -> str:
        """``name`` checked as a feature input, or the only feature input when None."""
        features, targets = input_roles(self.ir)
        if name is None:
            if len(features) != 1:
                raise self.error(
                    f"the spec has {len(features)} feature inputs ({', '.join(features)}): "
                    f"say which one with '{key}:'", hint=f"{key}: {features[0]}" if features
                    else None)
            return features[0]
        if name not in self.ir.inputs:
            raise self.error(f"unknown input '{name}'", key,
                             hint=did_you_mean(name, self.ir.inputs)
                             or "inputs: " + ", ".join(self.ir.inputs))
        if name in targets:
            raise self.error(f"'{name}' is a target (read only by losses and metrics), not a "
                             "feature input", key, hint="features: " + ", ".join(features))
        return name

    def differentiable_input(self, name: str | None, key: str = "input") -> str:
        name = self.feature_input(name, key)
        node = self.ir.node(name)
        if not (isinstance(node, InputNode) and node.differentiable):
            raise self.error(f"input '{name}' is not differentiable (an int input, or "
                             "declared 'differentiable: false'): it has no gradient", key)
        return name

    def output(self, name: str | None, key: str = "output") -> str:
        """An output name checked against the spec's outputs (the first when None)."""
        outs = list(self.ir.outputs)
        if name is None:
            return outs[0]
        if name not in self.ir.outputs:
            raise self.error(f"unknown output '{name}'", key,
                             hint=did_you_mean(name, outs) or "outputs: " + ", ".join(outs))
        return name

    def stochastic(self, training: bool) -> bool:
        """Whether forward passes differ between noise draws (dropout only in training)."""
        return any(self.ir.node(n).op != "dropout" or training
                   for n in self.ir.stochastic_nodes)


@dataclass
class Context:
    """A run's state for procedures: Program, parameters, data splits, seed, run folder."""

    spec: Spec
    ir: IR
    program: Any  # graphspec.backend.Program
    params: Arrays
    splits: dict[str, Arrays]
    seed: int
    run_dir: Path
    at: str
    files: list[Path] = field(default_factory=list)

    # ---- data ----------------------------------------------------------------------------
    def split(self, name: str) -> tuple[str, Arrays]:
        """The split ``name``, or the training split when there is no validation split."""
        if name in self.splits:
            return name, self.splits[name]
        return "train", self.splits["train"]

    def rng(self, entry_index: int, *keys: int) -> np.random.Generator:
        return seeds.stream(self.seed, ANALYSIS_STREAM, entry_index, *keys)

    def batch(self, split: str, size: int | str | None, rng: np.random.Generator) -> Arrays:
        """``size`` rows of ``split`` drawn without replacement (all for "full")."""
        _, arrays = self.split(split)
        n = len(next(iter(arrays.values())))
        if size is None:
            bs = self.spec.train.batch_size if self.spec.train is not None else "full"
            size = bs
        k = n if size == "full" else min(int(size), n)
        index = np.sort(rng.choice(n, k, replace=False))
        return {name: v[index] for name, v in arrays.items()}

    def target_of(self, output: str) -> str | None:
        """The target input a loss or metric compares output ``output`` with, if any."""
        node = self.ir.outputs[output]
        for _, consumer in self.ir.graph.out_edges(node):
            c = self.ir.node(consumer)
            args = c.inputs
            if isinstance(c, OpNode) and c.role in ("loss", "metric") and len(args) >= 2 \
                    and args[0] == node and args[1] in self.ir.inputs:
                return str(args[1])
        return None

    # ---- the Program, chunked, with the core's noise ---------------------------------------
    def noise(self, inputs: Arrays, rng: np.random.Generator) -> Arrays | None:
        return draw_noise(self.ir, inputs, rng) or None

    def forward(self, inputs: Arrays, rng: np.random.Generator, training: bool = False
                ) -> Arrays:
        parts: list[Arrays] = []
        for chunk in _chunks(inputs):
            parts.append(self.program.forward(self.params, chunk, training=training,
                                              noise=self.noise(chunk, rng)))
        return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}

    def evaluate(self, inputs: Arrays, rng: np.random.Generator) -> dict[str, float]:
        """Loss, terms and metrics over ``inputs`` in evaluation mode (row-weighted means)."""
        sums: dict[str, float] = {}
        n = 0
        for chunk in _chunks(inputs):
            rows = len(next(iter(chunk.values())))
            res = self.program.evaluate(self.params, chunk, training=False,
                                        noise=self.noise(chunk, rng))
            for k, v in [("loss", res.loss), *res.terms.items(), *res.metrics.items()]:
                sums[k] = sums.get(k, 0.0) + float(v) * rows
            n += rows
        return {k: v / max(n, 1) for k, v in sums.items()}

    def grads(self, inputs: Arrays, rng: np.random.Generator, training: bool) -> Any:
        """``loss_and_grads`` on one batch (not chunked: the loss is the batch's mean)."""
        return self.program.loss_and_grads(self.params, inputs, training=training,
                                           noise=self.noise(inputs, rng))

    # ---- files ---------------------------------------------------------------------------
    def write_json(self, stem: str, data: dict[str, Any]) -> Path:

        path = self.run_dir / f"{stem}.json"
        write_json_atomic(path, data)
        self.files.append(path)
        return path

    def write_npz(self, stem: str, arrays: dict[str, Any]) -> Path:

        path = self.run_dir / f"{stem}.npz"
        with atomic_open(path, "wb") as f:
            np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]
        self.files.append(path)
        return path


def _chunks(inputs: Arrays) -> list[Arrays]:
    n = len(next(iter(inputs.values())))
    return [{k: v[i:i + CHUNK] for k, v in inputs.items()} for i in range(0, max(n, 1), CHUNK)]
