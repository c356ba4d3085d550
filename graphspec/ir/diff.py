"""A semantic diff of two specs, compared as built IRs rather than as text.

:func:`diff_irs` reports what separates spec ``a`` from spec ``b``:

* nodes (inputs, graph ops, loss terms, metrics) added, removed, renamed or changed: op,
  attributes, wiring (data inputs, parameter arguments), role, loss weight, output shape;
* parameters and state buffers added, removed, renamed or changed (shape, initializer,
  trainable), with the total trainable parameter count of each side;
* spec-level settings: outputs, and ``name``, ``seed``, ``train``, ``analysis``, ``expect``
  and ``variants`` compared key by key.

Nodes are matched by id.  A node only in ``b`` whose op, attributes, role, loss weight and
data inputs equal those of exactly one node only in ``a`` is reported as a rename of it
(wiring is compared through renames found before, so a renamed chain is found link by
link), and its parameters follow it (``old.weight`` is compared with ``new.weight``).
Anything the IR does not keep (comments, ``doc:``, the format version, how a value was
written: a variable, a block, an include, a default spelled out) is not a difference.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from graphspec.ir.graph import IR
from graphspec.ir.node import InputNode, Node, OpNode, ParamNode

Change = Literal["added", "removed", "renamed", "changed"]
# Spec-level settings compared key by key (the rest of a spec is compared as its IR).
SETTINGS = ("name", "seed", "train", "analysis", "expect", "variants")
# The order groups and changes are listed in.
GROUPS = ("input", "graph", "loss", "metric")
CHANGES: tuple[Change, ...] = ("removed", "added", "renamed", "changed")
# The fields of a node that are not attributes; an attribute of the same name is shown as
# ``attrs.<name>``.
_NODE_FIELDS = ("op", "role", "weight", "inputs", "params", "differentiable", "shape")
_Ids = Callable[[Iterable[str]], tuple[str, ...]]
_MARK = {"added": "+", "removed": "-", "renamed": ">", "changed": "~"}


class _Absent:
    """The value of a setting one side does not have (shown as ``(none)``, JSON null)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class FieldChange:
    """One field that differs: ``name`` (``op``, ``shape``, an attribute...), a's and b's value."""

    name: str
    a: Any
    b: Any


@dataclass(frozen=True)
class NodeDiff:
    """A node added, removed, renamed (``was``: its id in a) or changed (``fields``)."""

    change: Change
    id: str  # the id in b (in a, for a removed node)
    group: str  # one of GROUPS
    op: str | None  # None for inputs
    shape: str  # its output's type in b (in a, for a removed node)
    was: str | None = None
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class ParamDiff:
    """A parameter or state buffer added, removed, renamed (with its owner) or changed."""

    change: Change
    name: str  # the name in b (in a, for a removed one)
    shape: str  # b's (a's, for a removed one)
    trainable: bool
    count_a: int  # elements on each side (0 where absent)
    count_b: int
    was: str | None = None
    fields: tuple[FieldChange, ...] = ()


