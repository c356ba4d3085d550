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


def check_param_budget(ir: IR, limit: int) -> None:
    """Refuse a model with more than ``limit`` trainable parameters (``--max-params``).

    The error points at the node owning the largest parameter, where a smaller width or a
    smaller ``repeat`` usually brings the count down.
    """
    total = ir.param_count()
    if total <= limit:
        return
    from graphspec.errors import SpecError

    biggest = sorted(ir.params, key=lambda p: -ir.type(p).numel())
    first = ir.node(biggest[0])
    notes = [
        (f"'{p}' has {ir.type(p).numel():,} parameters {list(ir.type(p).shape)}",
         ir.node(p).get("src"))
        for p in biggest[1:3]
        if ir.node(p).get("src") != first.get("src")
    ]
    raise SpecError(
        f"the model has {total:,} parameters, more than the budget of {limit:,} (--max-params); "
        f"the largest, '{biggest[0]}', has {ir.type(biggest[0]).numel():,}",
        first.get("src"),
        notes=notes,
        hint="reduce widths or repeats, or raise --max-params",
    )
