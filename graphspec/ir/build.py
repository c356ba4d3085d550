"""Build the typed IR from an expanded spec: structure, cycles, shapes, parameters, checks."""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Iterator
from typing import Any

import networkx as nx

from graphspec.errors import Location, SpecError, did_you_mean
from graphspec.ir.graph import IR
from graphspec.ir.traverse import has_cycle, lex_topo_order
from graphspec.ops import REGISTRY
from graphspec.ops.registry import ParamDecl, ShapeError, TensorType
from graphspec.spec.expand import Expanded, FlatNode, expand
from graphspec.spec.models import Spec

# Larger than any parameter a CPU or one GPU could hold in float32 (8 GiB): such a number is
# a typo, and drawing it would exhaust memory instead of failing with a located error.
MAX_PARAM_ELEMENTS = 2**31


def build(spec: Spec) -> IR:
    """Expand, build and type-check a spec; raises :class:`SpecError` with a location."""
    with _gc_paused():
        return build_expanded(expand(spec), spec)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Building allocates a few dozen long-lived objects per node and frees no cycles; the
    cyclic collector's full passes over that growing heap made building superlinear (1e5
    nodes: 40% of the time).  Collection resumes afterwards, as it was."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def build_expanded(ex: Expanded, spec: Spec) -> IR:
    g = nx.MultiDiGraph()
    for name, ispec in spec.input_specs().items():
        loc = spec.source.locate(("inputs", name)) if spec.source else None
        g.add_node(
            name, kind="input", op=None, inputs=[],
            type=TensorType(tuple(ispec.shape), ispec.dtype), src=loc, block=(), cluster=(),
            differentiable=ispec.differentiable and ispec.dtype == "float",
        )
    flat = {n.id: n for n in ex.nodes}
    for n in ex.nodes:
        g.add_node(
            n.id, kind="op", op=n.op, attrs=n.attrs, inputs=list(n.inputs), n_inputs=len(n.inputs),
            state=[], src=n.src, role=n.role, block=n.block, cluster=n.cluster,
            weight=n.weight,
        )
    # Resolve references; parameter references (``hidden.weight``) wait until params exist.
    deferred: dict[str, list[int]] = {}
    for n in ex.nodes:
        for i, ref in enumerate(n.inputs):
            ref = ex.aliases.get(ref, ref)
            n.inputs[i] = ref
            if ref in flat and n.role == "graph" and flat[ref].role != "graph":
                # Graph nodes are typed before loss terms and metrics: and a model that
                # reads its own loss is a mistake (an id used twice, an edit gone wrong).
                raise SpecError(
                    f"graph node '{n.id}' reads '{ref}', which is a {flat[ref].role} term; the "
                    "graph cannot depend on the loss or metrics",
                    n.in_locs[i] if i < len(n.in_locs) else n.src,
                    notes=[(f"'{ref}' is defined here", flat[ref].src)],
                )
            if ref in g:
                continue
            if _looks_like_param(ref, flat):
                deferred.setdefault(n.id, []).append(i)
                continue
            raise _unknown_ref(ref, n.in_locs[i] if i < len(n.in_locs) else n.src, g, ex)
        g.nodes[n.id]["inputs"] = list(n.inputs)
        for i, ref in enumerate(n.inputs):
            if i not in deferred.get(n.id, []):
                g.add_edge(ref, n.id, key=i, arg=i)
    if has_cycle(g):
        _check_cycles(g)  # names the cycle

    params: list[str] = []
    state: list[str] = []
    graph_nodes = [n.id for n in ex.nodes if n.role == "graph"]
    other = [n.id for n in ex.nodes if n.role != "graph"]
    for phase in (lex_topo_order(g, [*spec.inputs, *graph_nodes]), other):
        for nid in phase:
            if g.nodes[nid]["kind"] != "op":
                continue
            _infer_node(g, flat[nid], params, state, deferred.get(nid, []), ex)

    outputs = {}
    for name, ref in ex.outputs.items():
        ref = ex.aliases.get(ref, ref)
        if ref not in g:
            raise _unknown_ref(ref, ex.output_locs.get(name), g, ex)
        oid = f"output:{name}"
        g.add_node(oid, kind="output", op=None, inputs=[ref], type=g.nodes[ref]["type"],
                   src=ex.output_locs.get(name), block=(), cluster=())
        g.add_edge(ref, oid, key=0, arg=0)
        outputs[name] = ref
    losses = [(n.id, n.weight) for n in ex.nodes if n.role == "loss"]
    for lid, _ in losses:
        t = g.nodes[lid]["type"]
        if t.shape != ():
            raise SpecError(f"loss term '{lid}' must be a scalar, got shape {t}", flat[lid].src)
    metrics = [n.id for n in ex.nodes if n.role == "metric"]
    order = lex_topo_order(g)
    ir = IR(
        graph=g, name=spec.name, seed=spec.seed, order=order, inputs=list(spec.inputs),
        params=params, state=state, outputs=outputs, losses=losses, metrics=metrics, spec=spec,
    )
    from graphspec.ir.checks import run_checks

    run_checks(ir)
    from graphspec.ir.estimators import add_reinforce_surrogates

    return add_reinforce_surrogates(ir)


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


