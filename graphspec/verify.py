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
(:mod:`graphspec.verify_blame`), so the report names the node at fault.  A rerun of the
reference from parameters a rounding away sets a floor under the tolerance of tensors
that are rounding-sensitive (:func:`graphspec.verify_report.floored`).

Tolerances (:data:`TOLERANCES`, ``FD_*``): float64 results agree to a few roundings, float32
to what single precision can hold after a chain of ops; an op may loosen them for itself
with a ``tolerances`` class attribute next to its definition, giving the reason (see
:func:`op_tolerance`).
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from graphspec.backend import Program
from graphspec.errors import UsageError
from graphspec.init import init_params
from graphspec.ir.graph import IR
from graphspec.ir.memory import check_memory
from graphspec.ops import REGISTRY
from graphspec.verify_inputs import Arrays, batch_size, data_pool, draw_noise, perturb, take
from graphspec.verify_report import Report, Row, Tol, compare, error_row, floored

TOLERANCES: dict[str, dict[str, Tol]] = {
    "float64": {"forward": Tol(1e-12, 1e-12), "grad": Tol(1e-9, 1e-10)},
    "float32": {"forward": Tol(1.3e-6, 1e-5), "grad": Tol(2e-3, 1e-4)},
}
FD_EPS = 1e-6
FD_RTOL = 1e-5
FD_ATOL = 1e-8  # times max(1, |loss|): the rounding of two loss evaluations divided by 2 eps
FULL_FD_MAX = 32  # tensors up to this many elements also get an element-wise Jacobian check
DEFAULT_STEPS = 10


def op_tolerance(attrs: Any, kind: str, dtype: str) -> Tol | None:
    """An op's declared override for ``kind`` (forward, grad, fd) in ``dtype``, or None.

    Declared next to the op, with the reason::

        class GELU(Elementwise):
            tolerances: ClassVar[dict] = {
                "grad": (1e-7, 1e-9), "float32.grad": (5e-3, 1e-4),
                "reason": "numpy's and torch's erf differ in the last bits",
            }

    ``kind`` alone applies to every dtype; ``dtype.kind`` to one.  Overrides only loosen.
    """
    table = getattr(attrs, "tolerances", None)
    if not table:
        return None
    value = table.get(f"{dtype}.{kind}", table.get(kind))
    return Tol(*value) if value is not None else None


def tolerance(kind: str, dtype: str, ops: Sequence[Any] = ()) -> Tol:
    """The default tolerance for ``kind`` loosened by the overrides of the ops involved."""
    tol = FD_TOL if kind == "fd" else TOLERANCES[dtype][kind]
    for attrs in ops:
        tol = tol.loosen(op_tolerance(attrs, kind, dtype))
    return tol


FD_TOL = Tol(FD_RTOL, FD_ATOL)


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
    import graphspec as gs

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
            report.rows.append(error_row("compile", ir.name, name, _message(e)))
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
            from graphspec.verify_steps import trajectory_rows

            report.rows += trajectory_rows(ir, programs, ref, params, pool, b, steps, rng,
                                           dtype, report)
        failed = {r.check for r in report.rows if not r.ok}
        forward_failed = failed & {"output", "output[train]", "loss", "loss[eval]", "metric"}
        if blame and forward_failed and ref in ok and len(ok) > 1:
            from graphspec.verify_blame import value_rows

            report.rows += value_rows(ir, [x for x in backends if x in ok], ref, params,
                                      inputs, noise, dtype, device, report=report)
        elif blame and failed & {"grad", "fd", "state"}:
            from graphspec.verify_blame import blame_rows

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
        out["error"] = _message(e)
    return out


def _uses_training(ir: IR) -> bool:
    return any(REGISTRY[ir.node(n).op].uses_training for n in ir.op_nodes())


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
            node = _node_of(ir, check, tensor)
            tol = tolerance(kind, dtype, _ops_behind(ir, check, tensor))
            tol, note = floored(tol, values.get(tensor), shadow.get(check, {}).get(tensor))
            rows.append(compare(check, tensor, against, mine.get(tensor), values.get(tensor), tol,
                                node=node, where=_where(ir, node), note=note))
    return rows


def _node_of(ir: IR, check: str, tensor: str) -> str | None:
    """The IR node a compared tensor belongs to (for a parameter: the op that owns it)."""
    if check.startswith("output"):
        return ir.outputs.get(tensor)
    if tensor in ir.graph:
        return ir.node(tensor).get("owner", tensor)
    return None


def _where(ir: IR, node: str | None) -> str | None:
    if node is None or node not in ir.graph:
        return None
    src = ir.node(node).src
    return str(src) if src else None


