"""Write a standalone PyTorch module for an IR: kernels and an ``nn.Module`` named ``Model``.

The module imports only torch (and the standard library to read a .npz without numpy).
Parameters are ``nn.Parameter`` attributes named after the spec's ids with each ``.`` written
``_`` (the Plan's variable names, reserved against ``nn.Module``'s own attributes);
``SPEC_NAMES`` maps each spec name to its attribute exactly, and ``load_params`` /
``spec_state_dict`` speak spec names.  Flat attributes keep ``forward`` one readable line per
node (``linear(x, self.hidden_weight, self.hidden_bias)``); nested modules would have given
state-dict keys equal to the ids, but an id segment such as ``train`` or ``to`` cannot be a
submodule name, so the mapping would not be exact for every spec.

The in-process Program executes exactly this text, so the written file and the Program
produce the same numbers by construction.
"""

from __future__ import annotations

import functools
import inspect
import math
import types
from pathlib import Path

import networkx as nx
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from graphspec.codegen import emit
from graphspec.codegen.emit import Names, Stmt
from graphspec.codegen.kernels import Rules, collect
from graphspec.codegen.text import comment, docstring, literal, load_module
from graphspec.errors import BackendError
from graphspec.ir.graph import IR
from graphspec.ir.node import ParamNode
from graphspec.ir.plan import Call, Plan
from graphspec_torch import templates
from graphspec_torch.kernels import KERNELS

# The generated header imports exactly these modules under these names.
RULES = Rules(
    backend="torch", package="graphspec_torch.kernels",
    modules={"torch": torch, "F": F, "nn": nn, "math": math}, decorators=frozenset({"kernel"}),
)

# The module docstring after the spec's name and doc.
ABOUT = [
    "Standalone: imports only torch. `Model` is an nn.Module: `model(inputs)` returns the",
    "outputs, `model.losses(inputs)` the objective and its terms (call .backward() on the",
    "objective for gradients), `model.evaluate(inputs)` loss, terms, metrics and outputs.",
    "`model.train()` / `model.eval()` switch batch norm and dropout as usual.",
    "",
    "Parameters are attributes named after the spec's ids ('.' written '_'; SPEC_NAMES maps",
    "them). Randomly initialized ones start at zero: load the initial values `graphspec",
    "compile` wrote next to this file (a .pt of plain tensors, read with weights_only=True)",
    "or a graphspec checkpoint (.npz, read without numpy):",
    "",
    "    model = Model(dtype=torch.float64)",
    "    model.load_params('model.pt')",
    "    outputs = model({'x': x})",
    "",
]
MODULE_NAMES = [
    "Model", "INPUTS", "INT_INPUTS", "PARAMS", "STATE", "SPEC_NAMES", "OUTPUTS", "LOSS_TERMS",
    "METRICS", "read_params", "_draw", "_store", "_read_npz", "_parse_npy", "_NPY_DTYPES",
]
# Parameter attributes must not shadow nn.Module's API or the methods the Model adds.
MODEL_ATTRS = set(dir(nn.Module)) | {
    "losses", "evaluate", "load_params", "spec_state_dict", "save_params", "generator",
    "sync_group",
}


# The imports of every generated module (RULES.modules).
HEADER = [
    "import math",
    "",
    "import torch",
    "import torch.nn as nn",
    "import torch.nn.functional as F",
]


def generate(ir: IR) -> str:
    ops_used = sorted({ir.op(n).op for n in ir.op_nodes()})
    missing = [o for o in ops_used if o not in KERNELS]
    if missing:
        raise BackendError(
            "the torch backend has no kernel for op" + ("s " if len(missing) > 1 else " ")
            + ", ".join(f"'{o}'" for o in missing),
            ir.node(next(n for n in ir.op_nodes() if ir.op(n).op == missing[0])).src,
        )
    lib = collect([KERNELS[o] for o in ops_used], RULES)
    plan = Plan(ir, reserved=MODULE_NAMES + lib.names + sorted(MODEL_ATTRS))
    fn_of = {o: KERNELS[o].__name__ for o in ops_used}
    doc = ir.spec.doc.strip() if ir.spec is not None and ir.spec.doc else ""
    out: list[str] = [
        emit.module_docstring(ir, [*([doc, ""] if doc else []), *ABOUT]),
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
        f"INT_INPUTS = {literal([i for i in ir.inputs if ir.type(i).dtype == 'int'])}"
        "  # integer inputs are int64 tensors",
        f"SPEC_NAMES = {literal({p: plan.var(p) for p in ir.params + ir.state})}"
        "  # spec name -> Model attribute",
        "",
        *templates.helpers(),
        *_model(ir, plan, fn_of),
        *templates.readers(),
    ]
    return "\n".join(out) + "\n"


