"""Per-op conformance: run an op's samples through backends' kernels and compare.

Used by tests/ops/test_conformance.py (kept out of the core package: it imports
backends).  For one op sample it builds the positional arguments (inputs, then parameters,
then state), the keyword arguments (attributes, ``training``, ``noise``), and checks:

* the shape rule against the real output shape,
* numpy forward against torch forward,
* the numpy VJP against torch autograd with the same random cotangent,
* the numpy VJP against central finite differences, in one random direction
  (<g, J u> = <J^T g, u>) and, for small inputs, the full Jacobian.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphspec.ops import REGISTRY, OpDef, Sample, TensorType
from graphspec.ops.registry import Attrs
from graphspec.verify.report import Tol
from graphspec.verify.tolerances import FD_EPS, fd_tolerance, tolerance


@dataclass
class Case:
    """One op sample, ready to call: positional args, keywords, which args are differentiable."""

    opdef: OpDef
    attrs: Attrs
    args: list[np.ndarray]
    arg_names: list[str]
    kwargs: dict[str, Any]
    diff: list[bool]
    sample: Sample
    index: int
    types: list[TensorType] = field(default_factory=list)

    @property
    def id(self) -> str:
        note = f" ({self.sample.note})" if self.sample.note else ""
        return f"{self.opdef.name}[{self.index}]{note}"


def _type_of(a: np.ndarray) -> TensorType:
    kind = "int" if np.asarray(a).dtype.kind in "iub" else "float"
    return TensorType(tuple(np.shape(a)), kind)  # type: ignore[arg-type]


def cases(opdef: OpDef, seed: int = 0) -> Iterator[Case]:
    rng = np.random.default_rng(seed)
    for index, sample in enumerate(opdef.attrs.samples(rng)):
        attrs = opdef.attrs(**sample.attrs)
        args: list[np.ndarray] = []
        names: list[str] = []
        for inp in opdef.inputs:
            if inp.name not in sample.inputs:
                if inp.optional:
                    continue
                raise KeyError(f"sample {index} of '{opdef.name}' lacks input '{inp.name}'")
            value = sample.inputs[inp.name]
            values = list(value) if inp.variadic else [value]
            for v in values:
                args.append(np.asarray(v))
                names.append(inp.name)
        n_inputs = len(args)
        types = [_type_of(a) for a in args]
        decls = attrs.params(*types)
        states = attrs.state(*types)
        for pname in list(decls) + list(states):
            if pname not in sample.inputs:
                raise KeyError(f"sample {index} of '{opdef.name}' lacks parameter '{pname}'")
            args.append(np.asarray(sample.inputs[pname], dtype=np.float64))
            names.append(pname)
        kwargs = attrs.kernel_attrs()
        if opdef.uses_training:
            kwargs["training"] = sample.training
        if opdef.stochastic:
            nz = attrs.noise()
            if nz is not None:
                like = args[nz.like]
                if "noise" in sample.inputs:
                    kwargs["noise"] = np.asarray(sample.inputs["noise"], dtype=np.float64)
                elif nz.kind == "uniform":
                    kwargs["noise"] = rng.random(like.shape)
                else:
                    kwargs["noise"] = rng.standard_normal(like.shape)
        flags = opdef.grad_flags(len(args), n_inputs, len(states))
        if opdef.category == "metric":
            flags = [False] * len(args)
        diff = [f and np.asarray(a).dtype.kind == "f" for f, a in zip(flags, args)]
        yield Case(opdef, attrs, args, names, kwargs, diff, sample, index,
                   [_type_of(a) for a in args])


def numpy_forward(case: Case, args: list[np.ndarray] | None = None) -> Any:
    from graphspec_numpy.kernels import KERNELS

    out = KERNELS[case.opdef.name](*(case.args if args is None else args), **case.kwargs)
    return out[0] if case.opdef.has_state else out


def numpy_state(case: Case) -> tuple[np.ndarray, ...]:
    from graphspec_numpy.kernels import KERNELS

    out = KERNELS[case.opdef.name](*case.args, **case.kwargs)
    return tuple(out[1]) if case.opdef.has_state else ()


def numpy_vjp(case: Case, g: np.ndarray) -> tuple[Any, ...]:
    """The VJP called as generated code calls it: with its forward's residuals, and None for
    every argument it does not declare it reads (so a wrong declaration fails here)."""
    from graphspec_numpy import kernels

    out, res = kernels.forward(case.opdef.name, case.args, case.kwargs, save=True)
    y = out[0] if case.opdef.has_state else out
    grads = kernels.backward(case.opdef.name, g, y, case.args, case.kwargs, res)
    if len(grads) != len(case.args):
        raise AssertionError(
            f"{case.id}: VJP returned {len(grads)} gradients for {len(case.args)} arguments"
        )
    return tuple(grads)


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    from graphspec_numpy.kernels._prelude import unbroadcast as ub

    return ub(np.asarray(g), tuple(shape))


def torch_forward_and_grads(case: Case, g: np.ndarray | None) -> tuple[Any, list[Any], Any]:
    """Torch output, autograd gradients (with cotangent g) and new state, as numpy."""
    import torch

    from graphspec_torch.kernels import KERNELS

    targs = []
    for a, d in zip(case.args, case.diff):
        t = torch.tensor(a)
        if d:
            t.requires_grad_(True)
        targs.append(t)
    kw = dict(case.kwargs)
    if "noise" in kw:
        kw["noise"] = torch.tensor(kw["noise"])
    out = KERNELS[case.opdef.name](*targs, **kw)
    y, state = (out[0], out[1]) if case.opdef.has_state else (out, ())
    grads: list[Any] = [None] * len(targs)
    wrt = [i for i, d in enumerate(case.diff) if d]
    if g is not None and wrt and y.requires_grad:
        res = torch.autograd.grad(
            y, [targs[i] for i in wrt], grad_outputs=torch.tensor(g), allow_unused=True
        )
        for i, r in zip(wrt, res):
            grads[i] = np.zeros_like(case.args[i]) if r is None else r.detach().numpy()
    elif g is not None:  # an output detached from every input (a REINFORCE sample): zero
        for i in wrt:
            grads[i] = np.zeros_like(case.args[i])
    st = tuple(s.detach().numpy() for s in state)
    return y.detach().numpy(), grads, st


def directional_fd(case: Case, g: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """(<J^T g, u> from the VJP, <g, J u> from central differences) for a random u."""
    grads = numpy_vjp(case, g)
    us = [rng.standard_normal(a.shape) if d else None for a, d in zip(case.args, case.diff)]
    analytic = sum(
        float(np.vdot(unbroadcast(gr, a.shape), u))
        for gr, a, u in zip(grads, case.args, us) if u is not None
    )
    plus = [a + FD_EPS * u if u is not None else a for a, u in zip(case.args, us)]
    minus = [a - FD_EPS * u if u is not None else a for a, u in zip(case.args, us)]
    ju = (np.asarray(numpy_forward(case, plus)) - np.asarray(numpy_forward(case, minus))) / (
        2 * FD_EPS
    )
    return analytic, float(np.vdot(g, ju))


def full_jacobian_fd(
    case: Case, g: np.ndarray, max_elems: int = 64
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Element-wise central differences of <g, f>: (arg name, the VJP's gradient, the
    differences) per differentiable argument of at most ``max_elems`` elements."""
    grads = numpy_vjp(case, g)
    out = []
    for i, (a, d) in enumerate(zip(case.args, case.diff)):
        if not d or a.size > max_elems:
            continue
        analytic = unbroadcast(grads[i], a.shape)
        numeric = np.zeros_like(a, dtype=np.float64)
        for idx in np.ndindex(a.shape):
            args = [x.copy() for x in case.args]
            args[i][idx] += FD_EPS
            fp = float(np.vdot(g, numpy_forward(case, args)))
            args[i][idx] -= 2 * FD_EPS
            fm = float(np.vdot(g, numpy_forward(case, args)))
            numeric[idx] = (fp - fm) / (2 * FD_EPS)
        out.append((case.arg_names[i], analytic, numeric))
    return out


