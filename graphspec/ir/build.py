"""Build the typed IR from an expanded spec: structure, cycles, shapes, parameters, checks."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import networkx as nx

from graphspec.errors import Location, SpecError, did_you_mean
from graphspec.gc_pause import gc_paused
from graphspec.ir.checks import check_warnings
from graphspec.ir.estimators import add_reinforce_surrogates
from graphspec.ir.graph import IR
from graphspec.ir.initializers import check as check_init
from graphspec.ir.node import (
    InputNode,
    Node,
    OpNode,
    OutputNode,
    ParamNode,
    add_node,
    node_of,
)
from graphspec.ir.traverse import has_cycle, lex_topo_order
from graphspec.ops import REGISTRY, OpDef
from graphspec.ops.registry import Attrs, ParamDecl, ShapeError, TensorType
from graphspec.spec.expand import Expanded, FlatNode, expand
from graphspec.spec.models import Spec

# Larger than any parameter a CPU or one GPU could hold in float32 (8 GiB): such a number is
# a typo, and drawing it would exhaust memory instead of failing with a located error.
MAX_PARAM_ELEMENTS = 2**31


def build(spec: Spec) -> IR:
    """Expand, build and type-check a spec; raises :class:`SpecError` with a location."""
    with gc_paused():
        return build_expanded(expand(spec), spec)


def build_expanded(ex: Expanded, spec: Spec) -> IR:
    """The IR of an expanded spec; ``ex`` is read, never changed."""
    return _Builder(ex, spec).build()


class _Builder:
    """Builds the graph in two steps: the structure first (every node id and the edges
    between them, to find cycles and an order), then a typed node per id in that order."""

    def __init__(self, ex: Expanded, spec: Spec) -> None:
        self.ex = ex
        self.spec = spec
        self.g = nx.MultiDiGraph()
        self.flat = {n.id: n for n in ex.nodes}
        # Each op node's arguments as the spec names them, block aliases resolved.
        self.args = {n.id: [ex.aliases.get(ref, ref) for ref in n.inputs] for n in ex.nodes}
        # Argument positions naming parameters (``hidden.weight``), resolved once they exist.
        self.deferred: dict[str, list[int]] = {}
        self.params: list[ParamNode] = []  # trainable, in creation order
        self.state: list[ParamNode] = []  # state buffers

    def typed(self, nid: str) -> Node | None:
        """The typed node ``nid``; None while only its place in the structure is known."""
        node: Node | None = self.g.nodes[nid].get("node")
        return node

    def build(self) -> IR:
        ex, spec, g = self.ex, self.spec, self.g
        for name, ispec in spec.input_specs().items():
            loc = spec.source.locate(("inputs", name)) if spec.source else None
            add_node(g, InputNode(
                id=name, type=TensorType(tuple(ispec.shape), ispec.dtype), src=loc,
                differentiable=ispec.differentiable and ispec.dtype == "float",
            ))
        for n in ex.nodes:
            g.add_node(n.id)
        self.link()
        if has_cycle(g):
            self.check_cycles()  # names the cycle

        graph_nodes = [n.id for n in ex.nodes if n.role == "graph"]
        other = [n.id for n in ex.nodes if n.role != "graph"]
        for phase in (lex_topo_order(g, [*spec.inputs, *graph_nodes]), other):
            for nid in phase:
                if nid in self.flat:
                    add_node(g, self.op_node(self.flat[nid]))

        outputs = {}
        for name, ref in ex.outputs.items():
            ref = ex.aliases.get(ref, ref)
            if ref not in g:
                raise _unknown_ref(ref, ex.output_locs.get(name), g, ex)
            oid = f"output:{name}"
            add_node(g, OutputNode(
                id=oid, inputs=(ref,), type=node_of(g, ref).type, src=ex.output_locs.get(name),
            ))
            g.add_edge(ref, oid, key=0, arg=0)
            outputs[name] = ref
        losses = [(n.id, n.weight) for n in ex.nodes if n.role == "loss"]
        for lid, _ in losses:
            t = node_of(g, lid).type
            if t.shape != ():
                raise SpecError(
                    f"loss term '{lid}' must be a scalar, got shape {t}", self.flat[lid].src
                )
        metrics = [n.id for n in ex.nodes if n.role == "metric"]
        ir = IR(
            graph=g, name=spec.name, seed=spec.seed, order=lex_topo_order(g),
            inputs=list(spec.inputs), params=[p.id for p in self.params],
            state=[s.id for s in self.state], outputs=outputs,
            losses=losses, metrics=metrics, spec=spec,
        )
        ir = dataclasses.replace(ir, warnings=check_warnings(ir))
        return add_reinforce_surrogates(ir)

    def link(self) -> None:
        """Resolve references and add an edge per argument; parameter references
        (``hidden.weight``) wait until the parameters exist."""
        g, flat = self.g, self.flat
        for n in self.ex.nodes:
            args = self.args[n.id]
            for i, ref in enumerate(args):
                if ref in flat and n.role == "graph" and flat[ref].role != "graph":
                    # Graph nodes are typed before loss terms and metrics: and a model that
                    # reads its own loss is a mistake (an id used twice, an edit gone wrong).
                    raise SpecError(
                        f"graph node '{n.id}' reads '{ref}', which is a {flat[ref].role} term; "
                        "the graph cannot depend on the loss or metrics",
                        _in_loc(n, i),
                        notes=[(f"'{ref}' is defined here", flat[ref].src)],
                    )
                if ref in g:
                    continue
                if _looks_like_param(ref, flat):
                    self.deferred.setdefault(n.id, []).append(i)
                    continue
                raise _unknown_ref(ref, _in_loc(n, i), g, self.ex)
            for i, ref in enumerate(args):
                if i not in self.deferred.get(n.id, []):
                    g.add_edge(ref, n.id, key=i, arg=i)

    def src(self, nid: str) -> Location | None:
        node = self.typed(nid)
        return node.src if node is not None else self.flat[nid].src

    def check_cycles(self) -> None:
        try:
            cycle = nx.find_cycle(self.g)
        except nx.NetworkXNoCycle:
            return
        path = [e[0] for e in cycle] + [cycle[0][0]]
        first = path[0]
        raise SpecError(
            "the graph has a cycle: " + " -> ".join(path),
            self.src(first),
            notes=[(f"'{n}' is defined here", self.src(n)) for n in path[1:-1][:3]],
            hint="a node cannot depend on its own output; recurrence is not supported yet",
        )

    def op_node(self, n: FlatNode) -> OpNode:
        """The typed node of ``n``, creating its parameters and state buffers."""
        g, ex = self.g, self.ex
        opdef = REGISTRY[n.op]
        attrs = n.attrs
        ins = self.args[n.id]
        # Penalties without 'in' read every penalized parameter created so far.
        if (not ins and opdef.inputs and opdef.inputs[0].variadic
                and opdef.inputs[0].name == "params"):
            ins = [p.id for p in self.params if p.decl.penalize]
            if not ins:
                raise SpecError(f"'{n.op}' has no weights to penalize", n.src)
            for i, p in enumerate(ins):
                g.add_edge(p, n.id, key=i, arg=i)
        for i in self.deferred.get(n.id, []):
            if ins[i] not in g:
                raise _unknown_ref(ins[i], _in_loc(n, i), g, ex)
            g.add_edge(ins[i], n.id, key=i, arg=i)
        _check_arity(n, opdef, len(ins))
        types: list[TensorType] = []
        for i, ref in enumerate(ins):
            arg = self.typed(ref)
            if arg is None:  # a loss term or metric not typed yet: defined later
                raise SpecError(
                    f"'{n.id}' reads '{ref}', a {self.flat[ref].role} term defined "
                    "after it; loss terms and metrics read the graph's nodes and inputs",
                    _in_loc(n, i),
                    notes=[(f"'{ref}' is defined here", self.flat[ref].src)],
                )
            types.append(arg.type)
        self.check_dtypes(n, opdef, attrs, ins, types)
        try:
            decls = attrs.params(*types)
            states = attrs.state(*types)
        except ShapeError as e:
            raise _shape_error(g, n, ins, str(e)) from None
        unknown = set(n.shared) - set(decls)
        if unknown:
            name = sorted(unknown)[0]
            raise SpecError(
                f"op '{n.op}' has no parameter '{name}'", n.src,
                hint=did_you_mean(name, decls) or ("its parameters: " + ", ".join(decls) if decls
                                                   else f"'{n.op}' has no parameters"),
            )
        init = n.init
        if "" in init:
            if len(decls) != 1:
                raise SpecError(
                    f"'{n.op}' has {len(decls)} parameters; name the one to initialize "
                    f"(init: {{{next(iter(decls), 'weight')}: ...}})", n.src,
                )
            init = {next(iter(decls)): init[""]}
        unknown_init = set(init) - set(decls)
        if unknown_init:
            name = sorted(unknown_init)[0]
            raise SpecError(f"init names unknown parameter '{name}' of op '{n.op}'", n.src,
                            hint=did_you_mean(name, decls))
        arg_ids = list(ins)
        for pname, decl in decls.items():
            arg_ids.append(self.param_node(n, pname, decl, init, trainable=True))
        for sname, decl in states.items():
            arg_ids.append(self.param_node(n, sname, decl, init, trainable=False))
        for k, a in enumerate(arg_ids[len(ins):], start=len(ins)):
            g.add_edge(a, n.id, key=k, arg=k)
        try:
            out = attrs.infer(*(node_of(g, a).type for a in arg_ids))
        except ShapeError as e:
            raise _shape_error(g, n, ins, str(e)) from None
        return OpNode(
            id=n.id, op=n.op, attrs=attrs, inputs=tuple(arg_ids), n_inputs=len(ins), type=out,
            state=tuple(states), role=n.role, weight=n.weight, src=n.src, block=n.block,
            cluster=n.cluster,
        )

    def check_dtypes(
        self, n: FlatNode, opdef: OpDef, attrs: Attrs, ins: list[str], types: list[TensorType]
    ) -> None:
        """Each argument's element kind is one its declared input takes (an int input into a
        float op is refused here, at its reference, not deep inside a kernel)."""
        for i, (inp, ref, t) in enumerate(zip(opdef.arg_inputs(len(ins), attrs), ins, types)):
            if inp.accepts(t):
                continue
            if inp.dtype == "float":
                hint = (
                    "integer tensors feed only inputs that take them (indices, class targets, "
                    f"reshape and the like); declare '{ref}' with dtype float to compute with "
                    "its values"
                )
            else:
                hint = f"declare '{ref}' with dtype {inp.dtype}"
            kind = "an int" if inp.dtype == "int" else f"a {inp.dtype}"
            raise SpecError(
                f"'{n.id}' ({n.op}) takes {kind} tensor as its input '{inp.name}', but "
                f"'{ref}' is {t}",
                _in_loc(n, i),
                notes=[(f"'{ref}' is defined here", node_of(self.g, ref).src)],
                hint=hint,
            )

    def param_node(
        self, n: FlatNode, pname: str, decl: ParamDecl, init: dict[str, Any], trainable: bool
    ) -> str:
        """The id of parameter ``pname`` of ``n``: a new node, or the one it shares."""
        g = self.g
        if pname in n.shared:
            ref = n.shared[pname]
            shared = self.typed(ref) if ref in g else None
            if not isinstance(shared, ParamNode):
                params = [p for p in g if isinstance(self.typed(p), ParamNode)]
                raise SpecError(
                    f"params.{pname} must name an existing parameter, got '{ref}'", n.src,
                    hint=did_you_mean(ref, params),
                )
            have = shared.type.shape
            if have != decl.shape:
                raise SpecError(
                    f"shared parameter '{ref}' has shape {list(have)}, but '{n.id}' needs "
                    f"{list(decl.shape)} for its {pname}",
                    n.src, notes=[(f"'{ref}' is created here", shared.src)],
                )
            return ref
        numel = math.prod(decl.shape)
        if numel > MAX_PARAM_ELEMENTS:
            raise SpecError(
                f"parameter '{n.id}.{pname}' would have {numel:,} elements {list(decl.shape)}; "
                f"one parameter may hold at most {MAX_PARAM_ELEMENTS:,}",
                n.src,
                hint="a dimension is absurdly large: check 'units', 'shape' and the input sizes",
            )
        # An explicit ``param`` node is its own parameter: others read it by the node's id.
        pid = f"{n.id}.{pname}"
        if pid in g:
            raise SpecError(f"parameter '{pid}' clashes with a node of the same name", n.src)
        chosen = init.get(pname, decl.init)
        problem = check_init(chosen)
        if problem:
            raise SpecError(f"init of '{n.id}.{pname}': {problem}", n.src)
        node = ParamNode(
            id=pid, type=TensorType(decl.shape), decl=decl, init=chosen, trainable=trainable,
            owner=n.id, src=n.src, block=n.block, cluster=n.cluster,
        )
        add_node(g, node)
        (self.params if trainable else self.state).append(node)
        return pid


def _in_loc(n: FlatNode, i: int) -> Location | None:
    """Where argument ``i`` of ``n`` is written (the node's own location if not listed)."""
    return n.in_locs[i] if i < len(n.in_locs) else n.src


def _looks_like_param(ref: str, flat: dict[str, FlatNode]) -> bool:
    owner, _, pname = ref.rpartition(".")
    return bool(owner) and owner in flat and bool(pname)


def _unknown_ref(ref: str, loc: Location | None, g: nx.MultiDiGraph, ex: Expanded) -> SpecError:
    names = [n for n in g.nodes] + list(ex.aliases)
    return SpecError(
        f"unknown node '{ref}'",
        loc,
        hint=did_you_mean(ref, names) or "inputs and node ids: " + ", ".join(names[:12]),
    )


def _check_arity(n: FlatNode, opdef: OpDef, count: int) -> None:
    fixed = [i for i in opdef.inputs if not i.variadic]
    variadic = any(i.variadic for i in opdef.inputs)
    optional = sum(1 for i in opdef.inputs if i.optional)
    lo = len(fixed) - optional
    ok = count >= max(lo, 1 if variadic else lo) if variadic else lo <= count <= len(fixed)
    if not ok:
        names = ", ".join(i.name + ("..." if i.variadic else "") for i in opdef.inputs) or "none"
        want = f"at least {max(lo, 1)}" if variadic else (
            str(len(fixed)) if lo == len(fixed) else f"{lo} to {len(fixed)}")
        raise SpecError(
            f"op '{n.op}' takes {want} input{'s' if want != '1' else ''} ({names}), got {count}",
            n.in_locs[0] if n.in_locs else n.src,
        )


def _shape_error(g: nx.MultiDiGraph, n: FlatNode, ins: list[str], msg: str) -> SpecError:
    notes = [
        (f"'{i}' has shape {node_of(g, i).type}", node_of(g, i).src) for i in dict.fromkeys(ins)
    ]
    if n.block and n.used_at is not None:
        notes.append((f"in block '{n.block[-1]}' used here", n.used_at))
    return SpecError(f"shape mismatch in '{n.id}' ({n.op}): {msg}", n.src, notes=notes)
