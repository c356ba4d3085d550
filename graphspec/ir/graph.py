"""The typed IR: a ``networkx.MultiDiGraph`` plus the spec-level facts backends need.

Node attributes (treat them as immutable; a pass returns new values):

``kind``    ``input`` | ``param`` | ``op`` | ``output``
``op``      op name (op nodes), else None
``attrs``   the op's validated attribute model (op nodes)
``inputs``  ordered list of argument node ids: the op's inputs, then its params, then state
``n_inputs`` how many of ``inputs`` are data inputs (the rest are params and state)
``state``   names of the state buffers among ``inputs`` (batch-norm running statistics)
``type``    :class:`TensorType` of the node's value
``src``     :class:`Location` of the YAML that defined it
``role``    ``graph`` | ``loss`` | ``metric`` (op nodes)
``block``   tuple of enclosing block names (for clusters in drawings)
``decl``    :class:`ParamDecl` (param nodes); ``trainable`` False for state buffers

Edges run from each argument to its consumer, keyed by argument position, so ``mul(x, x)``
has two edges and argument order never comes from edge order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from graphspec.errors import Location
from graphspec.ops.registry import TensorType


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
    spec: Any = None

    def node(self, nid: str) -> dict[str, Any]:
        return self.graph.nodes[nid]

    def type(self, nid: str) -> TensorType:
        return self.graph.nodes[nid]["type"]

    def op_nodes(self) -> list[str]:
        return [n for n in self.order if self.graph.nodes[n]["kind"] == "op"]

    def param_count(self) -> int:
        return sum(self.type(p).numel() for p in self.params)

    def flop_count(self, batch: int = 1) -> int:
        from graphspec.ir.counts import node_flops

        return sum(node_flops(self, n, batch) for n in self.op_nodes())

    @property
    def stochastic_nodes(self) -> list[str]:
        from graphspec.ops import REGISTRY

        return [n for n in self.op_nodes() if REGISTRY[self.node(n)["op"]].stochastic]
