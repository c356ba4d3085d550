"""``state_grads``: the gradient backpropagation through time carries back to each state.

For a recurrent layer (``rnn`` or ``lstm``, one direction, ``returns: last``) over ``T``
steps, the states are ``h_0`` (the initial state) to ``h_T``; step ``t`` (1..T) reads
``h_{t-1}``.  This measures, for ``t = 0 .. T-1``, ``‖∂L/∂h_t‖``: the gradient of the loss
with respect to the state step ``t + 1`` reads -- the quantity BPTT carries back from step
``t + 1`` to step ``t`` (an LSTM's cell state ``c_t`` is the other state BPTT carries, held
fixed here, as BPTT treats it).  A plain RNN's shrinks geometrically towards ``t = 0``
(each step multiplies it by ``W_hhᵀ diag(act')``); an LSTM's cell path lets it reach the
first steps: the vanishing-gradient lesson, in time.

How, exactly and without touching the op's kernels: ``h_{t-1}`` enters step ``t`` only
through its gates' pre-activations ``W_ih x_t + W_hh h_{t-1} + b`` (rnn and lstm; not gru,
whose ``z * h`` term reads the state directly).  The probe is a copy of the model whose
recurrent op reads ``[x_t, e_t]`` with input weights ``[W_ih, W_hh]`` and ``e = 0``: the same
forward pass, and ``∂L/∂e_t = ∂L/∂h_{t-1}``, as a perturbation of ``h_{t-1}`` where step
``t`` reads it.  One forward and backward pass of the probe (the input gradient of a
Program) gives every ``t`` at once.  The final state ``h_T``, read by the layers after the
op, is not a state a step reads and is not shown.

Writes ``<name>.json`` (``state_grads.json``)::

    {"procedure": "state_grads", "at": "end", "node": "rec", "op": "lstm", "steps": 50,
     "split": "val", "batch": 256, "norms": [...]}   # norms[t]: mean over the sequences

``norms[t]`` is the mean over the batch's sequences of the norm of one sequence's
gradient ``B · ∂L/∂h_t[i]`` (``L`` the loss on ``B`` sequences; for a loss that averages over
the batch, the gradient of that sequence's own loss).  The probe runs on the reference
backend (numpy, float64) with the run's parameters, whatever backend trained them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import networkx as nx
import numpy as np
from pydantic import PositiveInt

from graphspec.analysis.context import CheckContext, Context
from graphspec.analysis.registry import Entry, Procedure, procedure
from graphspec.backend import CompileOptions, Program, reference_backend
from graphspec.ir.graph import IR
from graphspec.ir.node import InputNode, OpNode, add_node
from graphspec.ir.one_op import with_outputs
from graphspec.ops import TensorType

# Ops whose state enters a step only through the gates' pre-activations (see above).
RECURRENT = ("rnn", "lstm")
PROBE_X = "__state_probe_x"
PROBE_W = "__state_probe_w_ih"


def recurrent_node(ir: IR, node: str | None = None) -> OpNode | None:
    """The op node ``node``, or the first ``rnn``/``lstm`` of the graph; None if none."""
    for nid in [node] if node is not None else ir.op_nodes():
        op = ir.node(nid)
        if isinstance(op, OpNode) and op.op in RECURRENT:
            return op
    return None


def unsupported(node: OpNode) -> str | None:
    """Why ``node``'s state gradients cannot be measured this way, or None."""
    a = node.attrs
    if a.returns != "last":  # type: ignore[attr-defined]
        return "its 'returns' is 'sequences': the loss also reads each state directly"
    if a.bidirectional:  # type: ignore[attr-defined]
        return "it is bidirectional"
    if a.lengths:  # type: ignore[attr-defined]
        return "it reads lengths (padded sequences)"
    return None