def _ops_behind(ir: IR, check: str, tensor: str) -> list[Any]:
    """Attribute models of the ops a tensor's value depends on (for tolerance overrides)."""
    if check.startswith("output") and tensor in ir.outputs:
        sinks = [ir.outputs[tensor]]
    elif tensor in ir.graph and check not in ("grad", "state"):
        sinks = [tensor]
    else:
        sinks = [lid for lid, _ in ir.losses]
    nodes: set[str] = set()
    for s in sinks:
        nodes |= nx.ancestors(ir.graph, s) | {s}
    return [ir.node(n).attrs for n in nodes if ir.node(n).kind == "op"]


# ---- finite differences --------------------------------------------------------------------


def fd_rows(
    ir: IR, prog: Program, ref: str, params: Arrays, inputs: Arrays, noise: Arrays,
    grads: Arrays, rng: np.random.Generator, report: Report,
) -> list[Row]:
    """The reference's gradients against central differences of its own loss (float64): one
    random unit direction per tensor, and every element for tensors of <= FULL_FD_MAX."""

    def loss(p: Arrays, x: Arrays) -> float:
        return float(prog.evaluate(p, x, training=True, noise=noise).loss)

    base = loss(params, inputs)
    tol = tolerance("fd", "float64", _ops_behind(ir, "grad", ""))
    tol = Tol(tol.rtol, tol.atol * max(1.0, abs(base)))
    rows: list[Row] = []
    against = f"{ref}~finite differences"
    for leaf, g in grads.items():
        reason = fd_exempt(ir, leaf)
        if reason:
            report.notes.append(f"no finite-difference check for '{leaf}': {reason}")
            continue
        is_param = leaf in params
        values = params if is_param else inputs
        x0 = np.asarray(values[leaf], dtype=np.float64)

        def at(x: np.ndarray, leaf: str = leaf, is_param: bool = is_param) -> float:
            p = {**params, leaf: x} if is_param else params
            i = {**inputs, leaf: x} if not is_param else inputs
            return loss(p, i)

        node = _node_of(ir, "grad", leaf)
        u = rng.standard_normal(x0.shape)
        u /= max(float(np.linalg.norm(u)), 1e-300)
        numeric = (at(x0 + FD_EPS * u) - at(x0 - FD_EPS * u)) / (2 * FD_EPS)
        rows.append(compare("fd", leaf, against, float(np.vdot(g, u)), numeric, tol,
                            node=node, where=_where(ir, node), note="random direction"))
        if x0.size <= FULL_FD_MAX:
            jac = np.zeros_like(x0)
            for idx in np.ndindex(x0.shape):
                e = np.zeros_like(x0)
                e[idx] = FD_EPS
                jac[idx] = (at(x0 + e) - at(x0 - e)) / (2 * FD_EPS)
            rows.append(compare("fd", leaf, against, g, jac, tol, node=node,
                                where=_where(ir, node), note="every element"))
    return rows


def fd_exempt(ir: IR, leaf: str) -> str | None:
    """Why central differences cannot check ``leaf``'s gradient, or None.

    Two cases.  An op whose gradient is deliberately not the derivative of its forward (a
    straight-through estimator) says so with an ``fd_exempt`` attribute (the reason; a
    property when it depends on the attributes).  And a leaf that reaches the loss through
    an argument its op declares non-differentiable (``stop_gradient``, a loss's target, a
    REINFORCE surrogate's reward) moves the loss in a way its gradient leaves out by design.
    """
    for n in sorted(_between(ir, leaf)):
        node = ir.node(n)
        reason = getattr(node["attrs"], "fd_exempt", None) if node["kind"] == "op" else None
        if reason:
            return f"'{n}' ({node['op']}): {reason}"
    cuts = gradient_cuts(ir, leaf)
    if cuts:
        a, n = cuts[0]
        return (f"it reaches the loss through '{a}', an argument '{n}' ({ir.node(n).op}) "
                "declares non-differentiable")
    return None


def gradient_cuts(ir: IR, leaf: str) -> list[tuple[str, str]]:
    """``(argument, op node)`` where a value depending on ``leaf`` enters an argument its op
    declares non-differentiable on the way to the loss: there the gradient must stop."""
    reach = nx.descendants(ir.graph, leaf) | {leaf}
    out = []
    for n in sorted(_between(ir, leaf)):
        node = ir.node(n)
        if node["kind"] != "op":
            continue
        args = node["inputs"]
        n_state = len(node.get("state", []))
        flags = REGISTRY[node["op"]].differentiable(len(args) - n_state, node["n_inputs"])
        out += [(a, n) for a, flag in zip(args, flags) if a in reach and not flag]
    return out


def _between(ir: IR, leaf: str) -> set[str]:
    """Nodes on a path from ``leaf`` to a loss term."""
    up: set[str] = set()
    for lid, _ in ir.losses:
        up |= nx.ancestors(ir.graph, lid) | {lid}
    return (nx.descendants(ir.graph, leaf) | {leaf}) & up


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
    import graphspec as gs

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


def _message(e: BaseException) -> str:
    last = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(e).__name__}: {e}{where}"
