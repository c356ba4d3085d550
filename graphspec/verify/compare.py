"""``graphspec verify``: do the backends compute the same numbers for a spec?

Every backend gets the same initial parameters (drawn once by the core), the same batch of
inputs and the same noise for every stochastic node.  The first backend is the reference.
Compared tensor by tensor: every output (evaluation mode, and training mode when an op
behaves differently there), each loss term and the total, every metric, the gradient of
every parameter and differentiable input, the state buffers a training step updates
(batch-norm running statistics), and, over ``steps`` optimizer steps with the spec's
optimizer, schedule, groups and clipping, the step losses, the parameters and the
optimizer state.  The reference's gradients are also checked against central finite
differences (float64).  When a value disagrees, every node's value is compared to find
where it starts; when a gradient does, each op on the gradient path is checked alone
(:mod:`graphspec.verify.blame`), so the report names the node at fault.  A rerun of the
reference from parameters a rounding away sets a floor under the tolerance of tensors
that are rounding-sensitive (:func:`graphspec.verify.report.floored`).

Tolerances (:mod:`graphspec.verify.tolerances`): float64 results agree to a few roundings, float32
to what single precision can hold after a chain of ops; an op may loosen them for itself
with a ``tolerances`` class attribute next to its definition, giving the reason (see
:func:`graphspec.verify.tolerances.op_tolerance`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import graphspec as gs
from graphspec.backend import Program
from graphspec.errors import UsageError
from graphspec.ir.graph import IR
from graphspec.ir.initializers import init_params
from graphspec.ir.memory import check_memory
from graphspec.verify.blame import blame_rows, value_rows
from graphspec.verify.finite_differences import fd_rows
from graphspec.verify.inputs import Arrays, batch_size, data_pool, draw_noise, perturb, take
from graphspec.verify.locate import message, tensor_node, where
from graphspec.verify.report import Report, Row, compare, error_row, floored
from graphspec.verify.steps import trajectory_rows
from graphspec.verify.tolerances import TOLERANCES, ops_behind, tolerance

DEFAULT_STEPS = 10


def verify(
    spec: Any,
    backends: Sequence[str] = ("numpy", "torch"),
    steps: int = DEFAULT_STEPS,
    dtype: str = "float64",
    device: str = "auto",
    *,
    seed: int = 0,
    fd: bool = True,
    blame: bool = True,
) -> Report:
    """Verify ``spec`` (a Spec, an IR or a path) on ``backends``; the first is the reference."""

    if dtype not in TOLERANCES:
        raise UsageError(f"unknown dtype '{dtype}'", hint="dtypes: " + ", ".join(TOLERANCES))
    if not backends:
        raise UsageError("verify needs at least one backend")
    ir = _ir_of(spec)
    backends = tuple(backends)
    check_memory(ir, "verify", dtype, len(backends))  # before parameters and data exist
    report = Report(_name_of(spec, ir), backends, dtype, steps)
    rng = np.random.default_rng(seed)
    params = init_params(ir)
    pool, source = data_pool(ir, rng)
    n = len(next(iter(pool.values())))
    b = batch_size(ir, pool)
    inputs = take(pool, rng.choice(n, b, replace=False))
    noise = draw_noise(ir, inputs, rng)
    report.notes.append(f"inputs: a batch of {b} from {source}"
                        + (f"; noise for {len(noise)} stochastic node(s)" if noise else ""))

    programs: dict[str, Program] = {}
    for name in backends:
        try:
            programs[name] = gs.compile(ir, name, dtype=dtype, device=device)
        except Exception as e:  # a backend that cannot compile fails verification, loudly
            report.rows.append(error_row("compile", ir.name, name, message(e)))
    ref = backends[0]
    with full_precision():
        runs = {name: _run(prog, ir, params, inputs, noise) for name, prog in programs.items()}
        for name, run in runs.items():
            if "error" in run:
                report.rows.append(error_row("run", ir.name, name, run["error"]))
        ok = {name for name, run in runs.items() if "error" not in run}
        if ref in ok:
            shadow: Run = {}
            if len(ok) > 1:  # only comparisons between backends get a rounding floor
                moved = perturb(params, dtype, np.random.default_rng(seed))
                shadow = _run(programs[ref], ir, moved, inputs, noise)
            for name in backends[1:]:
                if name in ok:
                    report.rows += _compare_runs(ir, runs[ref], runs[name], shadow, ref, name,
                                                 dtype)
            grads = runs[ref].get("grad")
            if fd and grads is not None:
                # Finite differences need float64 whatever the dtype under comparison.
                ref64 = programs[ref]
                if dtype != "float64":
                    ref64 = gs.compile(ir, ref, device=device)
                    grads = ref64.loss_and_grads(params, inputs, noise=noise).grads
                report.rows += fd_rows(ir, ref64, ref, params, inputs, noise, grads, rng, report)
        if steps > 0 and len(programs) == len(backends):

            report.rows += trajectory_rows(ir, programs, ref, params, pool, b, steps, rng,
                                           dtype, report)
        failed = {r.check for r in report.rows if not r.ok}
        forward_failed = failed & {"output", "output[train]", "loss", "loss[eval]", "metric"}
        if blame and forward_failed and ref in ok and len(ok) > 1:

            report.rows += value_rows(ir, [x for x in backends if x in ok], ref, params,
                                      inputs, noise, dtype, device, report=report)
        elif blame and failed & {"grad", "fd", "state"}:

            report.rows += blame_rows(ir, backends, ref, params, inputs, noise, dtype, device,
                                      fd_only=len(backends) == 1, report=report)
    return report


# ---- running a program ---------------------------------------------------------------------

Run = dict[str, Any]  # check -> {tensor: array}, or "error" -> message


def _run(prog: Program, ir: IR, params: Arrays, inputs: Arrays, noise: Arrays) -> Run:
    out: Run = {}
    try:
        out["output"] = prog.forward(params, inputs, training=False, noise=noise)
        if _uses_training(ir):
            out["output[train]"] = prog.forward(params, inputs, training=True, noise=noise)
        if ir.losses:
            res = prog.loss_and_grads(params, inputs, noise=noise, training=True)
            out["loss"] = {"total": res.loss, **res.terms}
            out["grad"] = res.grads
            out["state"] = res.state
            ev = prog.evaluate(params, inputs, training=False, noise=noise)
            out["loss[eval]"] = {"total": ev.loss, **ev.terms}
            out["metric"] = ev.metrics
    except Exception as e:
        out["error"] = message(e)
    return out


def _uses_training(ir: IR) -> bool:
    return any(ir.op(n).opdef.uses_training for n in ir.op_nodes())


def _compare_runs(
    ir: IR, ref: Run, other: Run, shadow: Run, rname: str, oname: str, dtype: str
) -> list[Row]:
    """Every tensor of ``other`` against ``ref``; ``shadow`` (the reference from parameters
    one ulp away) sets a floor under the tolerance of rounding-sensitive tensors."""
    against = f"{oname}~{rname}"
    rows: list[Row] = []
    for check, values in ref.items():
        kind = "grad" if check == "grad" else "forward"
        mine = other.get(check, {})
        for tensor in sorted(set(values) | set(mine)):
            node = tensor_node(ir, check, tensor)
            tol = tolerance(kind, dtype, ops_behind(ir, check, tensor))
            tol, note = floored(tol, values.get(tensor), shadow.get(check, {}).get(tensor))
            rows.append(compare(check, tensor, against, mine.get(tensor), values.get(tensor), tol,
                                node=node, where=where(ir, node), note=note))
    return rows


# ---- helpers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """TF32 off (CUDA matmuls and cuDNN) while verifying; restored afterwards.

    The core never imports torch: when no loaded backend did, there is nothing to set."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])


def _ir_of(spec: Any) -> IR:

    if isinstance(spec, IR):
        return spec
    if isinstance(spec, (str, Path)):
        spec = gs.load(spec)
    return gs.build(spec)


def _name_of(spec: Any, ir: IR) -> str:
    if isinstance(spec, (str, Path)):
        return str(spec)
    path = getattr(ir.spec, "path", None)
    return str(path) if path else ir.name