@dataclass
class SpecDiff:
    """Every difference of spec a and spec b, by kind; none when they are equivalent."""

    nodes: list[NodeDiff]
    params: list[ParamDiff]
    settings: list[FieldChange]  # dotted key (``train.optimizer.lr``, ``outputs.logit``)
    param_count: tuple[int, int]  # trainable parameters of a and b
    node_count: tuple[int, int] = (0, 0)  # inputs and ops of a and b
    labels: tuple[str, str] = ("a", "b")

    @property
    def equivalent(self) -> bool:
        return not (self.nodes or self.params or self.settings)

    def to_json(self) -> dict[str, Any]:
        a, b = self.param_count
        return {
            "a": self.labels[0],
            "b": self.labels[1],
            "equivalent": self.equivalent,
            "nodes": [_node_json(d) for d in self.nodes],
            "parameters": [_param_json(d) for d in self.params],
            "parameter_count": {"a": a, "b": b, "change": b - a, "percent": _percent(a, b)},
            "settings": [
                {"key": f.name, "a": _jsonable(f.a), "b": _jsonable(f.b)} for f in self.settings
            ],
        }

    def render(self) -> str:
        """The diff for people: a ``---``/``+++`` header, changes by group, a summary line."""
        out = [f"--- {self.labels[0]}", f"+++ {self.labels[1]}"]
        for group in GROUPS:
            entries = [d for d in self.nodes if d.group == group]
            if entries:
                out.append(f"{_GROUP_TITLES[group]}:")
                out += [f"  {line}" for line in _folded([_node_line(d) for d in entries])]
        if self.params:
            out.append("parameters:")
            out += [f"  {line}" for line in _folded([_param_line(d) for d in self.params])]
        if self.settings:
            out.append("settings:")
            out += [f"  ~ {f.name}: {_show(f.a)} -> {_show(f.b)}" for f in self.settings]
        out.append(self.summary())
        return "\n".join(out) + "\n"

    def summary(self) -> str:
        a, b = self.param_count
        if self.equivalent:
            return f"equivalent: {_plural(self.node_count[1], 'node')}, {_plural(b, 'parameter')}"
        nodes = _counted(self.nodes, "node") or "nodes unchanged"
        tensors = _counted(self.params, "parameter tensor")
        if a == b:
            count = f"{_plural(b, 'parameter')} (unchanged)"
        else:
            percent = _percent(a, b)
            change = f"{b - a:+,}" + ("" if percent is None else f", {percent:+.1f}%")
            count = f"{_num(a)} -> {_plural(b, 'parameter')} ({change})"
        tail = [_plural(len(self.settings), "setting") + " changed"] if self.settings else []
        return "; ".join([nodes, f"{tensors}, {count}" if tensors else count, *tail])


_SUMMARY_ORDER: tuple[Change, ...] = ("changed", "added", "removed", "renamed")


def _counted(entries: list[NodeDiff] | list[ParamDiff], noun: str) -> str:
    """``2 nodes changed, 1 added``: the entries by change, the noun named once ("" if none)."""
    counts = [(c, sum(d.change == c for d in entries)) for c in _SUMMARY_ORDER]
    parts = [f"{_num(n)} {c}" for c, n in counts if n]
    if not parts:
        return ""
    first = next(n for _, n in counts if n)
    parts[0] = parts[0].replace(" ", f" {noun}{'s' * (first != 1)} ", 1)
    return ", ".join(parts)


_GROUP_TITLES = {"input": "inputs", "graph": "nodes", "loss": "loss", "metric": "metrics"}


# ---- the comparison ----------------------------------------------------------------------


def diff_irs(a: IR, b: IR, labels: tuple[str, str] = ("a", "b")) -> SpecDiff:
    """What separates ``a`` from ``b`` (see the module docstring)."""
    nodes_a, nodes_b = _comparable(a), _comparable(b)
    # b's node id -> a's: the same id where both have a node of one kind, then renames.
    in_a = set(nodes_a)
    b_to_a = {n: n for n in nodes_b if n in in_a and _kind(a, n) == _kind(b, n)}
    renamed = _find_renames(a, b, nodes_a, nodes_b, b_to_a)
    params_b_to_a = _param_map(a, b, b_to_a)
    mapped = _as_a(b_to_a, params_b_to_a)
    matched_a = set(b_to_a.values())
    diffs = [_node_entry("removed", a, n) for n in nodes_a if n not in matched_a] + [
        _node_entry("added", b, n) for n in nodes_b if n not in b_to_a
    ]
    for n in nodes_b:
        if n in b_to_a:
            fields = _node_fields(a.node(b_to_a[n]), b.node(n), mapped)
            if n in renamed:
                diffs.append(_node_entry("renamed", b, n, was=b_to_a[n], fields=fields))
            elif fields:
                diffs.append(_node_entry("changed", b, n, fields=fields))
    diffs.sort(key=lambda d: (GROUPS.index(d.group), CHANGES.index(d.change)))
    return SpecDiff(
        nodes=diffs,
        params=_diff_params(a, b, params_b_to_a),
        settings=_diff_outputs(a, b, mapped) + _diff_settings(a, b),
        param_count=(a.param_count(), b.param_count()),
        node_count=(len(nodes_a), len(nodes_b)),
        labels=labels,
    )


def _comparable(ir: IR) -> list[str]:
    """The nodes compared one by one: inputs and ops (parameters and outputs have their own
    comparisons), in the IR's order."""
    return [n for n in ir.order if isinstance(ir.node(n), InputNode | OpNode)]