@functools.cache
def kernel_module(op: str) -> types.ModuleType:
    """``op``'s kernel as a generated module holds it (copied with its helpers, under the
    module's imports), loaded: conformance runs each op's samples through this text too."""
    source = "\n".join([*HEADER, "", collect([KERNELS[op]], RULES).source, ""])
    return load_module(source, f"torch_kernels_{op}")


def write_initial_params(ir: IR, params: dict[str, np.ndarray], module_path: str | Path) -> Path:
    """The ``graphspec compile`` hook: the parameters beside the module as ``<module>.pt``, a
    torch file of plain float64 tensors keyed by spec name (``Model.load_params`` reads it
    with ``weights_only=True``; no pickled objects, no numpy needed to read it)."""
    path = Path(module_path).with_suffix(".pt")
    names = list(ir.params) + list(ir.state)
    tensors = {k: torch.from_numpy(np.array(params[k], dtype=np.float64)) for k in names}
    torch.save(tensors, str(path))
    return path


# ---- the Model class --------------------------------------------------------------------


def _model(ir: IR, plan: Plan, fn_of: dict[str, str]) -> list[str]:
    title = f"{ir.name} as an nn.Module."
    lines = [
        "",
        "class Model(nn.Module):",
        "    " + docstring(title),
        "",
        "    def __init__(self, dtype=torch.float32, device=None):",
        "        super().__init__()",
        "        # A torch.Generator for dropout and sampling; None draws from torch's global RNG.",
        "        self.generator = None",
        "        # A torch.distributed process group: batch statistics are then taken over every",
        "        # rank's rows (SyncBatchNorm semantics); None keeps them local.",
        "        self.sync_group = None",
        "        kw = {'dtype': dtype, 'device': device}",
    ]
    for p in ir.params:
        shape = literal(tuple(ir.type(p).shape))
        lines.append(
            f"        self.{plan.var(p)} = nn.Parameter({_fill(ir.param(p), shape)})"
            f"  # {comment(p)}{_where(ir, p)}"
        )
    for s in ir.state:
        shape = literal(tuple(ir.type(s).shape))
        lines.append(
            f"        self.register_buffer({literal(plan.var(s))}, {_fill(ir.param(s), shape)})"
            f"  # {comment(s)}{_where(ir, s)}"
        )
    names = Names(plan, MODULE_NAMES + sorted(MODEL_ATTRS))
    outs = [f"output:{k}" for k in ir.outputs]
    outputs = emit.dict_expr(plan, ir.outputs)
    out_vars = {plan.var(v) for v in ir.outputs.values()}
    lines += _method(
        plan, names, fn_of, "forward", "The outputs, by name.", plan.needed(outs),
        Stmt([f"return {outputs}"], set(), out_vars),
    )
    loss = emit.loss_lines(plan, "torch.zeros(())")
    loss.lines.append("return loss, terms")
    lines += _method(
        plan, names, fn_of, "losses", "(loss, terms): the weighted objective and each loss term.",
        plan.needed(plan.loss_targets()), loss,
    )
    loss = emit.loss_lines(plan, "torch.zeros(())")
    metrics = "{" + ", ".join(f"{literal(m)}: {plan.var(m)}" for m in ir.metrics) + "}"
    loss.lines.append(f"return loss, terms, {metrics}, {outputs}")
    loss.uses |= {plan.var(m) for m in ir.metrics} | out_vars
    lines += _method(
        plan, names, fn_of, "evaluate", "(loss, terms, metrics, outputs), without gradients.",
        plan.needed(outs + plan.loss_targets() + list(ir.metrics)), loss,
        decorator="@torch.no_grad()",
    )
    lines += templates.param_methods()
    return lines


