"""NumpyTrainer: the Trainer protocol (graphspec.backend) over the generated numpy module.

The driver in graphspec.train owns epochs, batches and bookkeeping; this class runs the
steps.  Noise for stochastic ops comes from a generator derived from (seed, epoch), so a
run resumed at an epoch boundary draws exactly what the uninterrupted run drew, and an
evaluation is a pure function of the parameters.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphspec.errors import NonFiniteLoss, TrainingError
from graphspec.freed_memory import keep_freed_memory
from graphspec.train import seeds
from graphspec.train.adversarial import fgsm_example, mix, mix_each
from graphspec.train.groups import param_groups
from graphspec.train.schedules import lr_factor
from graphspec_numpy.debug import first_nonfinite
from graphspec_numpy.optim import clip_grad_norm, make_optimizer

Arrays = dict[str, np.ndarray]
EVAL_CHUNK = 8192  # rows per forward pass in evaluation, to bound memory


class NumpyTrainer:
    def __init__(self, program: Any, params: Arrays, train: Any, seed: int) -> None:
        keep_freed_memory()  # each step's arrays reuse the last step's pages (freed_memory)
        self.program = program
        self.ir = program.ir
        self.module = program.module
        self.train = train
        self.seed = int(seed)
        self.dtype = program.dtype
        self.names = list(self.ir.params) + list(self.ir.state)
        self._p: Arrays = {}
        self.load_params(params)
        self.optimizer = make_optimizer(train.optimizer, param_groups(self.ir, train.optimizer))
        self.data: dict[str, Arrays] = {}
        self._norms: dict[str, float] = {}  # pre-clipping norms of the last step (clipping)
        self._last_grads: Arrays = {}
        self._stochastic = bool(self.ir.stochastic_nodes)
        self._noise: Arrays | None = None
        self.fused = self._fused()

    # ---- data ----------------------------------------------------------------------------
    def set_data(self, split: str, arrays: Arrays) -> None:
        self.data[split] = self.program.cast(arrays, self.ir.inputs)

    def set_noise(self, arrays: Arrays | None) -> None:
        """Injected noise (by node id) for every following step, as verification feeds
        every backend the same draws; None goes back to sampling from the trainer's stream."""
        self._noise = self.program.cast(arrays) if arrays else None

    def _rows(self, split: str) -> int:
        return len(next(iter(self.data[split].values())))

    # ---- training ------------------------------------------------------------------------
    def _fused(self) -> bool:
        """Whether each parameter is updated inside the backward pass, as soon as its
        gradient is final (``train.fused_update``, where exact): then the step holds one
        layer's gradients at a time, not all of them.  Exact when one parameter's update reads
        only its own gradient, value and optimizer state; clipping by the global norm and
        adversarial training (whose gradient mixes two passes) need every gradient first."""
        t = self.train
        return bool(t.fused_update) and t.clip_grad_norm is None and t.adversarial is None

    def train_epoch(self, batches: list[np.ndarray], epoch: int) -> dict[str, float]:
        data = self.data["train"]
        rng = seeds.stream(self.seed, seeds.NOISE, epoch)
        schedule = self.train.schedule
        static = schedule.name == "constant" and schedule.warmup == 0  # factor 1 throughout
        record: list[tuple[int, Any, dict[str, Any]]] = []
        with np.errstate(all="ignore"):  # overflow is reported as NonFiniteLoss, not warnings
            for step, idx in enumerate(batches):
                factor = 1.0 if static else lr_factor(schedule, epoch, step, len(batches))
                last = step == len(batches) - 1
                loss, terms = self._step(data, idx, rng, epoch, step, factor, last)
                record.append((len(idx), loss, terms))
        # Summed after the loop, in step order: the sums the per-step version formed.
        sums: dict[str, float] = {}
        rows = 0
        for n, loss, terms in record:
            sums["loss"] = sums.get("loss", 0.0) + float(loss) * n
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            rows += n
        return {k: v / max(rows, 1) for k, v in sums.items()}

    def _step(
        self, data: Arrays, idx: np.ndarray, rng: np.random.Generator, epoch: int, step: int,
        factor: float, last: bool,
    ) -> tuple[Any, dict[str, Any]]:
        """One optimizer step on rows ``idx``; returns the batch's (loss, terms).  ``last``:
        the epoch's last step, whose gradient norms :meth:`grad_norms` reports."""
        x = {k: _gather(v, idx) for k, v in data.items()}
        # The generator's state before the step lets a failure replay the same noise.
        before = rng.bit_generator.state if self._stochastic else None
        update = None
        if self.fused:
            self.optimizer.begin(self._p, factor)
            update = self._apply_recording if last else self.optimizer.apply
            self._norms, self._last_grads = {}, {}
        # Parameters' gradients only (no dL/dx to compute), unless adversarial training
        # needs the input's gradient for its examples.  With ``update`` the generated code
        # applies each parameter's update as its gradient is final (none for a non-finite
        # loss: it then returns every gradient, as without).
        input_grads = self.train.adversarial is not None
        loss, terms, grads, new_state = self.module.loss_and_grads(
            self._p, x, True, self._noise, rng, input_grads, update)
        if not math.isfinite(loss):
            raise self._nonfinite(float(loss), epoch, step, x, before)
        if update is None:
            if input_grads:
                loss, terms, grads, new_state = self._adversarial(
                    x, grads, loss, terms, new_state, rng)
                if not math.isfinite(loss):
                    raise self._nonfinite(float(loss), epoch, step, x, before)
                grads = {k: grads[k] for k in self.ir.params}
            clip = self.train.clip_grad_norm
            if clip is not None:
                grads, _, self._norms = clip_grad_norm(grads, clip)
            else:
                self._norms = {}
            self._last_grads = grads
            self.optimizer.step(self._p, grads, factor)
        for k, v in new_state.items():  # batch-norm running statistics
            self._p[k] = np.asarray(v, dtype=self.dtype)
        return loss, terms

    def _apply_recording(self, name: str, g: np.ndarray) -> None:
        """The fused update that also keeps the gradient's norm (the epoch's last step)."""
        self._norms[name] = float(np.linalg.norm(g.ravel()))
        self.optimizer.apply(name, g)

    def _adversarial(
        self, x: Arrays, grads: Arrays, loss: float, terms: dict[str, float], state: Arrays,
        rng: np.random.Generator,
    ) -> tuple[float, dict[str, float], Arrays, Arrays]:
        """Adversarial training (graphspec.train.adversarial): the batch's FGSM examples
        from the clean pass's input gradient, and the objective ``(1 - mix) L(x) + mix
        L(x_adv)``, whose gradient mixes the two passes' likewise.  Running statistics see
        both passes, clean first, as torch's in-place updates do."""
        adv = self.train.adversarial
        gx = grads.get(adv.input)
        if gx is None:
            raise TrainingError(f"adversarial training: the loss has no gradient with respect "
                                f"to input '{adv.input}'")
        for k, v in state.items():
            self._p[k] = np.asarray(v, dtype=self.dtype)
        x_adv = {**x, adv.input: fgsm_example(x[adv.input], gx, adv.epsilon, np.sign)}
        loss_a, terms_a, grads_a, state_a = self.module.loss_and_grads(
            self._p, x_adv, True, self._noise, rng)
        return (mix(loss, loss_a, adv.mix), mix_each(terms, terms_a, adv.mix),
                mix_each(grads, grads_a, adv.mix, self.ir.params), state_a)

    def _nonfinite(
        self, loss: float, epoch: int, step: int, x: Arrays, rng_state: Any
    ) -> NonFiniteLoss:
        rng = None
        if rng_state is not None:
            rng = np.random.default_rng()
            rng.bit_generator.state = rng_state
        culprit = first_nonfinite(self.ir, self._p, x, training=True, rng=rng)
        where = culprit.describe(self.ir) if culprit else "no single node (could not localize)"
        return NonFiniteLoss(
            f"loss is {loss} at epoch {epoch + 1}, step {step + 1}: "
            f"first non-finite value: {where}",
            epoch, step, culprit.node if culprit else None,
        )

    def locate_nonfinite(
        self, split: str, index: np.ndarray, training: bool = True
    ) -> tuple[str, str] | None:
        """(node, description) of the first non-finite value on rows ``index`` of ``split``
        with the current parameters (in training or evaluation mode): the driver's
        diagnosis for backends that cannot, and for validation losses."""
        x = {k: v[index] for k, v in self.data[split].items()}
        with np.errstate(all="ignore"):
            culprit = first_nonfinite(self.ir, self._p, x, training=training,
                                      rng=seeds.stream(self.seed, seeds.EVAL))
        return (culprit.node, culprit.describe(self.ir)) if culprit else None

    # ---- evaluation ----------------------------------------------------------------------
    def evaluate(self, split: str) -> dict[str, float]:
        data = self.data[split]
        n = self._rows(split)
        rng = seeds.stream(self.seed, seeds.EVAL)
        sums: dict[str, float] = {}
        for start in range(0, n, EVAL_CHUNK):
            x = {k: v[start:start + EVAL_CHUNK] for k, v in data.items()}
            rows = len(next(iter(x.values())))
            with np.errstate(all="ignore"):
                loss, terms, metrics, _, _ = self.module.evaluate(self._p, x, False, None, rng)
            for k, v in [("loss", loss), *terms.items(), *metrics.items()]:
                sums[k] = sums.get(k, 0.0) + float(v) * rows
        return {k: v / n for k, v in sums.items()}

    # ---- parameters and state ------------------------------------------------------------
    def params(self) -> Arrays:
        return {k: np.array(v, dtype=np.float64) for k, v in self._p.items()}

    def load_params(self, arrays: Arrays) -> None:
        missing = [k for k in self.names if k not in arrays]
        if missing:
            raise KeyError(f"missing parameters: {', '.join(missing)}")
        new: Arrays = {}
        for k in self.names:
            a = np.array(arrays[k], dtype=self.dtype)  # a private, writable copy
            want = tuple(self.ir.type(k).shape)
            if a.shape != want:
                raise ValueError(f"parameter '{k}' has shape {a.shape}, expected {want}")
            new[k] = a
        if self._p:  # keep identities stable: the optimizer updates these arrays in place
            for k, a in new.items():
                self._p[k][...] = a
        else:
            self._p = new

    def state_dict(self) -> Arrays:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: Arrays) -> None:
        self.optimizer.load_state_dict(state, self._p)

    def grad_norms(self) -> dict[str, float]:
        if self._norms:  # clipping measured them before scaling
            return dict(self._norms)
        return {k: float(np.linalg.norm(g.ravel())) for k, g in self._last_grads.items()}


def _gather(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of ``values``: a view when they are consecutive and ascending (batches
    of unshuffled data), else a copy by ``take``, which is 3-4x faster than indexing with an
    array on small batches (same rows).  The first test rules out almost every shuffled
    batch before the exact one looks at each index."""
    n = len(idx)
    if n and idx[-1] - idx[0] == n - 1 and (n == 1 or bool((np.diff(idx) == 1).all())):
        start = int(idx[0])
        return values[start:start + n]
    return values.take(idx, axis=0)
