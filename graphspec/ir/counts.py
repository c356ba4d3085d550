"""Parameter and FLOP counts, per node and in total."""

from __future__ import annotations

from graphspec.errors import SpecError
from graphspec.ir.graph import IR
from graphspec.ir.node import OpNode, ParamNode
from graphspec.ops.registry import TensorType


def _concrete(t: TensorType, batch: int) -> TensorType:
    return TensorType(tuple(d if isinstance(d, int) else batch for d in t.shape), t.dtype)


def node_flops(ir: IR, nid: str, batch: int = 1) -> int:
    node = ir.node(nid)
    if not isinstance(node, OpNode):
        return 0
    types = [_concrete(ir.type(i), batch) for i in node.inputs]
    return int(node.attrs.flops(*types, out=_concrete(node.type, batch)))


def flop_count(ir: IR, batch: int = 1) -> int:
    """Forward FLOPs of the whole graph (every symbolic dimension taken as ``batch``)."""
    return sum(node_flops(ir, n, batch) for n in ir.op_nodes())


def node_params(ir: IR, nid: str) -> int:
    """Elements of the parameters and state buffers node ``nid`` created."""
    return sum(
        ir.type(a).numel() for a in ir.node(nid).inputs
        if isinstance(p := ir.node(a), ParamNode) and p.owner == nid
    )


def check_param_budget(ir: IR, limit: int) -> None:
    """Refuse a model with more than ``limit`` trainable parameters (``--max-params``).

    The error points at the node owning the largest parameter, where a smaller width or a
    smaller ``repeat`` usually brings the count down.
    """
    total = ir.param_count()
    if total <= limit:
        return
    biggest = sorted(ir.params, key=lambda p: -ir.type(p).numel())
    first = ir.node(biggest[0])
    notes = [
        (f"'{p}' has {ir.type(p).numel():,} parameters {list(ir.type(p).shape)}",
         ir.node(p).src)
        for p in biggest[1:3]
        if ir.node(p).src != first.src
    ]
    raise SpecError(
        f"the model has {total:,} parameters, more than the budget of {limit:,} (--max-params); "
        f"the largest, '{biggest[0]}', has {ir.type(biggest[0]).numel():,}",
        first.src,
        notes=notes,
        hint="reduce widths or repeats, or raise --max-params",
    )