def _kind(ir: IR, nid: str) -> str:
    return ir.node(nid).kind


def _group(ir: IR, nid: str) -> str:
    node = ir.node(nid)
    return node.role if isinstance(node, OpNode) else "input"


def _find_renames(
    a: IR, b: IR, nodes_a: list[str], nodes_b: list[str], b_to_a: dict[str, str]
) -> set[str]:
    """Pair nodes only in b with nodes only in a that are the same node under another id;
    adds the pairs to ``b_to_a`` and returns b's renamed ids.

    A pair needs equal signatures with b's inputs read through the pairs found so far; an a
    node that several b nodes (or a b node that several a nodes) would match stays unpaired,
    since which is which would be a guess.  Repeated until no pair is found, so a chain of
    renamed nodes is paired link by link whatever the order of the graph."""
    renamed: set[str] = set()
    paired = set(b_to_a.values())
    # a's signatures never change (its ids are read as they are): computed once.
    signature_a = {n: _signature(a, n, tuple) for n in nodes_a if n not in paired}
    while True:
        only_b = [n for n in nodes_b if n not in b_to_a]
        mapped = _as_a(b_to_a, _param_map(a, b, b_to_a))
        by_signature: dict[Any, list[str]] = {}
        for n, sig in signature_a.items():
            by_signature.setdefault(sig, []).append(n)
        wanted: dict[Any, list[str]] = {}
        for n in only_b:
            wanted.setdefault(_signature(b, n, mapped), []).append(n)
        pairs = [
            (ns[0], by_signature[sig][0])
            for sig, ns in wanted.items()
            if len(ns) == 1 and len(by_signature.get(sig, ())) == 1
        ]
        if not pairs:
            return renamed
        for nb, na in pairs:
            b_to_a[nb] = na
            renamed.add(nb)
            del signature_a[na]


def _as_a(b_to_a: dict[str, str], params_b_to_a: dict[str, str]) -> _Ids:
    """A function reading b's node and parameter ids as a names them (an id without a pair
    as itself), to compare wiring across renames."""

    def mapped(ids: Iterable[str]) -> tuple[str, ...]:
        return tuple(b_to_a.get(i, params_b_to_a.get(i, i)) for i in ids)

    return mapped


def _signature(ir: IR, nid: str, mapped: _Ids) -> tuple[Any, ...]:
    """What makes a node the same node under another id: for an input its type; for an op
    its op, attributes, role, loss weight and data inputs (``mapped`` to a's ids)."""
    node = ir.node(nid)
    if isinstance(node, InputNode):
        return ("input", str(node.type), node.differentiable)
    assert isinstance(node, OpNode)
    attrs = json.dumps(node.attrs.model_dump(mode="json"), sort_keys=True)
    return ("op", node.op, attrs, node.role, node.weight, mapped(node.data_inputs))


def _param_map(a: IR, b: IR, b_to_a: dict[str, str]) -> dict[str, str]:
    """b's parameter names -> a's, for parameters whose owner was renamed: a parameter is
    named ``<owner id>.<name>``, so it follows its owner."""
    out = {}
    for p in b.params + b.state:
        owner = b.param(p).owner
        was = b_to_a.get(owner, owner)
        if was != owner and p.startswith(owner + "."):
            out[p] = was + p[len(owner) :]
    return out


def _node_entry(
    change: Change, ir: IR, nid: str, was: str | None = None, fields: tuple[FieldChange, ...] = ()
) -> NodeDiff:
    node = ir.node(nid)
    return NodeDiff(change, nid, _group(ir, nid), node.op, str(node.type), was, fields)


