"""Trajectory equivalence: K optimizer steps on every backend, compared after each step.

Each backend trains with its own trainer (``program.trainer(params, train, seed)``: numpy's
hand-written optimizers, torch's ``torch.optim``) from the same initial parameters on the
same fixed index batches.  Step k is one ``train_epoch([batch_k], epoch=k)`` call, so an
epoch-unit schedule advances every step too and K steps exercise warm-up and decay; a cosine
schedule without ``t_max`` is resolved to span the K steps.

Stochastic specs need the same noise on every backend at every step.  A backend that can
take it declares ``Capabilities(noise_injection=True)``, and its trainers implement
``set_noise(arrays_or_None)`` (arrays keyed by node id, used by every following step until
changed; None: sample natively); when a backend does not, the trajectory of a stochastic
spec is not compared, and the report says so.

Per tensor the report keeps one row: the first step at which it disagreed, else the step
with the largest error.

Chaotic training (a saturated deep net, Adam dividing by a gradient that is rounding
noise) amplifies the backends' different rounding step after step.  Shadow runs of the
reference from parameters a rounding away measure that amplification, and each tensor's
tolerance gets a floor of SENSITIVITY times the shadows' distance (see
:func:`graphspec.verify.report.floored`): a real optimizer bug shows at step 1, where the
shadows have not moved.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphspec.backend import Program, capabilities, get_backend
from graphspec.ir.graph import IR
from graphspec.train.schedules import resolve
from graphspec.verify.inputs import Arrays, draw_noise, perturb, take
from graphspec.verify.locate import message, tensor_node
from graphspec.verify.report import Report, Row, compare, error_row, floored
from graphspec.verify.tolerances import tolerance

RNG_WORDS = ("rng", "random", "generator", "seed")  # state that is each backend's own
SHADOWS = ("shadow 1", "shadow 2")  # two draws: chaotic divergence varies from draw to draw
# Two backends' steps differ by more than one rounding: long reductions summed in another
# order differ by up to ~sqrt(n) ulps each step.  The shadow starts this far away; an
# optimizer bug moves parameters far more than this at step 1, so it cannot hide under it.
SHADOW_ULPS = 100.0


def trajectory_rows(
    ir: IR, programs: dict[str, Program], ref: str, params: Arrays, pool: Arrays, batch: int,
    steps: int, rng: np.random.Generator, dtype: str, report: Report,
) -> list[Row]:

    train = getattr(ir.spec, "train", None)
    if train is None:
        report.notes.append("no optimizer steps: the spec has no train section")
        report.steps = 0
        return []
    train = _resolve(train, steps)
    n = len(next(iter(pool.values())))
    batches = [np.sort(rng.choice(n, batch, replace=False)).astype(np.int64)
               for _ in range(steps)]
    noises = [draw_noise(ir, take(pool, b), rng) for b in batches]
    stochastic = any(noises)

    trainers: dict[str, Any] = {}
    starts = {name: params for name in programs}
    for i, shadow in enumerate(SHADOWS):
        starts[shadow] = perturb(params, dtype, np.random.default_rng(i), SHADOW_ULPS)
    for name, start in starts.items():
        prog = programs[ref if name in SHADOWS else name]
        try:
            t = prog.trainer(start, train, ir.seed)
            t.set_data("train", pool)
        except Exception as e:

            return [error_row("step", "trainer", name, message(e))]
        trainers[name] = t
    if stochastic:
        lacking = [name for name in programs
                   if not capabilities(get_backend(name)).noise_injection]
        if lacking:
            report.notes.append(
                "optimizer steps not compared: the spec is stochastic and the trainer of "
                + ", ".join(lacking) + " takes no injected noise (Trainer.set_noise, "
                "declared by Capabilities.noise_injection)")
            report.steps = 0  # the verdict must not claim steps it did not compare
            return []

    tol = tolerance("grad", dtype, [ir.op(o).attrs for o in ir.op_nodes()])
    kept: dict[tuple[str, str, str], Row] = {}
    one_sided: set[str] = set()
    for k in range(steps):
        logs: dict[str, dict[str, Any]] = {}
        for name, t in trainers.items():
            try:
                if stochastic:
                    t.set_noise(noises[k])
                losses = t.train_epoch([batches[k]], k)
                logs[name] = {"loss": losses, "param": t.params(), "optim": _opt_state(t)}
            except Exception as e:

                kept[("step", "error", name)] = error_row("step", f"step {k + 1}", name,
                                                          message(e))
                return list(kept.values())
        for name in trainers:
            if name == ref or name in SHADOWS:
                continue
            against = f"{name}~{ref}"
            for check, ref_values in logs[ref].items():
                mine = logs[name][check]
                keys = set(ref_values) | set(mine)
                if check == "optim":
                    one_sided |= keys ^ (set(ref_values) & set(mine))
                    keys = set(ref_values) & set(mine)
                for key in sorted(keys):
                    node = tensor_node(ir, check, key)
                    kt, note = floored(tol, ref_values.get(key),
                                       *(logs[sh][check].get(key) for sh in SHADOWS))
                    row = compare(f"step {check}", key, against, mine.get(key),
                                  ref_values.get(key), kt, node=node, note=note)
                    _keep(kept, row, k + 1)
    if one_sided:
        shown = ", ".join(sorted(one_sided)[:6]) + (", ..." if len(one_sided) > 6 else "")
        report.notes.append(f"optimizer state only one backend reports (not compared): {shown}")
    return list(kept.values())


def _keep(kept: dict[tuple[str, str, str], Row], row: Row, step: int) -> None:
    key = (row.check, row.tensor, row.against)
    old = kept.get(key)
    if old is not None and not old.ok:
        return  # the first failing step is the informative one
    if old is None or not row.ok or row.max_abs > old.max_abs:
        row.note = (f"fails at step {step}" if not row.ok else f"worst at step {step}") + (
            f"; {row.note}" if row.note else "")
        kept[key] = row


def _opt_state(trainer: Any) -> Arrays:
    """The trainer's numeric optimizer state, without what is each backend's own (RNG)."""
    out: Arrays = {}
    for key, value in trainer.state_dict().items():
        a = np.asarray(value)
        if a.dtype.kind in "fiub" and not any(w in key.lower() for w in RNG_WORDS):
            out[key] = a
    return out


def _resolve(train: Any, steps: int) -> Any:
    return resolve(train.model_copy(update={"epochs": steps}), 1)
