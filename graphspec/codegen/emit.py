"""Statements both code generators print: what each defines and uses, printed one after the
other with every value deleted right after its last use.

Backends build their functions from these pieces (leaf reads, noise draws, loss lines, the
tables at the top of a module, the module docstring) and add their own calls and templates;
the text of user-given names always goes through :mod:`graphspec.codegen.text`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from graphspec.codegen.text import comment, docstring, literal
from graphspec.ir.graph import IR
from graphspec.ir.plan import Call, Plan


@dataclass
class Stmt:
    """Lines of generated code, the names they define and the names they read. A statement
    with a ``guard`` runs only under ``if <guard>:`` (consecutive ones share the block)."""

    lines: list[str]
    defines: set[str] = field(default_factory=set)
    uses: set[str] = field(default_factory=set)
    guard: str | None = None
    # (name, lines): printed instead of ``lines`` where this statement is the last use of
    # ``name`` and nothing keeps it (a kernel told it owns the buffer and may overwrite it).
    reuse: tuple[str, list[str]] | None = None


def last_uses(uses: list[Iterable[str]]) -> dict[int, list[str]]:
    """For statements reading ``uses[i]``, the names whose last use is statement ``i``."""
    last: dict[str, int] = {}
    for i, used in enumerate(uses):
        for u in used:
            last[u] = i
    out: dict[int, list[str]] = {}
    for name, i in last.items():
        out.setdefault(i, []).append(name)
    return out


def emit(stmts: list[Stmt], indent: str, keep: Iterable[str] = ()) -> list[str]:
    """Print statements, deleting each value they define (but those in ``keep``) right after
    its last use. A value defined only under a guard is deleted under the same guard."""
    guard_of: dict[str, str | None] = {}
    for s in stmts:
        for d in s.defines:
            # Defined unguarded anywhere: it exists on every path.
            guard_of[d] = None if d in guard_of and guard_of[d] != s.guard else s.guard
    deletable = set(guard_of) - set(keep)
    ends = last_uses([s.uses for s in stmts])
    lines: list[str] = []
    block: str | None = None  # the guard whose `if` block is open

    def enter(guard: str | None) -> None:
        nonlocal block
        if guard is not None and guard != block:
            lines.append(f"{indent}if {guard}:")
        block = guard

    for i, s in enumerate(stmts):
        enter(s.guard)
        pad = indent + ("    " if s.guard else "")
        own = s.reuse is not None and s.reuse[0] in deletable and s.reuse[0] in ends.get(i, ())
        lines += [pad + ln for ln in (s.reuse[1] if own and s.reuse else s.lines)]
        if i == len(stmts) - 1:
            break
        dead = sorted(n for n in ends.get(i, []) if n in deletable)
        # Deletions in the open block first, then unguarded ones (which close it), then others.
        guards = sorted(
            {guard_of[n] for n in dead},
            key=lambda g: (0 if g is not None and g == block else 1 if g is None else 2, g or ""),
        )
        for g in guards:
            enter(g)
            names = ", ".join(n for n in dead if guard_of[n] == g)
            lines.append(indent + ("    " if g else "") + "del " + names)
    return lines


class Names:
    """Fresh local names (``noise_h``, ``g_h``, ...) that clash with no node variable, no
    reserved module name and no name handed out before."""

    def __init__(self, plan: Plan, reserved: Iterable[str] = ()) -> None:
        self.taken = set(plan.names.values()) | set(reserved)
        self.given: dict[tuple[str, str], str] = {}

    def __call__(self, prefix: str, var: str) -> str:
        """The name for ``prefix + var``, the same one each time it is asked for."""
        key = (prefix, var)
        if key not in self.given:
            base = name = prefix + var
            k = 1
            while name in self.taken:
                k += 1
                name = f"{base}_{k}"
            self.taken.add(name)
            self.given[key] = name
        return self.given[key]


def leaf_reads(plan: Plan, ops: Iterable[str], kinds: tuple[str, ...]) -> list[Stmt]:
    """``x = inputs['x']`` (and ``w = params['w']``) for each leaf of ``kinds`` that ``ops``
    read, in graph order."""
    needed: set[str] = set()
    for n in ops:
        needed.update(plan.ir.node(n).inputs)
    return [
        leaf_read(plan, nid)
        for nid in plan.ir.order
        if nid in needed and plan.ir.node(nid).kind in kinds
    ]


def leaf_vars(plan: Plan) -> set[str]:
    """The variables of inputs and parameters: never worth deleting, since the dict they
    were read from keeps the array alive anyway (``emit(..., keep=leaf_vars(plan))``)."""
    return {plan.var(n) for n in plan.ir.order if plan.ir.node(n).kind in ("input", "param")}


def leaf_read(plan: Plan, nid: str) -> Stmt:
    src = "inputs" if plan.ir.node(nid).kind == "input" else "params"
    return Stmt([f"{plan.var(nid)} = {src}[{literal(nid)}]"], {plan.var(nid)})


def noise_draw(plan: Plan, c: Call, var: str, like: str, source: str, training: str) -> Stmt:
    """``var = _draw(noise, node, kind, like, source)``: the injected noise for the node when
    given (verification), else a fresh draw from ``source``. An op whose randomness is a
    training-time device (dropout) draws nothing in evaluation (``if training else None``),
    so evaluating never consumes the stream and an exported graph holds no random node."""
    nz = plan.ir.op(c.node).attrs.noise()
    assert nz is not None, f"{c.node} draws no noise"
    line = f"{var} = _draw(noise, {literal(c.node)}, {literal(nz.kind)}, {like}, {source})"
    if c.opdef.uses_training:
        line += f" if {training} else None"
    return Stmt([line], {var})


def loss_lines(plan: Plan, zero: str) -> Stmt:
    """``terms = {...}`` and ``loss = sum of weight * term`` (``zero`` without loss terms)."""
    losses = plan.ir.losses
    terms = ", ".join(f"{literal(lid)}: {plan.var(lid)}" for lid, _ in losses)
    parts = [plan.var(lid) if w == 1.0 else f"{literal(w)} * {plan.var(lid)}" for lid, w in losses]
    return Stmt(
        [f"terms = {{{terms}}}", f"loss = {' + '.join(parts) or zero}"],
        set(),
        {plan.var(lid) for lid, _ in losses},
    )


def dict_expr(plan: Plan, mapping: dict[str, str]) -> str:
    """``{'name': variable, ...}`` for a mapping of names to node ids."""
    return "{" + ", ".join(f"{literal(k)}: {plan.var(v)}" for k, v in mapping.items()) + "}"


def tables(ir: IR) -> list[str]:
    """The module's description of its graph: inputs, parameters, state, outputs, loss terms
    and metrics (names and shapes, as literals)."""
    return [
        f"INPUTS = {literal({i: list(ir.type(i).shape) for i in ir.inputs})}",
        f"PARAMS = {literal({p: tuple(ir.type(p).shape) for p in ir.params})}",
        f"STATE = {literal({s: tuple(ir.type(s).shape) for s in ir.state})}",
        f"OUTPUTS = {literal(dict(ir.outputs))}",
        f"LOSS_TERMS = {literal(dict(ir.losses))}",
        f"METRICS = {literal(list(ir.metrics))}",
    ]


def spec_name(ir: IR) -> str | None:
    """The spec file as the user named it (what error messages and node comments say), not
    a path it was resolved to."""
    spec = ir.spec
    if spec is None:
        return None
    if spec.source is not None and spec.source.file:
        return str(spec.source.file)
    return str(spec.path) if spec.path else None


def module_docstring(ir: IR, body: list[str]) -> str:
    """The generated module's docstring: which spec it came from (the name as given: its
    characters are escaped once, by docstring(), except line breaks, written as comment()
    writes them so that the first line stays one line), then ``body``."""
    return docstring(
        "\n".join(
            [
                f"{ir.name}: generated by graphspec from {one_line(spec_name(ir) or 'a spec')}.",
                "",
                *body,
            ]
        )
    )


def one_line(text: str) -> str:
    """``text`` with each character that breaks a line (for str.splitlines: \\n, \\r,
    U+2028, ...) written as its escape."""
    return "".join(comment(ch) if len(f"a{ch}b".splitlines()) > 1 else ch for ch in text)