def _where(ir: IR, nid: str) -> str:
    src = ir.node(nid).src
    return f"  ({comment(src)})" if src else ""


def _fill(node: ParamNode, shape: str) -> str:
    """Constant initializers are reproduced; random ones start at zero (load_params)."""
    init = node.init
    name = init if isinstance(init, str) else init.get("name")
    if name == "ones":
        return f"torch.ones({shape}, **kw)"
    if name == "constant":
        value = init.get("value", 0.0)
        if isinstance(value, list):  # an array (the `constant` op's value), broadcast
            return f"torch.tensor({literal(value)}, **kw).expand({shape}).clone()"
        return f"torch.full({shape}, {literal(float(value))}, **kw)"
    return f"torch.zeros({shape}, **kw)"


def _method(
    plan: Plan, names: Names, fn_of: dict[str, str], name: str, doc: str, ops: list[str],
    tail: Stmt, decorator: str | None = None,
) -> list[str]:
    # Each local is deleted right after its last use (frees activations early in
    # evaluation; in training autograd keeps what backward needs anyway).
    stmts = _statements(plan, names, fn_of, ops) + [tail]
    head = ["", f"    {decorator}"] if decorator else [""]
    return head + [
        f"    def {name}(self, inputs, noise=None):",
        f'        """{doc}"""',
    ] + emit.emit(stmts, "        ", keep=emit.leaf_vars(plan))


def _statements(plan: Plan, names: Names, fn_of: dict[str, str], ops: list[str]) -> list[Stmt]:
    ir = plan.ir

    def expr(nid: str) -> str:
        return f"self.{plan.var(nid)}" if ir.node(nid).kind == "param" else plan.var(nid)

    def local(nid: str) -> set[str]:
        return set() if ir.node(nid).kind == "param" else {plan.var(nid)}

    carries_grad = _carries_grad(plan)
    stmts = emit.leaf_reads(plan, ops, ("input",))
    for nid in ops:
        c: Call = plan.call(nid)
        uses: set[str] = set().union(*(local(a) for a in c.arg_nodes))
        parts = [expr(a) for a in c.arg_nodes]
        if c.opdef.category != "metric":  # metrics run under no_grad
            for i, a in enumerate(c.arg_nodes):
                # An argument the op declares non-differentiable (a loss's target) cuts the
                # gradient path, as in the numpy backward pass; autograd would follow it.
                if not c.grad_flags[i] and a in carries_grad:
                    parts[i] += ".detach()"
        parts += [f"{k}={literal(v)}" for k, v in c.kwargs.items()]
        if c.opdef.uses_training:
            parts.append("training=self.training")
        if "group" in inspect.signature(KERNELS[c.opdef.name]).parameters:
            parts.append("group=self.sync_group")  # the kernel takes statistics over ranks
        nz = ir.op(nid).attrs.noise() if c.opdef.stochastic else None
        if nz is not None:
            nv = names("noise_", c.var)
            like = c.arg_nodes[nz.like]
            draw = emit.noise_draw(plan, c, nv, expr(like), "self.generator", "self.training")
            draw.uses |= local(like)
            stmts.append(draw)
            parts.append(f"noise={nv}")
            uses.add(nv)
        call = f"{fn_of[c.opdef.name]}({', '.join(parts)})  # {c.comment}"
        if not c.has_state:
            stmts.append(Stmt([f"{c.var} = {call}"], {c.var}, uses))
            continue
        state_nodes = c.arg_nodes[len(c.arg_nodes) - c.n_state:]
        new = [names("new_", plan.var(s)) for s in state_nodes]
        lhs = f"{c.var}, ({', '.join(new)}{',' if len(new) == 1 else ''})"
        lines = [f"{lhs} = {call}", "if self.training:"]
        lines += [f"    _store(self.{plan.var(s)}, {v})" for s, v in zip(state_nodes, new)]
        stmts.append(Stmt(lines, {c.var, *new}, uses | set(new)))
    return stmts


def _carries_grad(plan: Plan) -> set[str]:
    """Nodes whose value can require grad: trainable parameters, the inputs that get
    gradients, and everything computed from them."""
    out: set[str] = set()
    for leaf in plan.grad_leaves():
        if leaf not in out:
            out |= nx.descendants(plan.g, leaf) | {leaf}
    return out