def _node_fields(na: Node, nb: Node, mapped: _Ids) -> tuple[FieldChange, ...]:
    """The fields of two matched nodes that differ, b's ids read as a's."""
    fields: list[FieldChange] = []

    def compare(name: str, va: Any, vb: Any) -> None:
        if va != vb:
            fields.append(FieldChange(name, va, vb))

    if isinstance(na, OpNode) and isinstance(nb, OpNode):
        compare("op", na.op, nb.op)
        attrs_a = na.attrs.model_dump(mode="json")
        attrs_b = nb.attrs.model_dump(mode="json")
        for key in [*attrs_a, *(k for k in attrs_b if k not in attrs_a)]:
            name = f"attrs.{key}" if key in _NODE_FIELDS else key  # reshape's 'shape'
            compare(name, attrs_a.get(key, ABSENT), attrs_b.get(key, ABSENT))
        compare("role", na.role, nb.role)
        compare("weight", na.weight, nb.weight)
        compare("inputs", list(na.data_inputs), list(mapped(nb.data_inputs)))
        compare("params", list(na.inputs[na.n_inputs :]), list(mapped(nb.inputs[nb.n_inputs :])))
    if isinstance(na, InputNode) and isinstance(nb, InputNode):
        compare("differentiable", na.differentiable, nb.differentiable)
    compare("shape", str(na.type), str(nb.type))
    return tuple(fields)


def _diff_params(a: IR, b: IR, b_to_a: dict[str, str]) -> list[ParamDiff]:
    """Parameters and state buffers: removed, added, renamed with their owner, changed."""
    names_a, names_b = a.params + a.state, b.params + b.state
    matched = {p: b_to_a.get(p, p) for p in names_b if b_to_a.get(p, p) in names_a}
    taken = set(matched.values())
    out = [_param_entry("removed", a.param(p), None) for p in names_a if p not in taken]
    out += [_param_entry("added", None, b.param(p)) for p in names_b if p not in matched]
    for p, was in matched.items():
        pa, pb = a.param(was), b.param(p)
        fields = []
        for name, va, vb in (
            ("shape", str(pa.type), str(pb.type)),
            ("init", pa.init, pb.init),
            ("trainable", pa.trainable, pb.trainable),
        ):
            if va != vb:
                fields.append(FieldChange(name, va, vb))
        if was != p:
            out.append(_param_entry("renamed", pa, pb, was, tuple(fields)))
        elif fields:
            out.append(_param_entry("changed", pa, pb, None, tuple(fields)))
    out.sort(key=lambda d: CHANGES.index(d.change))
    return out


def _param_entry(
    change: Change,
    pa: ParamNode | None,
    pb: ParamNode | None,
    was: str | None = None,
    fields: tuple[FieldChange, ...] = (),
) -> ParamDiff:
    p = pb or pa
    assert p is not None
    count_a, count_b = (q.type.numel() if q else 0 for q in (pa, pb))
    return ParamDiff(change, p.id, str(p.type), p.trainable, count_a, count_b, was, fields)


def _diff_outputs(a: IR, b: IR, mapped: _Ids) -> list[FieldChange]:
    """``outputs.<name>``: the node each output names, b's read as a's (a renamed node keeps
    its outputs); ABSENT where a side lacks the output."""
    out = []
    for name in [*a.outputs, *(n for n in b.outputs if n not in a.outputs)]:
        va = a.outputs.get(name, ABSENT)
        vb = b.outputs.get(name, ABSENT)
        if va is ABSENT or vb is ABSENT or va != mapped([vb])[0]:
            out.append(FieldChange(f"outputs.{name}", va, vb))
    return out


def _diff_settings(a: IR, b: IR) -> list[FieldChange]:
    """The SETTINGS of the two specs, compared key by key (a mapping recursively, any other
    value, lists included, as a whole), defaults included: a default written out is no
    difference."""
    if a.spec is None or b.spec is None:  # an IR not built from a spec has no settings
        return []
    out: list[FieldChange] = []
    _compare_values(
        "",
        a.spec.model_dump(mode="json", include=set(SETTINGS)),
        b.spec.model_dump(mode="json", include=set(SETTINGS)),
        out,
    )
    return out


def _compare_values(path: str, va: Any, vb: Any, out: list[FieldChange]) -> None:
    if isinstance(va, dict) and isinstance(vb, dict):
        for key in [*va, *(k for k in vb if k not in va)]:
            sub = f"{path}.{key}" if path else str(key)
            _compare_values(sub, va.get(key, ABSENT), vb.get(key, ABSENT), out)
    elif va != vb:
        out.append(FieldChange(path, va, vb))


# ---- output ------------------------------------------------------------------------------