def _check_cycles(g: nx.MultiDiGraph) -> None:
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return
    path = [e[0] for e in cycle] + [cycle[0][0]]
    first = path[0]
    raise SpecError(
        "the graph has a cycle: " + " -> ".join(path),
        g.nodes[first].get("src"),
        notes=[(f"'{n}' is defined here", g.nodes[n].get("src")) for n in path[1:-1][:3]],
        hint="a node cannot depend on its own output; recurrence is not supported yet",
    )


def _infer_node(
    g: nx.MultiDiGraph,
    n: FlatNode,
    params: list[str],
    state: list[str],
    deferred: list[int],
    ex: Expanded,
) -> None:
    node = g.nodes[n.id]
    opdef = REGISTRY[n.op]
    attrs = node["attrs"]
    ins = list(node["inputs"])
    # Penalties without 'in' read every penalized parameter created so far.
    if not ins and opdef.inputs and opdef.inputs[0].variadic and opdef.inputs[0].name == "params":
        ins = [p for p in params if g.nodes[p]["decl"].penalize]
        if not ins:
            raise SpecError(f"'{n.op}' has no weights to penalize", n.src)
        node["inputs"] = ins
        node["n_inputs"] = len(ins)
        for i, p in enumerate(ins):
            g.add_edge(p, n.id, key=i, arg=i)
    for i in deferred:
        if ins[i] not in g:
            raise _unknown_ref(ins[i], n.in_locs[i] if i < len(n.in_locs) else n.src, g, ex)
        g.add_edge(ins[i], n.id, key=i, arg=i)
    _check_arity(n, opdef, len(ins))
    for i, ref in enumerate(ins):
        if "type" not in g.nodes[ref]:  # a loss term or metric not typed yet: defined later
            raise SpecError(
                f"'{n.id}' reads '{ref}', a {g.nodes[ref].get('role', 'later')} term defined "
                "after it; loss terms and metrics read the graph's nodes and inputs",
                n.in_locs[i] if i < len(n.in_locs) else n.src,
                notes=[(f"'{ref}' is defined here", g.nodes[ref].get("src"))],
            )
    types = [g.nodes[i]["type"] for i in ins]
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
    if "" in n.init:
        if len(decls) != 1:
            raise SpecError(
                f"'{n.op}' has {len(decls)} parameters; name the one to initialize "
                f"(init: {{{next(iter(decls), 'weight')}: ...}})", n.src,
            )
        n.init = {next(iter(decls)): n.init[""]}
    unknown_init = set(n.init) - set(decls)
    if unknown_init:
        name = sorted(unknown_init)[0]
        raise SpecError(f"init names unknown parameter '{name}' of op '{n.op}'", n.src,
                        hint=did_you_mean(name, decls))
    arg_ids = list(ins)
    for pname, decl in decls.items():
        arg_ids.append(_param_node(g, n, pname, decl, params, trainable=True))
    for sname, decl in states.items():
        arg_ids.append(_param_node(g, n, sname, decl, state, trainable=False))
    for k, a in enumerate(arg_ids[len(ins):], start=len(ins)):
        g.add_edge(a, n.id, key=k, arg=k)
    all_types = [g.nodes[a]["type"] for a in arg_ids]
    try:
        out = attrs.infer(*all_types)
    except ShapeError as e:
        raise _shape_error(g, n, ins, str(e)) from None
    node["inputs"] = arg_ids
    node["n_inputs"] = len(ins)
    node["state"] = list(states)
    node["type"] = out


def _param_node(
    g: nx.MultiDiGraph, n: FlatNode, pname: str, decl: ParamDecl, into: list[str], trainable: bool
) -> str:
    if pname in n.shared:
        ref = n.shared[pname]
        if ref not in g or g.nodes[ref]["kind"] != "param":
            raise SpecError(
                f"params.{pname} must name an existing parameter, got '{ref}'", n.src,
                hint=did_you_mean(ref, [p for p in g.nodes if g.nodes[p]["kind"] == "param"]),
            )
        have = g.nodes[ref]["type"].shape
        if have != decl.shape:
            raise SpecError(
                f"shared parameter '{ref}' has shape {list(have)}, but '{n.id}' needs "
                f"{list(decl.shape)} for its {pname}",
                n.src, notes=[(f"'{ref}' is created here", g.nodes[ref].get("src"))],
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
    init = n.init.get(pname, decl.init)
    from graphspec.ir.initializers import check as check_init

    problem = check_init(init)
    if problem:
        raise SpecError(f"init of '{n.id}.{pname}': {problem}", n.src)
    g.add_node(
        pid, kind="param", op=None, inputs=[], type=TensorType(decl.shape), src=n.src,
        block=n.block, cluster=n.cluster, decl=decl, init=init, trainable=trainable, owner=n.id,
    )
    into.append(pid)
    return pid


def _check_arity(n: FlatNode, opdef: Any, count: int) -> None:
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
        (f"'{i}' has shape {g.nodes[i]['type']}", g.nodes[i].get("src")) for i in dict.fromkeys(ins)
    ]
    if n.block and n.used_at is not None:
        notes.append((f"in block '{n.block[-1]}' used here", n.used_at))
    return SpecError(f"shape mismatch in '{n.id}' ({n.op}): {msg}", n.src, notes=notes)
