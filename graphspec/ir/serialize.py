"""The IR written out for people and tools: JSON node-link data, Graphviz DOT, a text table.

JSON is networkx's node-link format with every attribute made JSON-able (attribute models,
:class:`TensorType`, :class:`Location`, :class:`ParamDecl`, tuples).  :func:`graph_from_json`
turns it back into a ``MultiDiGraph`` equal to the original, node and edge attributes
included, so tools can read an inspected graph without graphspec's YAML front end.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import networkx as nx

from graphspec.errors import Location
from graphspec.ir.counts import flop_count, node_flops, node_params
from graphspec.ir.graph import IR
from graphspec.ir.node import InputNode, Node, OpNode, OutputNode, ParamNode, add_node
from graphspec.ops import REGISTRY
from graphspec.ops.registry import Attrs, ParamDecl, TensorType

JSON_FORMAT = "graphspec-ir/1"

# ---- JSON ------------------------------------------------------------------------------

# The JSON keys of each kind of node, in the order they are written.
_JSON_KEYS: dict[str, tuple[str, ...]] = {
    "input": tuple("kind op inputs type src block cluster differentiable".split()),
    "param": tuple("kind op inputs type src block cluster decl init trainable owner".split()),
    "op": tuple(
        "kind op attrs inputs n_inputs state src role block cluster weight type generated".split()
    ),
    "output": tuple("kind op inputs type src block cluster".split()),
}
_NODE_CLASSES: dict[str, type[Node]] = {
    "input": InputNode,
    "param": ParamNode,
    "op": OpNode,
    "output": OutputNode,
}
# Node attributes that hold tuples (networkx compares by ==, and (1,) != [1]).
_TUPLE_ATTRS = ("inputs", "state", "block", "cluster")


def ir_to_json(ir: IR) -> dict[str, Any]:
    """Node-link data of ``ir.graph`` plus the IR's spec-level facts under ``graph``."""
    g = nx.MultiDiGraph()
    g.graph.update(
        format=JSON_FORMAT,
        name=ir.name,
        seed=ir.seed,
        inputs=list(ir.inputs),
        params=list(ir.params),
        state=list(ir.state),
        outputs=dict(ir.outputs),
        losses=[[lid, w] for lid, w in ir.losses],
        metrics=list(ir.metrics),
        param_count=ir.param_count(),
        flops_per_example=flop_count(ir),
    )
    for nid in ir.graph:
        g.add_node(nid, **_node_json(ir.node(nid)))
    for u, v, key, data in ir.graph.edges(keys=True, data=True):
        g.add_edge(u, v, key=key, **data)
    return nx.node_link_data(g, edges="edges")


def _node_json(node: Node) -> dict[str, Any]:
    out = {k: _encode(k, getattr(node, k)) for k in _JSON_KEYS[node.kind]}
    if "generated" in out and out["generated"] is None:  # only nodes a pass added say so
        del out["generated"]
    return out


def graph_from_json(data: dict[str, Any]) -> nx.MultiDiGraph:
    """The ``MultiDiGraph`` of :func:`ir_to_json` output, its typed nodes rebuilt."""
    linked = nx.node_link_graph(data, directed=True, multigraph=True, edges="edges")
    g = nx.MultiDiGraph(**linked.graph)
    for nid, attrs in linked.nodes(data=True):
        cls = _NODE_CLASSES[attrs["kind"]]
        op = attrs.get("op")
        # Keys a class holds as a constant (``kind``, an input's empty ``inputs``) are not
        # constructor arguments.
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: _decode(k, v, op) for k, v in attrs.items() if k in names}
        add_node(g, cls(id=nid, **fields))
    g.add_edges_from(linked.edges(keys=True, data=True))
    return g


