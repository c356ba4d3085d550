"""Expansion: blocks, ``repeat``, block parameters and the sequential shorthand, made explicit.

The result is a flat list of :class:`FlatNode`, each with resolved input names, a validated
attribute model and the source location of its definition.  After this step nothing is
implicit: every node has an id, every input is named.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from graphspec.errors import Location, SpecError, did_you_mean
from graphspec.ops import REGISTRY
from graphspec.ops.registry import Attrs
from graphspec.spec import expr
from graphspec.spec.load import error_from_pydantic
from graphspec.spec.models import NodeSpec, Spec
from graphspec.spec.source import SourceMap

Role = Literal["graph", "loss", "metric"]
# Nodes after expansion (block instances count too).  A real spec has a few hundred; a node
# costs about 25 microseconds through expansion, build and checks (tools/bench), so this
# bound keeps ``validate`` of any spec within seconds (``repeat: 99999999999`` is refused
# at once) while a generated 1e5-node spec still loads.
MAX_EXPANDED_NODES = 200_000
# Blocks used inside blocks: expansion recurses once per level.  Real specs nest two or
# three; a chain of thousands of blocks would exhaust Python's stack.
MAX_BLOCK_DEPTH = 32
MAX_USE_NOTES = 4  # "in block ... used here" notes on one error
NODE_FIELDS = ["id", "op", "block", "in", "init", "params", "repeat", "weight", "doc"]


@dataclass
class FlatNode:
    id: str
    op: str
    inputs: list[str]
    attrs: Attrs
    role: Role = "graph"
    init: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, str] = field(default_factory=dict)
    weight: float = 1.0
    src: Location | None = None
    in_locs: list[Location | None] = field(default_factory=list)
    block: tuple[str, ...] = ()
    # Enclosing block instances, outermost first (``res``, ``res.2``): clusters in drawings.
    cluster: tuple[str, ...] = ()
    used_at: Location | None = None
    explicit_inputs: bool = True


@dataclass
class Expanded:
    inputs: dict[str, Any]
    nodes: list[FlatNode]
    outputs: dict[str, str]
    output_locs: dict[str, Location | None]
    aliases: dict[str, str]  # block instance name -> its last node


@dataclass
class _Scope:
    prefix: str
    env: dict[str, Any]
    block_input: str | None
    names: dict[str, str]  # local name -> full id
    block_path: tuple[str, ...]
    used_at: Location | None
    cluster: tuple[str, ...] = ()


class Expander:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.smap: SourceMap = spec.source or SourceMap(file="<spec>")
        self.nodes: list[FlatNode] = []
        self.ids: dict[str, Location | None] = {}
        self.aliases: dict[str, str] = {}
        self.counters: dict[str, itertools.count] = {}
        self.globals: dict[str, str] = {name: name for name in spec.inputs}
        self.sizes: dict[str, int] = {}  # nodes one instance of a block expands to

    # ---- helpers ----------------------------------------------------------------
    def loc(self, path: tuple, key: bool = False) -> Location:
        return self.smap.locate(path, key=key)

    def fresh_id(self, base: str) -> str:
        counter = self.counters.setdefault(base, itertools.count())
        while True:
            cand = f"{base}_{next(counter)}"
            if cand not in self.ids and cand not in self.globals:
                return cand

    def claim(self, full_id: str, loc: Location | None) -> None:
        if full_id in self.ids or full_id in self.spec.inputs:
            first = self.ids.get(full_id)
            raise SpecError(
                f"duplicate id '{full_id}'",
                loc,
                notes=[("first defined here", first)] if first else (),
                hint="ids name one node each; inputs share the namespace",
            )
        self.ids[full_id] = loc
        if len(self.ids) > MAX_EXPANDED_NODES:
            raise SpecError(f"the spec expands to more than {MAX_EXPANDED_NODES:,} nodes "
                            "(the limit)", loc,
                            hint="check the 'repeat' counts of its blocks")

    def subst(self, value: Any, scope: _Scope, path: tuple) -> Any:
        """Replace ``$name`` block parameters (anywhere inside ``value``); in a version-2
        spec also compute expressions over them (``$width * 2``, graphspec.spec.expr)."""
        if isinstance(value, str) and self.spec.graphspec >= 2 and value != "$in":
            tokens = expr.tokenize(value)
            if tokens is not None and len(tokens) > 1:
                try:
                    return expr.evaluate(
                        value, tokens, lambda name: self.param(f"${name}", scope, path)
                    )
                except expr.ExprError as e:
                    raise SpecError(str(e), self.loc(path)) from None
        if isinstance(value, str) and value.startswith("$") and value != "$in":
            return self.param(value, scope, path)
        if isinstance(value, list):
            return [self.subst(v, scope, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.subst(v, scope, path + (k,)) for k, v in value.items()}
        return value

    def param(self, ref: str, scope: _Scope, path: tuple) -> Any:
        """The value of the block parameter ``ref`` (``$width``) in ``scope``."""
        key = ref[1:]
        if key not in scope.env:
            raise SpecError(
                f"unknown block parameter '{ref}'",
                self.loc(path),
                hint=did_you_mean(key, scope.env) or (
                    "block parameters: " + ", ".join(sorted(scope.env))
                    if scope.env else "this node is not inside a block with parameters"
                ),
            )
        return scope.env[key]

    def resolve(self, ref: str, scope: _Scope, path: tuple) -> str:
        if ref == "$in":
            if scope.block_input is None:
                raise SpecError("'$in' is only meaningful inside a block", self.loc(path))
            return scope.block_input
        if ref.startswith("$"):
            ref = str(self.subst(ref, scope, path))
        if ref in scope.names:
            return scope.names[ref]
        if ref in self.globals:
            return self.globals[ref]
        # A reference to a parameter node (``hidden.weight``) or a full id is checked at build.
        return ref

    # ---- expansion ----------------------------------------------------------------
    def expand_list(
        self, nodes: list[NodeSpec], base: tuple, scope: _Scope, prev: str | None, role: Role
    ) -> str | None:
        for i, node in enumerate(nodes):
            prev = self.expand_node(node, base + (i,), scope, prev, role)
        return prev

    def expand_node(
        self, node: NodeSpec, path: tuple, scope: _Scope, prev: str | None, role: Role
    ) -> str:
        if node.block is not None:
            return self.expand_block(node, path, scope, prev)
        assert node.op is not None
        opname = str(self.subst(node.op, scope, path + ("op",)))
        opdef = REGISTRY.get(opname)
        if opdef is None:
            raise SpecError(
                f"unknown op '{opname}'",
                self.loc(path + ("op",)),
                hint=did_you_mean(opname, REGISTRY) or "run 'graphspec ops' to list the ops",
            )
        if role == "graph" and opdef.category != "op":
            raise SpecError(
                f"'{opname}' is a {opdef.category}; it belongs in the "
                f"{'loss' if opdef.category == 'loss' else 'train.metrics'} section",
                self.loc(path + ("op",)),
            )
        if role == "loss" and opdef.category != "loss":
            losses = [n for n, d in REGISTRY.items() if d.category == "loss"]
            raise SpecError(
                f"'{opname}' is not a loss", self.loc(path + ("op",)),
                hint=did_you_mean(opname, losses) or "losses: " + ", ".join(sorted(losses)),
            )
        local = node.id or (opname if role == "loss" and opname not in self.ids else None)
        full = scope.prefix + local if local else self.fresh_id(scope.prefix + opname)
        self.claim(full, self.loc(path + ("id",)) if node.id else self.loc(path))
        attrs_raw = self.subst(node.attrs, scope, path)
        try:
            attrs = opdef.attrs.model_validate(attrs_raw)
        except Exception as e:  # pydantic.ValidationError

            if not isinstance(e, ValidationError):
                raise
            err = error_from_pydantic(e, self.smap, path, opdef.attrs, attrs_raw)
            if err.message.startswith("missing required key"):
                key = err.message.split("'")[1]
                err.message = f"op '{opname}' needs attribute '{key}'"
                err.hint = f"'graphspec ops {opname}' documents its attributes"
            elif err.message.startswith("unknown key"):
                key = err.message.split("'")[1]
                allowed = list(opdef.attrs.model_fields) + NODE_FIELDS
                err.hint = did_you_mean(key, allowed) or (
                    f"'{opname}' takes: " + (", ".join(opdef.attrs.model_fields) or "no attributes")
                )
                err.message = f"unknown key '{key}' for op '{opname}'"
            raise err from None
        explicit = node.in_ is not None
        if node.in_ is None:
            refs: list[str] = []
            in_locs: list[Location | None] = []
            if opdef.inputs and not opdef.inputs[0].variadic or (
                opdef.inputs and role == "graph"
            ):
                if prev is None:
                    raise self.no_input_error(full, path, role)
                refs = [prev]
                in_locs = [self.loc(path)]
        else:
            raw = node.in_ if isinstance(node.in_, list) else [node.in_]
            in_path = path + ("in",)
            refs = []
            in_locs = []
            for j, r in enumerate(raw):
                p = in_path + (j,) if isinstance(node.in_, list) else in_path
                refs.append(self.resolve(str(r), scope, p))
                in_locs.append(self.loc(p))
        init = self.subst(node.init or {}, scope, path + ("init",))
        if isinstance(init, str) or (isinstance(init, dict) and isinstance(init.get("name"), str)):
            # An initializer written directly: it belongs to the op's only parameter.
            init = {"": init}
        shared = {
            k: self.resolve(str(v), scope, path + ("params", k))
            for k, v in (node.params or {}).items()
        }
        if role != "loss" and "weight" in node.model_fields_set:
            raise SpecError(
                f"'weight' scales loss terms; '{opname}' here is not one",
                self.loc(path + ("weight",), key=True),
                hint="move the term under 'loss:', or drop 'weight'",
            )
        weight = self.subst(node.weight, scope, path + ("weight",))
        if not isinstance(weight, int | float) or isinstance(weight, bool):
            raise SpecError(
                f"weight must be a number, got {weight!r}", self.loc(path + ("weight",))
            )
        if not _finite(weight):
            raise SpecError(
                f"weight must be a finite number, got {weight!r}", self.loc(path + ("weight",))
            )
        flat = FlatNode(
            id=full, op=opname, inputs=refs, attrs=attrs, role=role, init=init, shared=shared,
            weight=float(weight), src=self.loc(path), in_locs=in_locs,
            block=scope.block_path, cluster=scope.cluster, used_at=scope.used_at,
            explicit_inputs=explicit,
        )
        self.nodes.append(flat)
        if node.id:
            scope.names[node.id] = full
        return full

    def no_input_error(self, full: str, path: tuple, role: Role) -> SpecError:
        names = list(self.spec.inputs)
        if role == "graph" and not self.nodes and len(names) > 1:
            return SpecError(
                f"node '{full}' has no 'in', and the spec has several inputs "
                f"({', '.join(names)}): which one does it read?",
                self.loc(path),
                hint=f"name it: in: {names[0]}",
            )
        return SpecError(
            f"node '{full}' has no 'in' and there is no previous node to read",
            self.loc(path),
            hint="name its input: in: " + names[0],
        )

    def expand_block(self, node: NodeSpec, path: tuple, scope: _Scope, prev: str | None) -> str:
        assert node.block is not None
        bname = node.block
        block = self.spec.blocks.get(bname)
        if block is None:
            raise SpecError(
                f"unknown block '{bname}'", self.loc(path + ("block",)),
                hint=did_you_mean(bname, self.spec.blocks) or (
                    "blocks: " + ", ".join(self.spec.blocks) if self.spec.blocks
                    else "define it under 'blocks:'"),
            )
        if bname in scope.block_path:
            raise SpecError(f"block '{bname}' uses itself", self.loc(path + ("block",)))
        if len(scope.block_path) >= MAX_BLOCK_DEPTH:
            raise SpecError(
                f"blocks nest more than {MAX_BLOCK_DEPTH} deep here (the limit)",
                self.loc(path + ("block",)),
                notes=[("blocks used on the way: " + " > ".join(scope.block_path[:8])
                        + (" > ..." if len(scope.block_path) > 8 else ""), None)],
            )
        args = self.subst(node.attrs, scope, path)
        for k in args:
            if k not in block.params:
                raise SpecError(
                    f"unknown parameter '{k}' for block '{bname}'",
                    self.loc(path + (k,), key=True),
                    hint=did_you_mean(k, block.params)
                    or ("its parameters: " + ", ".join(block.params) if block.params
                        else f"block '{bname}' takes no parameters"),
                )
        env = {}
        for k, default in block.params.items():
            if k in args:
                env[k] = args[k]
            elif default is None:
                raise SpecError(f"block '{bname}' needs parameter '{k}'", self.loc(path))
            else:
                env[k] = default
        repeat = self.subst(
            node.repeat if node.repeat is not None else 1, scope, path + ("repeat",)
        )
        if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
            raise SpecError(
                f"repeat must be a positive integer, got {repeat!r}", self.loc(path + ("repeat",))
            )
        # Refused before expanding anything: the nodes this use adds, counted from the block
        # definitions (nested blocks and their repeats included).
        size = self.block_size(bname)
        if repeat * size > MAX_EXPANDED_NODES:
            raise SpecError(
                f"repeat {repeat:,} of block '{bname}' ({size:,} nodes) expands to "
                f"more than {MAX_EXPANDED_NODES:,} nodes (the limit)",
                self.loc(path + ("repeat",)),
            )
        total = len(self.ids) + 1 + repeat * size  # + 1: the instance's own id
        if total > MAX_EXPANDED_NODES:
            raise SpecError(
                f"repeat {repeat:,} of block '{bname}' ({size:,} nodes) would bring the spec "
                f"to {total:,} nodes, more than "
                f"{MAX_EXPANDED_NODES:,} (the limit)",
                self.loc(path + ("repeat",)),
            )
        if node.in_ is not None:
            if isinstance(node.in_, list):
                if len(node.in_) != 1:
                    raise SpecError("a block reads exactly one input", self.loc(path + ("in",)))
                ref = node.in_[0]
            else:
                ref = node.in_
            current = self.resolve(str(ref), scope, path + ("in",))
        elif prev is None:
            raise SpecError(f"block '{bname}' has no 'in' and no previous node", self.loc(path))
        else:
            current = prev
        inst = scope.prefix + (node.id or self.fresh_id(bname))
        self.claim(inst, self.loc(path))
        for r in range(repeat):
            sub = f"{inst}.{r}." if repeat > 1 else f"{inst}."
            inner = _Scope(
                prefix=sub, env=env, block_input=current, names={},
                block_path=scope.block_path + (bname,), used_at=scope.used_at or self.loc(path),
                cluster=scope.cluster + (sub[:-1],),
            )
            try:
                out = self.expand_list(
                    block.graph, ("blocks", bname, "graph"), inner, current, "graph"
                )
            except SpecError as e:
                # The error points into the block's definition; say which use led there
                # (the innermost few: nested blocks would otherwise add one note per level).
                if len(e.notes) < MAX_USE_NOTES:
                    e.notes.append((f"in block '{bname}' used here", self.loc(path)))
                raise
            assert out is not None
            current = out
        self.aliases[inst] = current
        if node.id:
            scope.names[node.id] = inst
        return current

    def block_size(self, bname: str, depth: int = 0) -> int:
        """The nodes one instance of block ``bname`` adds (its instance ids included),
        capped just past the limit.  A ``$name`` repeat counts once, an unknown block or a
        cycle as nothing: expansion reports those where they are."""
        if bname in self.sizes:
            return self.sizes[bname]
        block = self.spec.blocks.get(bname)
        if block is None or depth > MAX_BLOCK_DEPTH:
            return 0
        self.sizes[bname] = 0  # while counting: a block using itself adds nothing
        total = 0
        for node in block.graph:
            total += 1
            if node.block is not None:
                times = node.repeat if isinstance(node.repeat, int) else 1
                total += times * self.block_size(node.block, depth + 1)
            total = min(total, MAX_EXPANDED_NODES + 1)
        self.sizes[bname] = total
        return total

    def expand_metric(self, m: Any, path: tuple, scope: _Scope) -> None:
        """A metric is a node, or a bare op name reading the first loss term's inputs (and
        taking the options it shares with that term)."""
        if isinstance(m, NodeSpec):
            self.expand_node(m, path, scope, None, "metric")
            return
        opdef = REGISTRY.get(m)
        if opdef is None or opdef.category != "metric":
            metrics = [n for n, d in REGISTRY.items() if d.category == "metric"]
            raise SpecError(
                f"unknown metric '{m}'", self.loc(path),
                hint=did_you_mean(m, metrics) or "metrics: " + ", ".join(sorted(metrics)),
            )
        first = next((n for n in self.nodes if n.role == "loss" and n.explicit_inputs), None)
        if first is None or len(first.inputs) < 2:
            raise SpecError(
                f"metric '{m}' needs 'in' (there is no loss term with a prediction and a target)",
                self.loc(path),
                hint=f"write it as {{op: {m}, in: [prediction, target]}}",
            )
        self.claim(m, self.loc(path))
        # It reads the loss's prediction as the loss does: the options both have (the class
        # axis and ignore_index of cross_entropy for accuracy) are the loss's.
        shared = {k: getattr(first.attrs, k) for k in opdef.attrs.model_fields
                  if k in type(first.attrs).model_fields}
        self.nodes.append(FlatNode(
            id=m, op=m, inputs=first.inputs[:2], attrs=opdef.attrs(**shared), role="metric",
            src=self.loc(path), in_locs=[self.loc(path)] * 2,
        ))


def expand(spec: Spec) -> Expanded:
    """Flatten a validated spec into explicit nodes."""
    ex = Expander(spec)
    top = _Scope(prefix="", env={}, block_input=None, names={}, block_path=(), used_at=None)
    first_input = next(iter(spec.inputs)) if len(spec.inputs) == 1 else None
    last = ex.expand_list(spec.graph, ("graph",), top, first_input, "graph")
    assert last is not None
    outputs: dict[str, str] = {}
    output_locs: dict[str, Location | None] = {}
    for i, name in enumerate(spec.outputs or [last]):
        outputs[name] = ex.resolve(name, top, ("outputs", i))
        output_locs[name] = ex.loc(("outputs", i)) if spec.outputs else None
    for i, term in enumerate(spec.loss):
        ex.expand_node(term, ("loss", i), top, None, "loss")
    if spec.train is not None:
        for i, m in enumerate(spec.train.metrics):
            ex.expand_metric(m, ("train", "metrics", i), top)
    return Expanded(dict(spec.inputs), ex.nodes, outputs, output_locs, ex.aliases)


def _finite(x: int | float) -> bool:
    """Whether ``x`` is a finite float (an int too large for a float is not)."""
    try:
        return math.isfinite(x)
    except OverflowError:
        return False
