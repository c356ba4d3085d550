"""Where a compared tensor lives in the spec, and how a backend's failure reads in a row."""

from __future__ import annotations

import traceback

from graphspec.ir.graph import IR
from graphspec.ir.node import ParamNode


def tensor_node(ir: IR, check: str, tensor: str) -> str | None:
    """The IR node a compared tensor belongs to (for a parameter: the op that owns it)."""
    if check.startswith("output"):
        return ir.outputs.get(tensor)
    if tensor in ir.graph:
        node = ir.node(tensor)
        return node.owner if isinstance(node, ParamNode) else tensor
    return None


def where(ir: IR, node: str | None) -> str | None:
    if node is None or node not in ir.graph:
        return None
    src = ir.node(node).src
    return str(src) if src else None


def message(e: BaseException) -> str:
    last = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(e).__name__}: {e}{where}"