def _node_line(d: NodeDiff) -> str:
    what = f"{d.id} ({d.op})" if d.op else d.id
    if d.change == "renamed":
        what = f"{d.was} -> {what}"
    if d.change in ("added", "removed"):
        return f"{_MARK[d.change]} {what} {d.shape}"
    return f"{_MARK[d.change]} {what}" + (f": {_fields(d.fields)}" if d.fields else "")


def _param_line(d: ParamDiff) -> str:
    name = f"{d.was} -> {d.name}" if d.change == "renamed" else d.name
    state = "" if d.trainable else " (state)"
    if d.change in ("added", "removed"):
        count = d.count_b - d.count_a
        return f"{_MARK[d.change]} {name}{state} {d.shape} ({count:+,})"
    delta = f" ({d.count_b - d.count_a:+,})" if d.count_a != d.count_b else ""
    return f"{_MARK[d.change]} {name}{state}" + (
        f": {_fields(d.fields)}{delta}" if d.fields else ""
    )


# A repeat's instance index inside an id: the ``2`` of ``body.2.h`` (between dots).
_INSTANCE = re.compile(r"(?<=\.)(\d+)(?=\.)")


def _folded(lines: list[str]) -> list[str]:
    """``lines`` with those that differ only in one repeat index (``~ body.0.a ...``,
    ``~ body.1.a ...``) as one line where the first of them stood: ``~ body.{0..3}.a ...
    (each of 4)`` (``{0..1,3}`` when the indices have gaps; counts are per instance).  A
    change made inside a repeated block is then one line, as it was one edit."""
    groups: dict[str, list[int]] = {}  # the line with its index taken out -> the indices
    order: list[str] = []  # the lines without an index, and each group's key, in order
    for line in lines:
        found = _INSTANCE.search(line)
        if found is None:
            order.append(line)
            continue
        key = line[: found.start()] + "\0" + line[found.end() :]
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(int(found.group()))
    out = []
    for item in order:
        indices = groups.get(item)
        if indices is None:
            out.append(item)
        elif len(indices) == 1:
            out.append(item.replace("\0", str(indices[0]), 1))
        else:
            folded = item.replace("\0", "{" + _ranges(indices) + "}", 1)
            out.append(f"{folded}  (each of {len(indices)})")
    return out


def _ranges(indices: list[int]) -> str:
    """``0..3`` for 0, 1, 2, 3; ``0..1,3`` with a gap."""
    parts: list[str] = []
    start = prev = indices[0]
    for i in [*indices[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}..{prev}")
        if i is not None:
            start = prev = i
    return ",".join(parts)


def _fields(fields: Iterable[FieldChange]) -> str:
    return "; ".join(f"{f.name} {_show(f.a)} -> {_show(f.b)}" for f in fields)


def _show(value: Any) -> str:
    if value is ABSENT:
        return "(none)"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[" + ", ".join(value) + "]"
    return json.dumps(value)


def _node_json(d: NodeDiff) -> dict[str, Any]:
    out: dict[str, Any] = {"change": d.change, "id": d.id, "group": d.group, "op": d.op}
    if d.was is not None:
        out["was"] = d.was
    out["shape"] = d.shape
    if d.fields:
        out["fields"] = {f.name: [_jsonable(f.a), _jsonable(f.b)] for f in d.fields}
    return out


def _param_json(d: ParamDiff) -> dict[str, Any]:
    out: dict[str, Any] = {"change": d.change, "name": d.name, "trainable": d.trainable}
    if d.was is not None:
        out["was"] = d.was
    out["shape"] = d.shape
    out["count"] = [d.count_a, d.count_b]
    if d.fields:
        out["fields"] = {f.name: [_jsonable(f.a), _jsonable(f.b)] for f in d.fields}
    return out


def _jsonable(value: Any) -> Any:
    return None if value is ABSENT else value


def _percent(a: int, b: int) -> float | None:
    """The change from a to b in percent of a (None from 0: no finite percentage)."""
    return None if a == 0 else round(100.0 * (b - a) / a, 1)


def _num(n: int) -> str:
    return f"{n:,}"


def _plural(n: int, word: str) -> str:
    return f"{_num(n)} {word}{'s' * (n != 1)}"


__all__ = ["ABSENT", "FieldChange", "NodeDiff", "ParamDiff", "SpecDiff", "diff_irs"]
