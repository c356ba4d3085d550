"""Small IRs made from a bigger one or for one op: every op node made an output (a probe),
and one op alone, its arguments made leaves.

``graphspec verify`` uses both to localize a disagreement between backends (the value of
every node; each VJP checked alone); the conformance suite runs each op sample as a one-op
IR, through the interpreter and through each backend's generated module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import networkx as nx

from graphspec.errors import Location
from graphspec.ir.graph import IR
from graphspec.ops import REGISTRY, TensorType
from graphspec.ops.registry import Attrs, ParamDecl

TARGET = "__target"  # the input the one-op IR's ``mse`` loss compares the output with
LOSS = "__loss"
OUTPUT = "y"


@dataclass(frozen=True)
class Arg:
    """One argument of the op: an input (with or without a gradient), a parameter or a
    state buffer.  A parameter or buffer keeps the declaration it had (``decl``, ``init``)."""

    id: str
    type: TensorType
    kind: Literal["input", "param", "state"]
    differentiable: bool = False  # inputs only: whether it gets a gradient
    decl: ParamDecl | None = None
    init: str | dict[str, Any] = "zeros"


def one_op_ir(
    name: str,
    nid: str,
    op: str,
    attrs: Attrs,
    args: Sequence[Arg],
    n_inputs: int,
    y_type: TensorType,
    *,
    loss: Literal["mse", "self", "metric", "none"],
    seed: int = 0,
    src: Location | None = None,
) -> IR:
    """Op ``op`` alone as node ``nid``, applied to ``args`` (positional order; an id given
    twice is one leaf read twice), its output named ``y``.  ``loss``: ``mse`` adds the loss
    ``mse(nid, __target)``, ``self`` makes the op itself the loss term (a loss op),
    ``metric`` makes it a metric, ``none`` adds no loss."""
    g = nx.MultiDiGraph()
    ids = [a.id for a in args]
    leaves = list({a.id: a for a in args}.values())
    for a in leaves:
        if a.kind == "input":
            g.add_node(
                a.id,
                kind="input",
                op=None,
                inputs=[],
                type=a.type,
                src=None,
                block=(),
                cluster=(),
                differentiable=a.differentiable,
            )
        else:
            g.add_node(
                a.id,
                kind="param",
                op=None,
                inputs=[],
                type=a.type,
                src=None,
                block=(),
                cluster=(),
                decl=a.decl,
                init=a.init,
                trainable=a.kind == "param",
                owner=nid,
            )
    role = {"self": "loss", "metric": "metric"}.get(loss, "graph")
    g.add_node(
        nid,
        kind="op",
        op=op,
        attrs=attrs,
        inputs=ids,
        n_inputs=n_inputs,
        state=[a.id for a in args if a.kind == "state"],
        type=y_type,
        src=src,
        role=role,
        block=(),
        cluster=(),
        weight=1.0,
    )
    for k, arg in enumerate(ids):
        g.add_edge(arg, nid, key=k, arg=k)
    losses: list[tuple[str, float]] = [(nid, 1.0)] if loss == "self" else []
    extra: list[str] = []
    if loss == "mse":
        g.add_node(
            TARGET,
            kind="input",
            op=None,
            inputs=[],
            type=y_type,
            src=None,
            block=(),
            cluster=(),
            differentiable=False,
        )
        g.add_node(
            LOSS,
            kind="op",
            op="mse",
            attrs=REGISTRY["mse"].attrs(),
            inputs=[nid, TARGET],
            n_inputs=2,
            state=[],
            type=TensorType(()),
            src=None,
            role="loss",
            block=(),
            cluster=(),
            weight=1.0,
        )
        g.add_edge(nid, LOSS, key=0, arg=0)
        g.add_edge(TARGET, LOSS, key=1, arg=1)
        losses, extra = [(LOSS, 1.0)], [TARGET]
    out = f"output:{OUTPUT}"
    g.add_node(
        out, kind="output", op=None, inputs=[nid], type=y_type, src=None, block=(), cluster=()
    )
    g.add_edge(nid, out, key=0, arg=0)
    return IR(
        graph=g,
        name=name,
        seed=seed,
        order=list(nx.lexicographical_topological_sort(g)),
        inputs=[a.id for a in leaves if a.kind == "input"] + extra,
        params=[a.id for a in leaves if a.kind == "param"],
        state=[a.id for a in leaves if a.kind == "state"],
        outputs={OUTPUT: nid},
        losses=losses,
        metrics=[nid] if loss == "metric" else [],
        spec=None,
    )


def with_outputs(ir: IR, nodes: Sequence[str]) -> tuple[IR, dict[str, str]]:
    """``ir`` with each of ``nodes`` also an output; returns it and each node's output name."""
    g = ir.graph.copy()
    outputs = dict(ir.outputs)
    names: dict[str, str] = {}
    for i, nid in enumerate(nodes):
        name = f"__value_{i}"
        oid = f"output:{name}"
        g.add_node(
            oid,
            kind="output",
            op=None,
            inputs=[nid],
            type=ir.type(nid),
            src=None,
            block=(),
            cluster=(),
        )
        g.add_edge(nid, oid, key=0, arg=0)
        outputs[name], names[nid] = nid, name
    probe = IR(
        graph=g,
        name=ir.name,
        seed=ir.seed,
        order=list(nx.lexicographical_topological_sort(g)),
        inputs=list(ir.inputs),
        params=list(ir.params),
        state=list(ir.state),
        outputs=outputs,
        losses=list(ir.losses),
        metrics=list(ir.metrics),
        spec=ir.spec,
    )
    return probe, names