def probe_ir(ir: IR, node: OpNode) -> IR:
    """``ir`` with ``node`` reading the inputs ``PROBE_X`` ``[batch, T, F + units]`` (the
    differentiable one) and ``PROBE_W`` ``[rows, F + units]`` in place of its sequence and
    its input weights."""
    x, w_ih = node.inputs[0], node.inputs[node.n_inputs]
    batch, steps, features = ir.type(x).shape
    rows, units = ir.type(node.inputs[node.n_inputs + 1]).shape
    g = ir.graph.copy()
    width = features + units  # type: ignore[operator]
    add_node(g, InputNode(PROBE_X, TensorType((batch, steps, width)), differentiable=True))
    add_node(g, InputNode(PROBE_W, TensorType((rows, width))))
    inputs = list(node.inputs)
    inputs[0], inputs[node.n_inputs] = PROBE_X, PROBE_W
    add_node(g, dataclasses.replace(node, inputs=tuple(inputs)))
    for arg, new in ((0, PROBE_X), (node.n_inputs, PROBE_W)):
        g.remove_edge(node.inputs[arg], node.id, key=arg)
        g.add_edge(new, node.id, key=arg, arg=arg)
    if g.out_degree(w_ih) == 0:  # no longer read: not a parameter of the probe
        g.remove_node(w_ih)
    return IR(
        graph=g,
        name=ir.name,
        seed=ir.seed,
        order=list(nx.lexicographical_topological_sort(g)),
        inputs=[*ir.inputs, PROBE_X, PROBE_W],
        params=[p for p in ir.params if p in g],
        state=list(ir.state),
        outputs=dict(ir.outputs),
        losses=list(ir.losses),
        metrics=list(ir.metrics),
        spec=ir.spec,
    )


def state_gradients(
    ir: IR,
    node: OpNode,
    params: dict[str, np.ndarray],
    inputs: dict[str, np.ndarray],
    noise: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """``∂L/∂h_t`` ``[T, batch, units]`` for ``t = 0 .. T-1`` (``h_t`` the state step
    ``t + 1`` reads), ``L`` the loss of ``ir`` on ``inputs`` (training mode off)."""
    x = node.inputs[0]
    if x in inputs:
        xs = np.asarray(inputs[x], dtype=np.float64)
    else:  # the sequence is computed (an embedding, say): its value first
        seen, names = with_outputs(ir, [x])
        xs = np.asarray(_compile(seen).forward(params, inputs, noise=noise)[names[x]])
    w_ih, w_hh = params[node.inputs[node.n_inputs]], params[node.inputs[node.n_inputs + 1]]
    units = w_hh.shape[1]
    probe = {
        **inputs,
        PROBE_X: np.concatenate([xs, np.zeros(xs.shape[:2] + (units,))], axis=2),
        PROBE_W: np.concatenate([w_ih, w_hh], axis=1),
    }
    probed = probe_ir(ir, node)
    kept = {k: v for k, v in params.items() if k in probed.graph}
    res = _compile(probed).loss_and_grads(kept, probe, noise=noise, training=False)
    g = np.asarray(res.grads[PROBE_X])[:, :, xs.shape[2] :]
    return g.transpose(1, 0, 2)


def _compile(ir: IR) -> Program:
    return reference_backend().compile(ir, CompileOptions(dtype="float64"))


@procedure("state_grads")
class StateGrads(Procedure):
    """``‖∂L/∂h_t‖`` over the steps ``t`` of a recurrent op (``node``: default the first
    ``rnn`` or ``lstm``) on ``batch`` sequences of ``split``, with the final parameters."""

    stem = "state_grads"
    node: str | None = None
    batch: PositiveInt | Literal["full"] = 256
    split: Literal["train", "val"] = "val"

    def check(self, ctx: CheckContext) -> Procedure:
        if self.node is not None and self.node not in ctx.ir.graph:
            raise ctx.error(f"unknown node '{self.node}'", "node")
        op = recurrent_node(ctx.ir, self.node)
        if op is None:
            what = f"'{self.node}' is not" if self.node else "the graph has no"
            raise ctx.error(
                f"state_grads needs a recurrent op: {what} an rnn or lstm",
                "node" if self.node else "procedure",
            )
        why = unsupported(op)
        if why is not None:
            raise ctx.error(
                f"state_grads cannot measure '{op.id}': {why}",
                "node" if self.node else "procedure",
                hint="it measures a one-direction rnn or lstm with 'returns: last'",
            )
        return self.model_copy(update={"node": op.id})

    def run(self, ctx: Context, entry: Entry) -> dict[str, Any]:
        rng = ctx.rng(entry.index)
        inputs = ctx.batch(self.split, self.batch, rng)
        node = ctx.ir.op(str(self.node))
        grads = state_gradients(ctx.ir, node, ctx.params, inputs, ctx.noise(inputs, rng))
        rows = grads.shape[1]
        norms = (np.linalg.norm(grads, axis=2) * rows).mean(axis=1)
        ctx.write_json(
            entry.name,
            {
                "procedure": entry.procedure,
                "at": ctx.at,
                "node": node.id,
                "op": node.op,
                "steps": len(norms),
                "split": ctx.split(self.split)[0],
                "batch": rows,
                "norms": [float(v) for v in norms],
            },
        )
        return {"first": float(norms[0]), "last": float(norms[-1])}
