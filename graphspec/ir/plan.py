"""What every code-generating backend needs from the IR: names, an order, what to keep.

A :class:`Plan` gives each node a Python identifier, lists the op nodes needed for a set of
targets in a deterministic topological order, and tells which nodes lie between the
differentiable leaves and the loss.  Backends turn a plan into source text (with
graphspec.codegen.emit, which also frees each value after its last use); the core never
imports them.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from graphspec.codegen.text import comment
from graphspec.ir.graph import IR
from graphspec.ir.node import InputNode, OpNode
from graphspec.ir.traverse import ancestors, descendants
from graphspec.ops import REGISTRY, OpDef


@dataclass(frozen=True)
class Call:
    """One op node, ready to print: ``var = fn(args..., kwargs...)``."""

    node: str
    var: str
    opdef: OpDef
    args: tuple[str, ...]  # variable names of the positional arguments
    arg_nodes: tuple[str, ...]
    n_inputs: int
    n_state: int
    grad_flags: tuple[bool, ...]  # per argument: whether a gradient flows through it
    kwargs: dict[str, Any]
    comment: str  # safe to print after '#' (graphspec.codegen.text.comment)

    @property
    def has_state(self) -> bool:
        return self.opdef.has_state


class Plan:
    def __init__(self, ir: IR, reserved: Iterable[str] = ()) -> None:
        self.ir = ir
        self.g = ir.graph
        self.names: dict[str, str] = {}
        # Kernel function names and backend helpers must not be shadowed by node variables.
        used: set[str] = set(reserved) | set(REGISTRY) | {f"{n}_vjp" for n in REGISTRY}
        for nid in ir.order:
            # ASCII only: Python folds Unicode identifiers (NFKC), so two distinct non-ASCII
            # ids could name one variable.
            base = re.sub(r"[^0-9A-Za-z_]", "_", nid)
            if not base or base[0].isdigit() or keyword.iskeyword(base) or base.startswith("_"):
                base = "v_" + base
            name, k = base, 1
            while name in used or name in _RESERVED:
                k += 1
                name = f"{base}_{k}"
            used.add(name)
            self.names[nid] = name

    def var(self, nid: str) -> str:
        return self.names[nid]

    def call(self, nid: str) -> Call:
        node = self.ir.op(nid)
        shape = ", ".join(str(d) for d in node.type.shape)
        where = f"  ({node.src})" if node.src else ""
        return Call(
            node=nid, var=self.names[nid], opdef=node.opdef,
            args=tuple(self.names[a] for a in node.inputs), arg_nodes=node.inputs,
            n_inputs=node.n_inputs, n_state=node.n_state, grad_flags=tuple(node.grad_flags),
            kwargs=node.attrs.kernel_attrs(), comment=comment(f"{node.op} -> [{shape}]{where}"),
        )

    def needed(self, targets: Iterable[str]) -> list[str]:
        """Op nodes needed to compute ``targets``, in topological order."""
        need = ancestors(self.g, targets, inclusive=True)  # one walk for all targets
        return [n for n in self.ir.order if n in need and self.ir.node(n).kind == "op"]

    def leaves(self) -> list[str]:
        """Trainable parameters and differentiable float inputs."""
        ins = [i for i in self.ir.inputs
               if isinstance(n := self.ir.node(i), InputNode) and n.differentiable]
        return list(self.ir.params) + ins

    def grad_path(self, leaves: Iterable[str] | None = None) -> set[str]:
        """Nodes on a path from a differentiable leaf (of ``leaves``, by default all of them)
        to a loss term along which gradients flow (arguments an op declares
        non-differentiable, like a loss's target, cut it)."""
        down = descendants(self.g, self.leaves() if leaves is None else leaves, inclusive=True)
        up: set[str] = set()
        todo = [lid for lid, _ in self.ir.losses]
        while todo:
            nid = todo.pop()
            if nid in up:
                continue
            up.add(nid)
            node = self.ir.node(nid)
            if isinstance(node, OpNode):
                todo += [a for a, f in zip(node.inputs, node.grad_flags) if f]
        return down & up

    def grad_leaves(self) -> list[str]:
        """Leaves that get a gradient: every trainable parameter (zero when it does not reach
        the loss) and each differentiable input through which the loss depends."""
        path = self.grad_path()
        return list(self.ir.params) + [i for i in self.leaves()[len(self.ir.params):] if i in path]

    def loss_targets(self) -> list[str]:
        return [lid for lid, _ in self.ir.losses]


_RESERVED = {
    "np", "torch", "nn", "F", "params", "inputs", "noise", "training", "rng", "grads", "terms",
    "loss", "outputs", "state", "self", "metrics", "math",
}