def _encode(key: str, value: Any) -> Any:
    if isinstance(value, Attrs):
        # Only the values the user set or that differ from defaults would be smaller, but the
        # full model keeps the JSON self-describing.
        return value.model_dump(mode="json")
    if isinstance(value, TensorType):
        return {"shape": list(value.shape), "dtype": value.dtype}
    if isinstance(value, Location):
        return _location(value)
    if isinstance(value, ParamDecl):
        return {
            "shape": list(value.shape),
            "init": value.init,
            "fan_in": value.fan_in,
            "fan_out": value.fan_out,
            "penalize": value.penalize,
            # Only when set: the JSON of every other parameter stays as it was.
            **({"zero_rows": list(value.zero_rows)} if value.zero_rows else {}),
        }
    if isinstance(value, tuple):
        return list(value)
    return value


def _location(loc: Location) -> dict[str, Any]:
    out: dict[str, Any] = {"file": loc.file, "line": loc.line, "col": loc.col}
    if loc.included_from is not None:  # in a block library: the include entry, and its own
        out["included_from"] = _location(loc.included_from)
    return out


def _read_location(value: dict[str, Any]) -> Location:
    via = value.get("included_from")
    return Location(
        value["file"], value["line"], value["col"], _read_location(via) if via else None
    )


def _decode(key: str, value: Any, op: str | None) -> Any:
    if value is None:
        return None
    if key == "attrs" and op is not None:
        return REGISTRY[op].attrs.model_validate(value)
    if key == "type":
        return TensorType(tuple(value["shape"]), value["dtype"])
    if key == "src":
        return _read_location(value)
    if key == "decl":
        return ParamDecl(
            tuple(value["shape"]),
            value["init"],
            value["fan_in"],
            value["fan_out"],
            value["penalize"],
            tuple(value.get("zero_rows", ())),
        )
    if key in _TUPLE_ATTRS:
        return tuple(value)
    return value


# ---- DOT -------------------------------------------------------------------------------

_KIND_STYLE = {
    "input": 'shape=box, style="rounded,filled", fillcolor="#dbeafe"',
    "param": 'shape=box, style="filled", fillcolor="#fef3c7", fontsize=10',
    "output": 'shape=box, style="rounded,filled", fillcolor="#dcfce7"',
}
_ROLE_STYLE = {
    "graph": 'shape=box, style="filled", fillcolor="#f3f4f6"',
    "loss": 'shape=box, style="filled", fillcolor="#fee2e2"',
    "metric": 'shape=box, style="filled,dashed", fillcolor="#ede9fe"',
}


def ir_to_dot(ir: IR, *, show_params: bool = True) -> str:
    """Graphviz source: one box per node (op and output shape), block instances as clusters."""
    g = ir.graph
    lines = [
        f"digraph {_quote(ir.name)} {{",
        "  rankdir=TB;",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9, color="#6b7280"];',
    ]
    shown = [n for n in ir.order if show_params or ir.node(n).kind != "param"]
    # Group nodes by their block-instance path; nested instances become nested clusters.
    tree: dict[tuple[str, ...], list[str]] = {}
    for nid in shown:
        tree.setdefault(ir.node(nid).cluster, []).append(nid)
    lines += _emit_cluster((), tree, ir, depth=1)
    for u, v, key in sorted(g.edges(keys=True), key=lambda e: (e[1], e[2])):
        if u not in shown or v not in shown:
            continue
        consumer = ir.node(v)
        label = (
            f' [label="{key}"]'
            if isinstance(consumer, OpNode) and consumer.n_inputs > 1 and key < consumer.n_inputs
            else ""
        )
        lines.append(f"  {_quote(u)} -> {_quote(v)}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _emit_cluster(
    path: tuple[str, ...], tree: dict[tuple[str, ...], list[str]], ir: IR, depth: int
) -> list[str]:
    pad = "  " * depth
    out = [pad + _dot_node(nid, ir) for nid in tree.get(path, [])]
    children = sorted(
        {p[: len(path) + 1] for p in tree if len(p) > len(path) and p[: len(path)] == path}
    )
    for child in children:
        out.append(f"{pad}subgraph {_quote('cluster_' + child[-1])} {{")
        out.append(
            f'{pad}  label={_quote(_cluster_label(child[-1], ir))}; style="rounded,dashed";'
            ' color="#9ca3af"; fontname="Helvetica";'
        )
        out += _emit_cluster(child, tree, ir, depth + 1)
        out.append(pad + "}")
    return out


