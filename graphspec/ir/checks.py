"""Whole-graph checks that warn rather than fail: unused inputs and parameters, dead nodes."""

from __future__ import annotations

from graphspec.errors import Location
from graphspec.ir.graph import IR
from graphspec.ir.traverse import ancestors


def live_nodes(ir: IR) -> set[str]:
    """Every node an output, a loss term or a metric depends on (one walk: linear time)."""
    sinks = [f"output:{name}" for name in ir.outputs] + [lid for lid, _ in ir.losses] + ir.metrics
    return ancestors(ir.graph, sinks, inclusive=True)


def unused_inputs(ir: IR, live: set[str] | None = None) -> list[str]:
    """Inputs nothing computed depends on: they need no data."""
    live = live_nodes(ir) if live is None else live
    return [name for name in ir.inputs if name not in live]


def check_warnings(ir: IR) -> list[tuple[str, Location | None]]:
    """Warnings about ``ir``: unused inputs, ops nothing needs, parameters that cannot train."""
    warnings: list[tuple[str, Location | None]] = []
    live = live_nodes(ir)
    for name in unused_inputs(ir, live):
        warnings.append((f"input '{name}' is never used: no output, loss or metric depends "
                         "on it", ir.node(name).src))
    for nid in ir.order:
        node = ir.node(nid)
        if node.kind == "op" and nid not in live:
            warnings.append((f"node '{nid}' ({node.op}) is never used", node.src))
    if ir.losses:
        feeding = ancestors(ir.graph, [lid for lid, _ in ir.losses])
        for p in ir.params:
            if p not in feeding:
                warnings.append(
                    (f"parameter '{p}' never reaches the loss: it will not train", ir.node(p).src)
                )
    return warnings
