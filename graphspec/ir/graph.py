"""The typed IR: a ``networkx.MultiDiGraph`` of typed nodes plus the spec-level facts
backends need.

Each graph node carries one attribute, ``node``: a frozen :mod:`graphspec.ir.node` dataclass
(an input, a parameter or state buffer, an op, or an output).  Edges run from each argument
to its consumer, keyed by argument position, so ``mul(x, x)`` has two edges and argument
order never comes from edge order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from graphspec.errors import Location
from graphspec.ir.node import Node, OpNode, ParamNode, node_of
from graphspec.ops.registry import TensorType
from graphspec.spec.models import Spec


@dataclass
class IR:
    graph: nx.MultiDiGraph
    name: str
    seed: int
    order: list[str]  # every node, lexicographical topological order
    inputs: list[str]
    params: list[str]  # trainable parameters, in creation order
    state: list[str]  # non-trainable buffers
    outputs: dict[str, str]  # output name -> node id
    losses: list[tuple[str, float]]  # (loss op node id, coefficient)
    metrics: list[str]
    warnings: list[tuple[str, Location | None]] = field(default_factory=list)
    spec: Spec | None = None

    def node(self, nid: str) -> Node:
        return node_of(self.graph, nid)

    def op(self, nid: str) -> OpNode:
        """The op node ``nid`` (a caller that knows ``nid`` is an op, from ``op_nodes()`` say)."""
        node = self.node(nid)
        if not isinstance(node, OpNode):
            raise TypeError(f"IR node '{nid}' is a {node.kind} node, not an op")
        return node

    def param(self, nid: str) -> ParamNode:
        """The parameter or state buffer ``nid``."""
        node = self.node(nid)
        if not isinstance(node, ParamNode):
            raise TypeError(f"IR node '{nid}' is a {node.kind} node, not a parameter")
        return node

    def type(self, nid: str) -> TensorType:
        return self.node(nid).type

    def op_nodes(self) -> list[str]:
        return [n for n in self.order if self.node(n).kind == "op"]

    def param_count(self) -> int:
        return sum(self.type(p).numel() for p in self.params)

    @property
    def stochastic_nodes(self) -> list[str]:
        return [n for n in self.op_nodes() if self.op(n).opdef.stochastic]
