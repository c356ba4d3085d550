"""IR nodes: one frozen dataclass per kind of node, kept in the graph as ``g.nodes[nid]["node"]``.

There is a class per kind (:class:`InputNode`, :class:`ParamNode`, :class:`OpNode`,
:class:`OutputNode`) rather than one class with optional fields, so that the type checker
knows an op node has ``attrs`` and a parameter has ``decl`` without a None check at every
read; :data:`Node` is their union, narrowed by ``isinstance`` or by ``node.kind == "op"``.
Fields every kind has: ``id``, ``kind``, ``op`` (None but on op nodes), ``inputs`` (argument
node ids: an op's data inputs, then its parameters, then its state buffers), ``type``,
``src`` (the YAML that defined it), ``block`` (enclosing block names) and ``cluster``
(enclosing block instances, for drawings).

Nodes never change: a pass that gives a node new facts puts a new node in its place
(``dataclasses.replace``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import networkx as nx

from graphspec.errors import Location
from graphspec.ops import REGISTRY, OpDef
from graphspec.ops.registry import Attrs, ParamDecl, TensorType
from graphspec.spec.expand import Role


@dataclass(frozen=True, slots=True)
class InputNode:
    """A model input (``inputs:`` in the spec)."""

    id: str
    type: TensorType
    src: Location | None = None
    differentiable: bool = False  # a float input declared differentiable: it gets a gradient
    kind: ClassVar[Literal["input"]] = "input"
    op: ClassVar[None] = None
    inputs: ClassVar[tuple[str, ...]] = ()
    block: tuple[str, ...] = ()
    cluster: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParamNode:
    """A parameter an op creates, or (``trainable`` False) a state buffer it keeps."""

    id: str
    type: TensorType
    decl: ParamDecl
    init: str | dict[str, Any]  # the initializer: the spec's ``init:`` or the op's default
    trainable: bool
    owner: str  # the op node that created it
    src: Location | None = None
    block: tuple[str, ...] = ()
    cluster: tuple[str, ...] = ()
    kind: ClassVar[Literal["param"]] = "param"
    op: ClassVar[None] = None
    inputs: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True, slots=True)
class OpNode:
    """One op applied to its arguments."""

    id: str
    op: str
    attrs: Attrs  # the op's validated attribute model
    inputs: tuple[str, ...]  # data inputs, then parameters, then state buffers
    n_inputs: int  # how many of ``inputs`` are data inputs
    type: TensorType
    state: tuple[str, ...] = ()  # names of the state buffers ending ``inputs``
    role: Role = "graph"
    weight: float = 1.0  # a loss term's coefficient
    src: Location | None = None
    block: tuple[str, ...] = ()
    cluster: tuple[str, ...] = ()
    generated: str | None = None  # the pass that added the node (None: the spec wrote it)
    kind: ClassVar[Literal["op"]] = "op"

    @property
    def opdef(self) -> OpDef:
        return REGISTRY[self.op]

    @property
    def n_state(self) -> int:
        return len(self.state)

    @property
    def data_inputs(self) -> tuple[str, ...]:
        return self.inputs[: self.n_inputs]

    @property
    def param_args(self) -> tuple[str, ...]:
        """The parameters among the arguments (after the data inputs, before the state)."""
        return self.inputs[self.n_inputs : len(self.inputs) - self.n_state]

    @property
    def state_args(self) -> tuple[str, ...]:
        return self.inputs[len(self.inputs) - self.n_state :]

    @property
    def grad_flags(self) -> list[bool]:
        """Per argument, whether a gradient flows through it: as the op declares for its
        inputs and parameters; never through a state buffer."""
        return self.opdef.grad_flags(len(self.inputs), self.n_inputs, self.n_state, self.attrs)


@dataclass(frozen=True, slots=True)
class OutputNode:
    """A named model output (``outputs:``); its one input is the node it names."""

    id: str
    inputs: tuple[str]
    type: TensorType
    src: Location | None = None
    kind: ClassVar[Literal["output"]] = "output"
    op: ClassVar[None] = None
    block: tuple[str, ...] = ()
    cluster: tuple[str, ...] = ()


Node = InputNode | ParamNode | OpNode | OutputNode


def node_of(g: nx.MultiDiGraph, nid: str) -> Node:
    """The node ``nid`` of an IR graph (``IR.node`` for a graph not yet wrapped in an IR)."""
    node: Node = g.nodes[nid]["node"]
    return node


def add_node(g: nx.MultiDiGraph, node: Node) -> None:
    """Put ``node`` in ``g`` under its id (replacing the node of that id, if any)."""
    g.add_node(node.id, node=node)
