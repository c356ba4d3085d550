"""Finite differences: the reference backend's gradients against its own loss (float64)."""

from __future__ import annotations

import networkx as nx
import numpy as np

from graphspec.backend import Program
from graphspec.ir.graph import IR
from graphspec.ir.node import OpNode
from graphspec.verify.inputs import Arrays
from graphspec.verify.locate import tensor_node, where
from graphspec.verify.report import Report, Row, compare
from graphspec.verify.tolerances import FD_EPS, FULL_FD_MAX, fd_tolerance, ops_behind


def fd_rows(
    ir: IR, prog: Program, ref: str, params: Arrays, inputs: Arrays, noise: Arrays,
    grads: Arrays, rng: np.random.Generator, report: Report,
) -> list[Row]:
    """The reference's gradients against central differences of its own loss (float64): one
    random unit direction per tensor, and every element for tensors of <= FULL_FD_MAX."""

    def loss(p: Arrays, x: Arrays) -> float:
        return float(prog.evaluate(p, x, training=True, noise=noise).loss)

    base = loss(params, inputs)
    tol = fd_tolerance(ops_behind(ir, "grad", ""), base)
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

        node = tensor_node(ir, "grad", leaf)
        u = rng.standard_normal(x0.shape)
        u /= max(float(np.linalg.norm(u)), 1e-300)
        numeric = (at(x0 + FD_EPS * u) - at(x0 - FD_EPS * u)) / (2 * FD_EPS)
        rows.append(compare("fd", leaf, against, float(np.vdot(g, u)), numeric, tol,
                            node=node, where=where(ir, node), note="random direction"))
        if x0.size <= FULL_FD_MAX:
            jac = np.zeros_like(x0)
            for idx in np.ndindex(x0.shape):
                e = np.zeros_like(x0)
                e[idx] = FD_EPS
                jac[idx] = (at(x0 + e) - at(x0 - e)) / (2 * FD_EPS)
            rows.append(compare("fd", leaf, against, g, jac, tol, node=node,
                                where=where(ir, node), note="every element"))
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
        reason = getattr(node.attrs, "fd_exempt", None) if isinstance(node, OpNode) else None
        if reason:
            return f"'{n}' ({node.op}): {reason}"
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
        if isinstance(node, OpNode):
            out += [(a, n) for a, flag in zip(node.inputs, node.grad_flags)
                    if a in reach and not flag]
    return out


def _between(ir: IR, leaf: str) -> set[str]:
    """Nodes on a path from ``leaf`` to a loss term."""
    up: set[str] = set()
    for lid, _ in ir.losses:
        up |= nx.ancestors(ir.graph, lid) | {lid}
    return (nx.descendants(ir.graph, leaf) | {leaf}) & up
