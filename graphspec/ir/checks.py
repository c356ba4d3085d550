"""Whole-graph checks that warn rather than fail: unused parameters, dead nodes."""

from __future__ import annotations

from graphspec.ir.graph import IR
from graphspec.ir.traverse import ancestors


def run_checks(ir: IR) -> None:
    g = ir.graph
    sinks = [f"output:{name}" for name in ir.outputs] + [lid for lid, _ in ir.losses] + ir.metrics
    live = ancestors(g, sinks, inclusive=True)  # one walk from every sink: linear time
    for nid in ir.order:
        node = g.nodes[nid]
        if node["kind"] == "op" and nid not in live:
            ir.warnings.append((f"node '{nid}' ({node['op']}) is never used", node.get("src")))
    if ir.losses:
        feeding = ancestors(g, [lid for lid, _ in ir.losses])
        for p in ir.params:
            if p not in feeding:
                ir.warnings.append(
                    (f"parameter '{p}' never reaches the loss: it will not train",
                     g.nodes[p].get("src"))
                )
