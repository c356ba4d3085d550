"""Small IRs made from a bigger one or for one op: every op node made an output (a probe),
and one op alone, its arguments made leaves.

``graphspec verify`` uses both to localize a disagreement between backends (the value of
every node; each VJP checked alone); the conformance suite runs each op sample as a one-op
IR, through the interpreter and through each backend's generated module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import networkx as nx

from graphspec.ir.graph import IR
from graphspec.ir.node import InputNode, OpNode, OutputNode, ParamNode, add_node
from graphspec.ops import REGISTRY, TensorType
from graphspec.spec.expand import Role

TARGET = "__target"  # the input the one-op IR's ``mse`` loss compares the output with
LOSS = "__loss"
OUTPUT = "y"

Loss = Literal["mse", "self", "metric", "none"]


def one_op_ir(
    name: str,
    node: OpNode,
    leaves: Sequence[InputNode | ParamNode],
    *,
    loss: Loss,
    seed: int = 0,
) -> IR:
    """Op node ``node`` alone, reading ``leaves`` (one node per distinct id among its
    arguments: inputs, parameters, state buffers), its output named ``y``.  ``loss``: ``mse``
    adds the loss ``mse(node, __target)``, ``self`` makes the op itself the loss term (a loss
    op), ``metric`` a metric, ``none`` adds no loss."""
    g = nx.MultiDiGraph()
    for leaf in leaves:
        add_node(g, leaf)
    role: Role = "loss" if loss == "self" else "metric" if loss == "metric" else "graph"
    add_node(g, dataclasses.replace(node, role=role, weight=1.0))
    for k, arg in enumerate(node.inputs):
        g.add_edge(arg, node.id, key=k, arg=k)
    losses: list[tuple[str, float]] = [(node.id, 1.0)] if loss == "self" else []
    extra: list[str] = []
    if loss == "mse":
        add_node(g, InputNode(id=TARGET, type=node.type))
        mse = REGISTRY["mse"].attrs()
        add_node(
            g,
            OpNode(
                id=LOSS,
                op="mse",
                attrs=mse,
                inputs=(node.id, TARGET),
                n_inputs=2,
                type=TensorType(()),
                role="loss",
            ),
        )
        g.add_edge(node.id, LOSS, key=0, arg=0)
        g.add_edge(TARGET, LOSS, key=1, arg=1)
        losses, extra = [(LOSS, 1.0)], [TARGET]
    out = f"output:{OUTPUT}"
    add_node(g, OutputNode(id=out, inputs=(node.id,), type=node.type))
    g.add_edge(node.id, out, key=0, arg=0)
    params = [p for p in leaves if isinstance(p, ParamNode)]
    return IR(
        graph=g,
        name=name,
        seed=seed,
        order=list(nx.lexicographical_topological_sort(g)),
        inputs=[i.id for i in leaves if isinstance(i, InputNode)] + extra,
        params=[p.id for p in params if p.trainable],
        state=[p.id for p in params if not p.trainable],
        outputs={OUTPUT: node.id},
        losses=losses,
        metrics=[node.id] if loss == "metric" else [],
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
        add_node(g, OutputNode(id=oid, inputs=(nid,), type=ir.type(nid)))
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
