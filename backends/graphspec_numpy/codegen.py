"""Write a standalone NumPy module for an IR: kernels, ``forward``, ``evaluate``, the backward.

The backward pass is reverse-mode differentiation spelled out line by line: walk the op nodes in
reverse topological order (only those between the differentiable leaves and the loss), call
each op's hand-written VJP with the cotangent ``g_<node>``, undo broadcasting, and add the
result into the cotangent of each argument (a value read twice gets two contributions).
A VJP gets what it declares it reads (graphspec_numpy.kernels): the output, some arguments,
and the residuals its forward handed over (``h, res_h = layer_norm(..., save=True)``);
everything else is passed as None.  Values are deleted after their last use, in the forward
and the backward pass alike.

``loss_and_grads`` holds the forward pass once; with ``input_grads=False`` (the trainer's
``loss_and_param_grads``) it skips the statements only input gradients need, and tells VJPs
so through ``needs``.

The in-process Program executes exactly this text, so the written file and the Program
produce the same numbers by construction.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Iterable
from typing import Any

import numpy as np

from graphspec.codegen import emit
from graphspec.codegen.emit import Names, Stmt
from graphspec.codegen.kernels import Rules, collect
from graphspec.codegen.text import comment, literal, load_module
from graphspec.ir.graph import IR
from graphspec.ir.plan import Call, Plan
from graphspec_numpy import templates
from graphspec_numpy.kernels import FRESH, IN_PLACE, KERNELS, RESIDUALS, SPECS, VJPS, VjpSpec
from graphspec_numpy.kernels._prelude import unbroadcast

RULES = Rules(
    backend="numpy", package="graphspec_numpy.kernels", modules={"np": np},
    decorators=frozenset({"kernel", "vjp"}),
)
INPUT_GRADS = "input_grads"  # the guard of statements only input gradients need
LOSSES = "losses"  # the guard of statements only losses and metrics need
UPDATE = "update is not None"  # the guard of the fused optimizer updates
# Top-level names of a generated module besides its kernels (node variables avoid them).
MODULE_NAMES = [
    "INPUTS", "PARAMS", "STATE", "OUTPUTS", "LOSS_TERMS", "METRICS", "_RNG", "_draw", "_g",
    "_main", "forward", "evaluate", "loss_and_grads", "loss_and_param_grads", "backward",
    "load_checkpoint", "load_initial_params", INPUT_GRADS, LOSSES, "unbroadcast", "update",
]
HEADER = ["import numpy as np"]  # the imports of every generated module (RULES.modules)


def generate(ir: IR) -> str:
    ops_used = sorted({ir.op(n).op for n in ir.op_nodes()})
    per_op = [f for o in ops_used for f in (KERNELS[o], VJPS.get(o)) if f is not None]
    plan = Plan(ir, reserved=MODULE_NAMES + [f.__name__ for f in per_op])
    gen = _Generator(plan)
    functions = gen.evaluate_fn() + gen.loss_and_grads_fn()
    # Copied: the kernels the functions call (each op's kernel beside its VJP) and, through
    # them, the helpers those call.
    rank = {f: i for i, f in enumerate(per_op)}
    lib = collect(sorted(gen.called, key=lambda f: rank.get(f, len(rank))), RULES, "\n\n")
    out: list[str] = [
        emit.module_docstring(ir, [
            "Standalone: imports only numpy. `forward` computes the outputs, `evaluate` the loss",
            "terms and metrics, `loss_and_grads` the loss and its gradient by hand-written",
            "backpropagation (one line per node each way), `backward` just the gradients.",
            "`load_checkpoint` reads a graphspec checkpoint (.npz).",
            "",
        ]),
        "",
        *HEADER,
        "",
        "# ---- kernels " + "-" * 70,
        "",
        lib.source,
        "",
        "",
        "# ---- the graph " + "-" * 68,
        "",
        *emit.tables(ir),
    ]
    if gen.draws:
        out += ["", *templates.noise_helper()]
    out += [*functions, *templates.entry_points(), *templates.script_entry()]
    return "\n".join(out) + "\n"


@functools.cache
def kernel_module(op: str) -> types.ModuleType:
    """``op``'s kernel and VJP as a generated module holds them (copied with their helpers,
    under the module's imports), loaded: conformance runs each op's samples through this
    text as well as through the registered functions."""
    fns = [f for f in (KERNELS[op], VJPS.get(op)) if f is not None]
    source = "\n".join([*HEADER, "", collect(fns, RULES).source, ""])
    return load_module(source, f"numpy_kernels_{op}")


class _Generator:
    """The module's functions, statement by statement; records which kernels they call."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.names = Names(plan, MODULE_NAMES)
        self.called: list[types.FunctionType] = []  # in first-call order
        self.draws = False
        # Variables whose (latest) definition is a new array nothing else references: a
        # kernel or VJP declared in_place may overwrite one at its last use (see emit.Stmt).
        self.fresh: set[str] = set()

    def _call(self, fn: Any) -> str:
        if fn not in self.called:
            self.called.append(fn)
        return str(fn.__name__)

    def _emit(self, stmts: list[Stmt], keep: Iterable[str] = ()) -> list[str]:
        """``emit``, keeping what deleting would not free: leaves (their dicts hold them),
        loss terms and metrics (``terms`` and the metrics dict hold them) and the float
        seeds of the backward pass."""
        plan = self.plan
        held = _vars(plan, plan.loss_targets()) | _vars(plan, plan.ir.metrics)
        held |= {self.names("g_", v) for v in _vars(plan, plan.loss_targets())}
        return emit.emit(stmts, "    ", keep=emit.leaf_vars(plan) | held | set(keep))

    # ---- the forward pass ------------------------------------------------------------------

    def _forward(
        self, ops: list[str], saving: frozenset[str] = frozenset(),
        optional: frozenset[str] = frozenset(), read: frozenset[str] = frozenset(),
    ) -> tuple[list[Stmt], dict[str, str]]:
        """Leaf reads and one call per op. ``saving``: ops whose residuals the backward pass
        reads; ``optional``: ops (and the leaves only they read) that run under ``if
        losses:``; ``read``: leaves read already. Returns the statements and the variables
        of the new state, by state node."""
        plan = self.plan
        required = {
            plan.var(a) for n in ops if n not in optional for a in plan.ir.node(n).inputs
        }
        stmts = []
        for st in emit.leaf_reads(plan, ops, ("input", "param")):
            (leaf,) = st.defines
            if leaf in read:
                continue
            st.guard = None if leaf in required else LOSSES
            stmts.append(st)
        new_state: dict[str, str] = {}
        for nid in ops:
            c = plan.call(nid)
            guard = LOSSES if nid in optional else None
            args = list(c.args) + [f"{k}={literal(v)}" for k, v in c.kwargs.items()]
            if c.opdef.uses_training:
                args.append("training=training")
            uses = set(c.args)
            nz = plan.ir.op(nid).attrs.noise() if c.opdef.stochastic else None
            if nz is not None:
                nv = self.names("noise_", c.var)
                draw = emit.noise_draw(plan, c, nv, c.args[nz.like], "rng", "training")
                draw.uses.add(c.args[nz.like])
                draw.guard = guard
                stmts.append(draw)
                self.draws = True
                args.append(f"noise={nv}")
                uses.add(nv)
            lhs, defines = c.var, {c.var}
            if c.has_state:
                state_args = list(zip(c.arg_nodes, c.args))[len(c.args) - c.n_state:]
                new = [self.names("new_", a) for _, a in state_args]
                new_state.update({n: v for (n, _), v in zip(state_args, new)})
                lhs = f"{c.var}, ({', '.join(new)}{',' if len(new) == 1 else ''})"
                defines |= set(new)
            if nid in saving:
                res = self.names("res_", c.var)
                lhs = f"({lhs}), {res}" if c.has_state else f"{lhs}, {res}"
                args.append("save=True")
                defines.add(res)
            call = f"{self._call(KERNELS[c.opdef.name])}({', '.join(args)})"
            st = Stmt([f"{lhs} = {call}  # {c.comment}"], defines, uses, guard)
            plain = not c.has_state and nid not in saving
            op = c.opdef.name
            if plain and op in IN_PLACE and c.args[0] in self.fresh and c.args[0] not in c.args[1:]:
                own = f"{self._call(KERNELS[op])}({', '.join([*args, 'own=True'])})"
                st.reuse = (c.args[0], [f"{lhs} = {own}  # {c.comment}"])
            if plain and op in FRESH:
                self.fresh.add(c.var)
            else:
                self.fresh.difference_update(defines)
            stmts.append(st)
        return stmts, new_state

    def evaluate_fn(self) -> list[str]:
        """``evaluate(..., losses=True)``, which is ``forward`` too (the forward pass written
        once): ops in graph order, those only losses and metrics need under ``if losses:``
        until the last op the outputs need; without losses the function returns the outputs
        right after it."""
        plan = self.plan
        ir = plan.ir
        for_outputs = plan.needed([f"output:{k}" for k in ir.outputs])
        targets = [f"output:{k}" for k in ir.outputs] + plan.loss_targets() + list(ir.metrics)
        ops = plan.needed(targets)
        split = ops.index(for_outputs[-1]) + 1 if for_outputs else 0
        head, tail = ops[:split], ops[split:]
        stmts, new_state = self._forward(head, optional=frozenset(head) - set(for_outputs))
        outputs = emit.dict_expr(plan, ir.outputs)
        stmts.append(Stmt(
            ["if not losses:", f"    return {outputs}"], set(), _vars(plan, ir.outputs.values())
        ))
        read = frozenset(d for st in stmts for d in st.defines)
        rest, more_state = self._forward(tail, read=read)
        new_state.update(more_state)
        loss = emit.loss_lines(plan, "0.0")
        metrics = "{" + ", ".join(f"{literal(m)}: {plan.var(m)}" for m in ir.metrics) + "}"
        loss.lines.append(f"return loss, terms, {metrics}, {outputs}, {_state_expr(new_state)}")
        loss.uses |= _vars(plan, ir.metrics) | _vars(plan, ir.outputs.values())
        loss.uses |= set(new_state.values())
        return [
            "",
            "def evaluate(params, inputs, training=False, noise=None, rng=None, losses=True):",
            '    """(loss, terms, metrics, outputs, new_state) without gradients; without',
            '    losses, just the outputs (`forward`)."""',
        ] + self._emit(stmts + rest + [loss])

    # ---- the backward pass -----------------------------------------------------------------

    def loss_and_grads_fn(self) -> list[str]:
        """``loss_and_grads(params, inputs, ..., input_grads=True) -> (loss, terms, grads,
        new_state)``: the forward pass, then each VJP on the way back from the loss to the
        leaves; statements only input gradients need run under ``if input_grads:``."""
        plan = self.plan
        ir = plan.ir
        ops = plan.needed(plan.loss_targets())
        leaves = plan.grad_leaves()
        path = plan.grad_path(leaves)
        param_path = plan.grad_path(ir.params)
        backward = [n for n in reversed(ops) if n in path and plan.ir.op(n).op in VJPS]
        saving = frozenset(n for n in backward if plan.ir.op(n).op in RESIDUALS)
        stmts, new_state = self._forward(ops, saving)
        stmts.append(emit.loss_lines(plan, "0.0"))
        stmts.append(Stmt([  # a failed step leaves the parameters as they were
            f"if {UPDATE} and not np.isfinite(loss):", "    update = None",
        ]))
        n_forward = len(stmts)
        has_g: set[str] = set()
        for lid, w in ir.losses:
            if lid in path:
                gl = self.names("g_", plan.var(lid))
                guard = None if lid in param_path else INPUT_GRADS
                seed = f"{gl} = {literal(w)}  # dL/d{comment(lid)}"
                stmts.append(Stmt([seed], {gl}, guard=guard))
                has_g.add(lid)
        for nid in backward:
            if nid in has_g:
                stmts += self._vjp(plan.call(nid), path, param_path, has_g)
        read = {d for s in stmts for d in s.defines}
        for leaf in ir.params:  # parameters no loss reads still get (zero) gradients
            if plan.var(leaf) not in read:
                stmts.insert(0, emit.leaf_read(plan, leaf))
                n_forward += 1
        stmts = self._fused_updates(stmts, n_forward, has_g)
        grads = ", ".join(
            f"{literal(p)}: {self.names('g_', plan.var(p)) if p in has_g else _zeros(plan, p)}"
            for p in ir.params
        )
        tail = [Stmt([f"grads = {{{grads}}} if update is None else {{}}"], set(), {
            self.names("g_", plan.var(p)) if p in has_g else plan.var(p) for p in ir.params
        })]
        params = set(ir.params)
        inputs = [i for i in leaves if i not in params]
        if inputs:
            tail.append(Stmt([
                f"grads[{literal(i)}] = "
                + (self.names("g_", plan.var(i)) if i in has_g else _zeros(plan, i))
                for i in inputs
            ], set(), {
                self.names("g_", plan.var(i)) if i in has_g else plan.var(i) for i in inputs
            }, INPUT_GRADS))
        tail.append(Stmt(
            [f"return loss, terms, grads, {_state_expr(new_state)}"], set(),
            {"loss", *new_state.values()},
        ))
        keep: set[str] = set().union(*(s.uses for s in tail))
        head = [
            "",
            "def loss_and_grads(params, inputs, training=True, noise=None, rng=None, "
            "input_grads=True, update=None):",
            '    """(loss, terms, grads, new_state): the backward pass by hand. Without',
            '    input_grads, the gradients of the parameters only (training). A finite loss',
            '    with update calls update(name, gradient) once each parameter is done with',
            '    (its gradient final, its value read for the last time), not held in grads."""',
        ]
        return head + self._emit(stmts + tail, keep)

    def _fused_updates(self, stmts: list[Stmt], n_forward: int, has_g: set[str]) -> list[Stmt]:
        """``stmts`` with ``update(name, g)`` (under ``if update is not None:``) placed after
        the last statement that adds to the parameter's gradient or reads its value, or any
        value computed from it (a view would see the update), and the gradient deleted
        there. Values computed from a parameter are followed through the forward
        statements (``n_forward`` of them); a cotangent is linear in the incoming
        cotangent, a new array, never a view of a forward value. One backward pass over
        the statements: linear in their size."""
        plan = self.plan
        reach: dict[str, int] = {}  # variable -> last statement reading it or a value from it
        for i in range(len(stmts) - 1, -1, -1):
            s = stmts[i]
            later = max((reach.get(d, -1) for d in s.defines), default=-1)
            top = max(i, later) if i < n_forward else i
            for u in s.uses:
                if reach.get(u, -1) < top:
                    reach[u] = top
        last_def: dict[str, int] = {}
        for i, s in enumerate(stmts):
            for d in s.defines:
                last_def[d] = i
        after: dict[int, list[tuple[str, str]]] = {}
        zeros: list[str] = []
        for p in plan.ir.params:
            if p not in has_g:
                zeros.append(p)
                continue
            g = self.names("g_", plan.var(p))
            at = max(last_def[g], reach.get(plan.var(p), -1))
            after.setdefault(at, []).append((p, g))
        out: list[Stmt] = []
        for i, s in enumerate(stmts):
            out.append(s)
            if i in after:
                gs = [g for _, g in after[i]]
                lines = [f"update({literal(p)}, {g})" for p, g in after[i]]
                out.append(Stmt([*lines, f"del {', '.join(gs)}"], set(), set(gs), UPDATE))
        if zeros:
            out.append(Stmt(
                [f"update({literal(p)}, {_zeros(plan, p)})" for p in zeros],
                set(), {plan.var(p) for p in zeros}, UPDATE,
            ))
        return out

    def _vjp(self, c: Call, path: set[str], param_path: set[str], has_g: set[str]) -> list[Stmt]:
        """The VJP call and the cotangent of each argument the gradient flows to, one line
        when it can be (``g_x, g_w, g_b = linear_vjp(...)``: every cotangent new, none to
        sum down); else ``_g = op_vjp(...)`` and a line per cotangent, those only input
        gradients need under ``if input_grads:``."""
        plan = self.plan
        spec = SPECS[c.opdef.name]
        targets = [i for i, a in enumerate(c.arg_nodes) if c.grad_flags[i] and a in path]
        if not targets:
            return []
        guarded = c.node not in param_path  # only input gradients need this VJP at all
        gv = self.names("g_", c.var)
        passed = [a if spec.reads_arg(k) else "None" for k, a in enumerate(c.args)]
        parts = [gv, c.var if spec.reads_output else "None", *passed]
        parts += [f"{k}={literal(v)}" for k, v in c.kwargs.items()]
        uses = {gv} | {p for p in passed if p != "None"}
        if spec.reads_output:
            uses.add(c.var)
        if c.opdef.uses_training:
            parts.append("training=training")
        if c.opdef.stochastic and plan.ir.op(c.node).attrs.noise() is not None:
            nv = self.names("noise_", c.var)
            parts.append(f"noise={nv}")
            uses.add(nv)
        if spec.reads_residuals:
            res = self.names("res_", c.var)
            parts.append(f"res={res}")
            uses.add(res)
        needs = _needs(c, targets, param_path, guarded)
        if spec.takes_needs and needs is not None:
            parts.append(f"needs={needs}")
        fn = self._call(VJPS[c.opdef.name])
        call = f"{fn}({', '.join(parts)})"
        # The incoming cotangent, if the VJP may overwrite it and nothing else holds it.
        own = None
        if spec.in_place and gv in self.fresh:
            own = f"{fn}({', '.join([*parts, 'own=True'])})"
        grads = {i: self.names("g_", plan.var(c.arg_nodes[i])) for i in targets}
        shaped = all(_same_shape(plan, c, spec, i) for i in targets)
        single = {c.arg_nodes[i] for i in targets}  # mul(h, h): h's cotangent is a sum
        if shaped and len(single) == len(targets) and not single & has_g:
            has_g.update(c.arg_nodes[i] for i in targets)
            names = [grads.get(i, "_") for i in range(len(c.args))]
            lhs = names[0] + "," if len(names) == 1 else ", ".join(names)
            lhs = f"({lhs})" if len(names) == 1 else lhs
            guard = INPUT_GRADS if guarded else None
            st = Stmt([f"{lhs} = {call}"], set(grads.values()), uses, guard)
            if own is not None:
                st.reuse = (gv, [f"{lhs} = {own}"])
            (self.fresh.update if spec.fresh else self.fresh.difference_update)(st.defines)
            return [st]
        first = Stmt([f"_g = {call}"], set(), uses, INPUT_GRADS if guarded else None)
        if own is not None:
            first.reuse = (gv, [f"_g = {own}"])
        later = Stmt([], set(), set(), INPUT_GRADS)  # cotangents only input gradients need
        for i in targets:
            a = c.arg_nodes[i]
            into = first if guarded or a in param_path else later
            ga = grads[i]
            term = f"_g[{i}]"
            if not _same_shape(plan, c, spec, i):
                term = f"{self._call(unbroadcast)}({term}, {c.args[i]}.shape)"
                into.uses.add(c.args[i])
            if a in has_g:
                into.lines.append(f"{ga} = {ga} + {term}")
                into.uses.add(ga)
                self.fresh.add(ga)  # a sum: a new array
            else:
                into.lines.append(f"{ga} = {term}")
                has_g.add(a)
                (self.fresh.add if spec.fresh else self.fresh.discard)(ga)
            into.defines.add(ga)
        if first.reuse is not None:  # the lines that read ``_g`` follow the call
            first.reuse = (first.reuse[0], first.reuse[1] + first.lines[1:])
        return [first, later] if later.lines else [first]