def missing_pieces(opdef: OpDef) -> list[str]:
    """What an op lacks: samples, a numpy kernel or VJP, a torch kernel."""
    from graphspec_numpy.kernels import KERNELS, VJPS

    try:
        from graphspec_torch.kernels import KERNELS as TORCH
    except ImportError:  # pragma: no cover - torch is a dependency
        TORCH = {}
    problems = []
    if not list(opdef.attrs.samples(np.random.default_rng(0))):
        problems.append("samples")
    if opdef.name not in KERNELS:
        problems.append("numpy kernel")
    needs_vjp = opdef.category != "metric" and (
        any(i.differentiable for i in opdef.inputs) or opdef.differentiable_params
    )
    if needs_vjp and opdef.name not in VJPS and _has_differentiable_case(opdef):
        problems.append("numpy VJP")
    if opdef.name not in TORCH:
        problems.append("torch kernel")
    if opdef.attrs.infer is Attrs.infer:
        problems.append("shape rule")
    return problems


def _has_differentiable_case(opdef: OpDef) -> bool:
    try:
        return any(any(c.diff) for c in cases(opdef))
    except Exception:
        return True


def all_cases(filter_fn: Callable[[OpDef], bool] = lambda d: True) -> list[Case]:
    out: list[Case] = []
    for name in sorted(REGISTRY):
        if filter_fn(REGISTRY[name]):
            out.extend(cases(REGISTRY[name]))
    return out


# ---- dtypes and per-op tolerances --------------------------------------------------------
# The numbers live in graphspec.verify.tolerances, the table verify uses too; an op loosens
# them for itself with a ``tolerances`` class attribute next to its definition, giving the
# reason.


def tol(case: Case, kind: str, dtype: str = "float64") -> Tol:
    """The tolerance (``.rtol``, ``.atol``) for ``kind`` (forward, grad) of this case."""
    return tolerance(kind, dtype, [case.attrs])


def fd_tol(case: Case, value: float) -> Tol:
    """The finite-difference tolerance of this case, for ``<g, f>`` of value ``value``: the
    rule verify applies to a loss."""
    return fd_tolerance([case.attrs], value)


def cast_case(case: Case, dtype: str) -> Case:
    """The case with its float arguments and noise in ``dtype`` (integer arguments as they are)."""
    import dataclasses

    dt = np.dtype(dtype)

    def cast(a: Any) -> np.ndarray:
        a = np.asarray(a)
        return a.astype(dt) if a.dtype.kind == "f" else a

    kwargs = dict(case.kwargs)
    if "noise" in kwargs:
        kwargs["noise"] = cast(kwargs["noise"])
    return dataclasses.replace(case, args=[cast(a) for a in case.args], kwargs=kwargs)
