"""Per-op conformance: run an op's samples through backends' kernels and compare.

Used by tests/ops/test_conformance.py (kept out of the core package: it imports
backends).  For one op sample it builds the positional arguments (inputs, then parameters,
then state), the keyword arguments (attributes, ``training``, ``noise``) and the sample as a
one-op IR (``graphspec.ir.one_op``), run in-process by the core's interpreter over the numpy
kernel table (the kernels called exactly as generated code calls them), and checks:

* the shape rule against the real output shape,
* numpy forward against torch forward,
* the numpy VJP against torch autograd with the same random cotangent,
* the numpy VJP against central finite differences, in one random direction
  (<g, J u> = <J^T g, u>) and, for small inputs, the full Jacobian,
* the module each backend generates for the one-op IR, written to a file and imported from
  it, against the interpreter: outputs, loss terms, metrics, gradients and new state
  (:func:`generated_program`, :func:`compare_results`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphspec.backend import Arrays, CompileOptions, LossResult
from graphspec.ir.graph import IR
from graphspec.ir.interpret import Interpreter
from graphspec.ir.node import InputNode, OpNode, ParamNode
from graphspec.ir.one_op import TARGET, Loss, one_op_ir
from graphspec.ops import REGISTRY, OpDef, Sample, TensorType
from graphspec.ops.registry import Attrs, ParamDecl
from graphspec.verify.report import Tol
from graphspec.verify.tolerances import FD_EPS, fd_tolerance, tolerance
from graphspec_numpy import codegen as numpy_codegen
from graphspec_numpy import kernels
from graphspec_numpy.program import NumpyProgram

NODE = "result"  # the op's node in a case's one-op IR


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
    ids: list[str] = field(default_factory=list)  # each argument's node id in the one-op IR
    kinds: list[str] = field(default_factory=list)  # each argument's kind: input, param, state
    decls: dict[str, ParamDecl] = field(default_factory=dict)  # of parameters and buffers

    @property
    def id(self) -> str:
        note = f" ({self.sample.note})" if self.sample.note else ""
        return f"{self.opdef.name}[{self.index}]{note}"

    @functools.cached_property
    def ir(self) -> IR:
        """The sample as a one-op IR: the op's output ``y`` into ``mse`` against an input
        ``__target`` when it has a float gradient to give, else itself the loss term (a loss
        op), a metric (a metric op) or just an output."""
        y_type = self.attrs.infer(*self.types)
        loss: Loss
        if self.opdef.category == "loss":
            loss = "self"
        elif self.opdef.category == "metric":
            loss = "metric"
        else:
            loss = "mse" if y_type.dtype == "float" and any(self.diff) else "none"
        leaves: list[InputNode | ParamNode] = [
            InputNode(id=i, type=t, differentiable=d) if k == "input" else ParamNode(
                id=i, type=t, decl=self.decls[i], init=self.decls[i].init,
                trainable=k == "param", owner=NODE)
            for i, t, k, d in zip(self.ids, self.types, self.kinds, self.diff)
        ]
        node = OpNode(id=NODE, op=self.opdef.name, attrs=self.attrs, inputs=tuple(self.ids),
                      n_inputs=self.kinds.count("input"), type=y_type,
                      state=tuple(i for i, k in zip(self.ids, self.kinds) if k == "state"))
        return one_op_ir(f"{self.opdef.name}_{self.index}", node, leaves, loss=loss)

    @functools.cached_property
    def interpreter(self) -> Interpreter:
        return Interpreter(self.ir, kernels)

    def leaves(self, args: list[np.ndarray] | None = None) -> tuple[Arrays, Arrays]:
        """(params, inputs) of the one-op IR: the arguments (``args`` in place of the
        sample's) by node id."""
        args = self.args if args is None else args
        params = {i: a for i, k, a in zip(self.ids, self.kinds, args) if k != "input"}
        inputs = {i: a for i, k, a in zip(self.ids, self.kinds, args) if k == "input"}
        return params, inputs

    @property
    def noise(self) -> Arrays:
        return {NODE: self.kwargs["noise"]} if "noise" in self.kwargs else {}

    def run(self, args: list[np.ndarray] | None = None, save: bool = False) -> Any:
        """The interpreter's forward walk of the one-op IR (``interpret.Values``)."""
        params, inputs = self.leaves(args)
        return self.interpreter.run(params, inputs, [NODE], training=self.sample.training,
                                    noise=self.noise, save=self._path if save else ())

    @property
    def _path(self) -> set[str]:
        """Where gradients flow: the op node and its differentiable arguments."""
        return {NODE, *(i for i, d in zip(self.ids, self.diff) if d)}


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
        ids = [n if names.count(n) == 1 else f"{n}{k}" for k, n in enumerate(names)]
        types = [_type_of(a) for a in args]
        decls = attrs.params(*types)
        states = attrs.state(*types)
        for pname in list(decls) + list(states):
            if pname not in sample.inputs:
                raise KeyError(f"sample {index} of '{opdef.name}' lacks parameter '{pname}'")
            args.append(np.asarray(sample.inputs[pname], dtype=np.float64))
            names.append(pname)
            ids.append(pname)
        kinds = ["input"] * n_inputs + ["param"] * len(decls) + ["state"] * len(states)
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
        flags = opdef.grad_flags(len(args), n_inputs, len(states), attrs)
        if opdef.category == "metric":
            flags = [False] * len(args)
        diff = [f and np.asarray(a).dtype.kind == "f" for f, a in zip(flags, args)]
        yield Case(opdef, attrs, args, names, kwargs, diff, sample, index,
                   [_type_of(a) for a in args], ids, kinds, {**decls, **states})


def numpy_forward(case: Case, args: list[np.ndarray] | None = None) -> Any:
    return case.run(args).values[NODE]


def numpy_state(case: Case) -> tuple[np.ndarray, ...]:
    if not case.opdef.has_state:  # a constant is a buffer nothing updates
        return ()
    state = case.run().state
    return tuple(state[i] for i, k in zip(case.ids, case.kinds) if k == "state")


def numpy_vjp(case: Case, g: np.ndarray) -> tuple[Any, ...]:
    """The gradient of each argument for the cotangent ``g`` of the op's output (None for an
    argument without one), by the interpreter's backward pass: the VJP called as generated
    code calls it, with its forward's residuals and None for every argument it does not
    declare it reads (so a wrong declaration fails here)."""
    fwd = case.run(save=True)
    cot = case.interpreter.backward(fwd, {NODE: g}, case._path, case.sample.training)
    return tuple(cot.get(i) if d else None for i, d in zip(case.ids, case.diff))


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return kernels.unbroadcast(np.asarray(g), tuple(shape))


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
    try:
        from graphspec_torch.kernels import KERNELS as TORCH  # deferred: torch is heavy
    except ImportError:  # pragma: no cover - torch is a dependency
        TORCH = {}
    problems = []
    if not list(opdef.attrs.samples(np.random.default_rng(0))):
        problems.append("samples")
    if opdef.name not in kernels.KERNELS:
        problems.append("numpy kernel")
    needs_vjp = opdef.category != "metric" and (
        any(i.differentiable for i in opdef.inputs) or opdef.differentiable_params
    )
    if needs_vjp and opdef.name not in kernels.VJPS and _has_differentiable_case(opdef):
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
    dt = np.dtype(dtype)

    def cast(a: Any) -> np.ndarray:
        a = np.asarray(a)
        return a.astype(dt) if a.dtype.kind == "f" else a

    kwargs = dict(case.kwargs)
    if "noise" in kwargs:
        kwargs["noise"] = cast(kwargs["noise"])
    return dataclasses.replace(case, args=[cast(a) for a in case.args], kwargs=kwargs)


# ---- the generated text ------------------------------------------------------------------
# Each backend's code generator writes a module for a case's one-op IR; imported from that
# file and run through the backend's Program, it must compute what the interpreter does. A
# kernel that calls a helper the generated module lacks fails here with its NameError.


def covering(all_: list[Case]) -> list[Case]:
    """Per op, the cases that first cover an option: a value of a string or boolean
    attribute, a numeric attribute being set, the training flag, a set of inputs; each op
    and option once, not every combination."""

    def option(v: Any) -> Any:
        return v if v is None or isinstance(v, (str, bool)) else "set"

    seen: set[tuple[Any, ...]] = set()
    out: list[Case] = []
    for c in all_:
        op = c.opdef.name
        features = {(op, "attr", k, option(v)) for k, v in c.sample.attrs.items()}
        features |= {(op, "training", c.sample.training), (op, "inputs", *sorted(c.sample.inputs))}
        if not features <= seen:
            out.append(c)
            seen |= features
    return out


def loss_leaves(case: Case) -> tuple[Arrays, Arrays]:
    """(params, inputs) of the case's one-op IR, with a fixed random ``__target``."""
    params, inputs = case.leaves()
    if TARGET in case.ir.inputs:
        y = np.asarray(numpy_forward(case))
        inputs[TARGET] = np.random.default_rng(3).standard_normal(y.shape)
    return params, inputs


def generated_program(case: Case, backend: str, directory: Path) -> Any:
    """The backend's Program running the module its code generator writes for the case's
    one-op IR, written to ``directory`` and imported from that file."""
    generate, program = numpy_codegen.generate, NumpyProgram
    if backend == "torch":
        from graphspec_torch import codegen as generate_torch  # deferred: torch is heavy
        from graphspec_torch.program import TorchProgram  # deferred: torch is heavy

        generate, program = generate_torch.generate, TorchProgram
    path = directory / f"{case.ir.name}_{backend}.py"
    path.write_text(generate(case.ir))
    spec = importlib.util.spec_from_file_location(f"generated_{case.ir.name}_{backend}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return program(case.ir, CompileOptions(dtype="float64", device="cpu"), module=module)


def results(program: Any, case: Case) -> tuple[Arrays, LossResult, LossResult]:
    """(outputs, evaluate, loss_and_grads) of a Program or the interpreter on the case,
    in the sample's mode with its noise."""
    params, inputs = loss_leaves(case)
    kw = {"training": case.sample.training, "noise": case.noise}
    return (program.forward(params, inputs, **kw), program.evaluate(params, inputs, **kw),
            program.loss_and_grads(params, inputs, **kw))


def compare_results(case: Case, what: str, got: tuple[Any, ...], ref: tuple[Any, ...]) -> None:
    """Outputs, loss terms, metrics, new state and gradients agree within the tolerance
    table (``graphspec.verify.tolerance``) for the case's op."""
    fwd, grad = tol(case, "forward"), tol(case, "grad")
    (out, ev, lg), (r_out, r_ev, r_lg) = got, ref
    pairs = [(f"output {k}", out[k], r_out[k], fwd) for k in r_out]
    pairs += [("loss", lg.loss, r_lg.loss, fwd)]
    pairs += [(f"loss term {k}", lg.terms[k], v, fwd) for k, v in r_lg.terms.items()]
    pairs += [(f"metric {k}", ev.metrics[k], v, fwd) for k, v in r_ev.metrics.items()]
    pairs += [(f"new state {k}", lg.state[k], v, fwd) for k, v in r_lg.state.items()]
    pairs += [(f"gradient of {k}", lg.grads[k], v, grad) for k, v in r_lg.grads.items()]
    assert set(lg.grads) == set(r_lg.grads), f"{case.id}: {what}: gradients of {set(lg.grads)}"
    for name, a, b, t in pairs:
        np.testing.assert_allclose(np.asarray(a, dtype=np.float64),
                                   np.asarray(b, dtype=np.float64), rtol=t.rtol, atol=t.atol,
                                   err_msg=f"{case.id}: {what}: {name}")
