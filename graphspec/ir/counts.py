"""Parameter and FLOP counts, per node and in total."""

from __future__ import annotations

from graphspec.ir.graph import IR
from graphspec.ops.registry import TensorType


def _concrete(t: TensorType, batch: int) -> TensorType:
    return TensorType(tuple(d if isinstance(d, int) else batch for d in t.shape), t.dtype)


def node_flops(ir: IR, nid: str, batch: int = 1) -> int:
    node = ir.node(nid)
    if node["kind"] != "op":
        return 0
    types = [_concrete(ir.type(i), batch) for i in node["inputs"]]
    return int(node["attrs"].flops(*types, out=_concrete(node["type"], batch)))


def node_params(ir: IR, nid: str) -> int:
    node = ir.node(nid)
    return sum(
        ir.type(a).numel() for a in node.get("inputs", [])
        if ir.node(a)["kind"] == "param" and ir.node(a).get("owner") == nid
    )
