"""Which node's gradient is wrong?  Each op on the gradient path, checked alone.

When a whole-graph gradient disagrees, the wrong VJP can be anywhere upstream of it.  Here
every op node between the differentiable leaves and the loss is cut out into a one-op IR:
its arguments (at the values they take in the real graph, the same noise) become inputs,
and its output feeds ``mse`` against the target ``y - g * n / 2``, so that the op's
output receives exactly the cotangent ``g`` (dL/dy = 2 (y - t) / n).  Each backend's
gradient of that IR is then that one op's VJP; where backends disagree (or, with a single
backend, the reference disagrees with finite differences), the row names the node and its
spec location.  Only failing nodes are added to the report.

This uses nothing but the Program interface, so it works for any backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import networkx as nx
import numpy as np

from graphspec.ir.graph import IR
from graphspec.ir.node import InputNode, OpNode, OutputNode, ParamNode, add_node
from graphspec.ir.plan import Plan
from graphspec.ops import REGISTRY, TensorType
from graphspec.verify.finite_differences import gradient_cuts
from graphspec.verify.inputs import Arrays, bind_dims
from graphspec.verify.locate import message, where
from graphspec.verify.report import Report, Row, compare
from graphspec.verify.tolerances import FD_EPS, tolerance

TARGET = "__blame_target"
LOSS = "__blame_loss"
FD_MAX_ELEMS = 512


def blame_rows(
    ir: IR, backends: Sequence[str], ref: str, params: Arrays, inputs: Arrays, noise: Arrays,
    dtype: str, device: str, *, fd_only: bool, report: Report,
) -> list[Row]:
    import graphspec as gs

    if "mse" not in REGISTRY:
        report.notes.append("no per-node localization: the registry has no 'mse' op")
        return []
    plan = Plan(ir)
    path = [n for n in ir.op_nodes() if n in plan.grad_path()]
    try:
        values = node_values(ir, path, ref, params, inputs, noise, dtype, device)
    except Exception as e:
        report.notes.append(f"no per-node localization: {message(e)}")
        return []
    values = {**params, **inputs, **values}
    dims = bind_dims(ir, inputs)
    rng = np.random.default_rng(0)
    rows: list[Row] = []
    skipped: list[str] = []
    for nid in reversed(path):
        mini, mini_params, mini_inputs, diff = one_op_ir(ir, nid, values, dims)
        y = np.asarray(values[nid], dtype=np.float64)
        # |g| ~ 1/n keeps the one-op loss near 1/4, so finite differences of it stay exact.
        g = rng.standard_normal(y.shape) / max(y.size, 1)
        mini_inputs[TARGET] = y - g * (y.size / 2.0)
        mini_noise = {nid: noise[nid]} if nid in noise else {}
        tol = tolerance("grad", dtype, [ir.op(nid).attrs])
        loc = where(ir, nid)
        label = f"{nid} ({ir.node(nid).op})"
        try:
            grads = {}
            for name in (backends[:1] if fd_only else backends):
                prog = gs.compile(mini, name, dtype=dtype, device=device)
                grads[name] = prog.loss_and_grads(mini_params, mini_inputs,
                                                  noise=mini_noise).grads
            if fd_only:
                grads["finite differences"] = _fd_grads(
                    gs.compile(mini, ref), mini_params, mini_inputs, mini_noise, diff, FD_EPS)
                tol = tolerance("fd", "float64", [ir.op(nid).attrs])
        except Exception as e:
            skipped.append(f"{label}: {message(e)}")
            continue
        for other, og in grads.items():
            if other == ref:
                continue
            for arg in diff:
                if arg not in og and (arg not in grads[ref] or fd_only):
                    continue  # no gradient at all, or too big to difference element-wise
                row = compare("vjp", f"{label} d/d{arg}", f"{other}~{ref}", og.get(arg),
                              grads[ref].get(arg), tol, node=nid, where=loc)
                if not row.ok:
                    rows.append(row)
    if len(skipped) == len(path):
        report.notes.append(f"no per-node localization: {skipped[0] if skipped else 'no ops'}")
    elif not rows:
        report.notes += _cut_hints(ir, report)
        report.notes.append(f"each of the {len(path) - len(skipped)} ops on the gradient path "
                            "checked alone agrees: look at how the program assembles the graph "
                            "or hands back its results" + (
                                ", or at the ops that could not be checked alone"
                                if skipped else ""))
    report.notes += [f"could not check {s} alone" for s in skipped if len(skipped) < len(path)]
    return rows


def _cut_hints(ir: IR, report: Report) -> list[str]:
    """For each failing gradient that also feeds a non-differentiable argument: the likely
    cause, a backend letting gradient through where the op declares none."""

    hints = []
    for leaf in dict.fromkeys(r.tensor for r in report.failures if r.check == "grad"):
        cuts = gradient_cuts(ir, leaf) if leaf in ir.graph else []
        if cuts:
            a, n = cuts[0]
            hints.append(
                f"'{leaf}' also reaches '{n}' ({ir.node(n).op}) through '{a}', an argument "
                "declared non-differentiable: a backend that lets gradient through it there "
                "disagrees with the reference")
    return hints


def value_rows(
    ir: IR, backends: Sequence[str], ref: str, params: Arrays, inputs: Arrays, noise: Arrays,
    dtype: str, device: str, *, report: Report,
) -> list[Row]:
    """When an output or a loss disagrees: every op node's value on every backend (training
    mode, same noise), reporting each node that disagrees although its arguments agree."""

    nodes = ir.op_nodes()
    try:
        values = {b: node_values(ir, nodes, b, params, inputs, noise, dtype, device)
                  for b in backends}
    except Exception as e:
        report.notes.append(f"no per-node localization of values: {message(e)}")
        return []
    rows: list[Row] = []
    for other in backends:
        if other == ref:
            continue
        wrong: set[str] = set()
        for nid in nodes:
            node = ir.op(nid)
            row = compare("value", f"{nid} ({node.op})", f"{other}~{ref}",
                          values[other][nid], values[ref][nid],
                          tolerance("forward", dtype, [node.attrs]), node=nid,
                          where=where(ir, nid))
            if row.ok:
                continue
            if not wrong.intersection(node.inputs):
                rows.append(row)  # where it starts; what follows from it is not news
            wrong.add(nid)
    return rows


def node_values(
    ir: IR, nodes: list[str], backend: str, params: Arrays, inputs: Arrays, noise: Arrays,
    dtype: str, device: str,
) -> Arrays:
    """The value of each of ``nodes`` in a training-mode forward pass on ``backend``: the IR
    with every one of them made an output."""
    import graphspec as gs

    g = ir.graph.copy()
    outputs = dict(ir.outputs)
    for i, nid in enumerate(nodes):
        name = f"__value_{i}"
        oid = f"output:{name}"
        add_node(g, OutputNode(id=oid, inputs=(nid,), type=ir.type(nid)))
        g.add_edge(nid, oid, key=0, arg=0)
        outputs[name] = nid
    probe = IR(graph=g, name=ir.name, seed=ir.seed,
               order=list(nx.lexicographical_topological_sort(g)), inputs=list(ir.inputs),
               params=list(ir.params), state=list(ir.state), outputs=outputs,
               losses=list(ir.losses), metrics=list(ir.metrics), spec=ir.spec)
    out = gs.compile(probe, backend, dtype=dtype, device=device).forward(
        params, inputs, training=True, noise=noise)
    return {nid: np.asarray(out[f"__value_{i}"]) for i, nid in enumerate(nodes)}


def one_op_ir(
    ir: IR, nid: str, values: Arrays, dims: dict[str, int]
) -> tuple[IR, Arrays, Arrays, list[str]]:
    """Node ``nid`` alone, its output into ``mse`` against TARGET.  Its parameters and state
    buffers stay parameters and state (a backend keeps them in its own way); every other
    argument becomes an input.  Returns the IR, its parameters and inputs (by node id), and
    the arguments whose gradient the op defines."""
    node = ir.op(nid)
    args = node.inputs
    flags = node.grad_flags
    g = nx.MultiDiGraph()
    params: Arrays = {}
    inputs: Arrays = {}
    diff: list[str] = []
    for a in dict.fromkeys(args):  # ``mul(x, x)``: one value read twice
        value = np.asarray(values[a])
        kind = ir.type(a).dtype
        differentiable = kind == "float" and any(f for b, f in zip(args, flags) if b == a)
        arg = ir.node(a)
        if isinstance(arg, ParamNode):
            add_node(g, arg)
            params[a] = value
            differentiable = differentiable and a in ir.params
        else:
            add_node(g, InputNode(id=a, type=TensorType(value.shape, kind),
                                  differentiable=differentiable))
            inputs[a] = value
        if differentiable:
            diff.append(a)
    y_type = TensorType(tuple(d if isinstance(d, int) else dims.get(d, 1)
                              for d in ir.type(nid).shape), ir.type(nid).dtype)
    add_node(g, dataclasses.replace(node, type=y_type, role="graph"))
    for k, a in enumerate(args):
        g.add_edge(a, nid, key=k, arg=k)
    add_node(g, InputNode(id=TARGET, type=y_type))
    add_node(g, OpNode(
        id=LOSS, op="mse", attrs=REGISTRY["mse"].attrs(), inputs=(nid, TARGET), n_inputs=2,
        type=TensorType(()), role="loss",
    ))
    g.add_edge(nid, LOSS, key=0, arg=0)
    g.add_edge(TARGET, LOSS, key=1, arg=1)
    add_node(g, OutputNode(id="output:y", inputs=(nid,), type=y_type))
    g.add_edge(nid, "output:y", key=0, arg=0)
    mini = IR(graph=g, name=f"{ir.name}_{nid}", seed=ir.seed,
              order=list(nx.lexicographical_topological_sort(g)),
              inputs=list(inputs) + [TARGET],
              params=[a for a in params if a in ir.params],
              state=[a for a in params if a in ir.state], outputs={"y": nid},
              losses=[(LOSS, 1.0)], metrics=[], spec=None)
    return mini, params, inputs, diff


def _fd_grads(
    prog: Any, params: Arrays, inputs: Arrays, noise: Arrays, diff: list[str], eps: float
) -> Arrays:
    """Element-wise central differences of the one-op loss: the op's Jacobian contracted
    with g, to compare with its VJP."""
    out: Arrays = {}
    for a in diff:
        is_param = a in params
        x0 = np.asarray(params[a] if is_param else inputs[a], dtype=np.float64)
        if x0.size > FD_MAX_ELEMS:
            continue  # too costly element by element; left out, not reported as wrong

        def loss(x: np.ndarray, a: str = a, is_param: bool = is_param) -> float:
            p = {**params, a: x} if is_param else params
            i = inputs if is_param else {**inputs, a: x}
            return float(prog.evaluate(p, i, training=True, noise=noise).loss)

        jac = np.zeros_like(x0)
        for idx in np.ndindex(x0.shape):
            e = np.zeros_like(x0)
            e[idx] = eps
            jac[idx] = (loss(x0 + e) - loss(x0 - e)) / (2 * eps)
        out[a] = jac
    return out