def _needs(c: Call, targets: list[int], param_path: set[str], guarded: bool) -> str | None:
    """The ``needs`` tuple as source (``(input_grads, True, True)``), or None when every
    argument's gradient is wanted."""
    flags: list[str] = []
    for i, a in enumerate(c.arg_nodes):
        if i not in targets:
            flags.append("False")
        elif guarded or a in param_path:
            flags.append("True")
        else:
            flags.append(INPUT_GRADS)
    if all(f == "True" for f in flags):
        return None
    return "(" + ", ".join(flags) + ("," if len(flags) == 1 else "") + ")"


def _same_shape(plan: Plan, c: Call, spec: VjpSpec, i: int) -> bool:
    """Whether the VJP's gradient for argument ``i`` has that argument's shape already, as a
    static fact: the op promises input-shaped gradients, or the argument's type equals the
    output's (an elementwise op broadcasts nothing) and no second input could broadcast it
    at run time (one data input, or no symbolic dimension)."""
    if spec.input_shaped:
        return True
    arg = plan.ir.type(c.arg_nodes[i]).shape
    out = plan.ir.type(c.node).shape
    if tuple(arg) != tuple(out):
        return False
    return c.n_inputs == 1 or all(isinstance(d, int) for d in out)


def _vars(plan: Plan, nids: Any) -> set[str]:
    return {plan.var(n) for n in nids}


def _zeros(plan: Plan, nid: str) -> str:
    return f"np.zeros_like({plan.var(nid)})"


def _state_expr(new_state: dict[str, str]) -> str:
    return "{" + ", ".join(f"{literal(k)}: {v}" for k, v in new_state.items()) + "}"