def _cluster_label(instance: str, ir: IR) -> str:
    # Any node of the instance knows the block's name.
    for nid in ir.graph:
        node = ir.node(nid)
        if node.cluster and node.cluster[-1] == instance:
            return f"{instance} ({node.block[-1]})"
    return instance


def _dot_node(nid: str, ir: IR) -> str:
    node = ir.node(nid)
    shape = str(node.type)
    if isinstance(node, OpNode):
        # A node named after its op (a loss term, a metric) needs its name only once.
        title = f"{nid} {shape}" if nid == node.op else f"{nid}\\n{node.op} {shape}"
        style = _ROLE_STYLE[node.role]
    else:
        title = f"{nid}\\n{shape}"
        style = _KIND_STYLE[node.kind]
    return f"{_quote(nid)} [label={_quote(title, escaped=True)}, {style}];"


def _quote(text: str, escaped: bool = False) -> str:
    body = text.replace('"', '\\"') if escaped else text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{body}"'


# ---- text table --------------------------------------------------------------------------


def ir_to_text(ir: IR) -> str:
    """A table of the op nodes: id, op, inputs, output shape, parameters and FLOPs, with totals.

    FLOPs are per example (every symbolic dimension such as ``batch`` taken as 1).
    """
    rows: list[tuple[str, ...]] = []
    # Reading order: inputs, the network, then loss terms and metrics (each topological).
    rank = {"input": 0, "graph": 1, "loss": 2, "metric": 3}
    nodes = [node for n in ir.order if isinstance(node := ir.node(n), InputNode | OpNode)]
    nodes.sort(key=lambda n: rank[n.role if isinstance(n, OpNode) else n.kind])
    for node in nodes:
        nid = node.id
        if isinstance(node, InputNode):
            rows.append((nid, "input", "", str(node.type), "", ""))
        else:
            n_params = node_params(ir, nid)
            rows.append(
                (
                    nid,
                    node.op + ("" if node.role == "graph" else f" ({node.role})"),
                    ", ".join(node.data_inputs),
                    str(node.type),
                    _num(n_params) if n_params else "",
                    _num(node_flops(ir, nid)),
                )
            )
    head = ("id", "op", "inputs", "shape", "params", "FLOPs")
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)
    ]
    widths[2] = min(widths[2], 40)

    def fmt(r: tuple[str, ...]) -> str:
        cells = [c if len(c) <= widths[i] else c[: widths[i] - 3] + "..." for i, c in enumerate(r)]
        left = [cells[i].ljust(widths[i]) for i in range(4)]
        right = [cells[i].rjust(widths[i]) for i in (4, 5)]
        return "  ".join(left + right).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [f"{ir.name}", fmt(head), rule] + [fmt(r) for r in rows] + [rule]
    trainable = ir.param_count()
    state = sum(ir.type(s).numel() for s in ir.state)
    out.append(
        f"parameters: {_num(trainable)} trainable"
        + (f", {_num(state)} state" if state else "")
        + f" in {len(ir.params)} tensors"
    )
    out.append(f"FLOPs per example: {_num(flop_count(ir))} (forward)")
    if ir.outputs:
        out.append(
            "outputs: "
            + ", ".join(f"{name} = {ref} {ir.type(ref)}" for name, ref in ir.outputs.items())
        )
    if ir.losses:
        out.append(
            "loss: "
            + " + ".join((f"{_weight(w)} * " if w != 1 else "") + lid for lid, w in ir.losses)
        )
    if ir.metrics:
        out.append("metrics: " + ", ".join(ir.metrics))
    return "\n".join(out) + "\n"


def _num(n: int) -> str:
    return f"{n:,}"


def _weight(w: float) -> str:
    return f"{w:g}" if math.isfinite(w) else str(w)
