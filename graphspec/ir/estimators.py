"""REINFORCE as a compiler transformation: score-function surrogates in the objective.

A sample ``z ~ p(z; θ)`` declared ``estimator: reinforce`` passes no gradient to θ (its VJP
is zero).  This pass adds, for each such sample, one loss term built from ordinary registry
ops whose *value is zero* and whose *gradient* is the score-function estimator of
``∇θ E[cost]`` (Williams, 1992; stochastic computation graphs, Schulman et al., 2015):

    box  = lp - stop_gradient(lp)                    # value 0, gradient ∇θ log p(z; θ)
    term = stop_gradient(cost - baseline) * box      # value 0, gradient (cost - b) ∇θ log p

so reported losses are unchanged while every backend's ordinary backprop computes
``(cost - b) ∇θ log p(z)``, an unbiased estimate of ``∇θ E_z[cost]``.  The cost is

* by default the total loss ``L = Σ_k w_k L_k`` over the original terms that depend on the
  sample (the others, a weight penalty say, add only noise), with ``lp`` the joint
  log-probability of the whole batch of samples: unbiased, but every example's sample is
  credited with the whole batch's loss, so the variance grows with the batch;
* with ``cost: NODE`` on the sample op, a per-example cost ``c`` (``[batch]``, e.g. the
  unreduced loss; a reward is a negative cost), for the objective ``mean_i c_i``:
  ``term = mean_i(stop_gradient(c_i - b_i) * box_i)`` with ``lp_i`` example ``i``'s
  log-probability.  ``baseline: mean`` sets ``b_i`` to the mean cost of the *other*
  examples (``leave_one_out_mean``), which reduces the variance and keeps it unbiased.

Per-example credit assumes ``c_i`` depends on the batch's samples only through ``z_i``
(true unless something mixes examples, like batch norm in training).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import networkx as nx

from graphspec.errors import Location, SpecError, did_you_mean
from graphspec.ir.graph import IR
from graphspec.ir.node import OpNode, add_node, node_of
from graphspec.ops import REGISTRY
from graphspec.ops.registry import ShapeError, TensorType
from graphspec.ops.stochastic import Sampler

# Marks the nodes this pass adds (``OpNode.generated``), for drawings and inspect.
GENERATED = "reinforce"


def add_reinforce_surrogates(ir: IR) -> IR:
    """A new IR whose objective has the REINFORCE term of every ``reinforce`` sample."""
    samples = [
        (n, a) for n in ir.op_nodes()
        if isinstance(a := ir.op(n).attrs, Sampler) and a.estimator == "reinforce"
    ]
    if not samples:
        return ir
    g = ir.graph.copy()
    losses = list(ir.losses)
    warnings = list(ir.warnings)
    for sid, attrs in samples:
        term, note = _Surrogate(g, sid, attrs, ir).build()
        if term is not None:
            losses.append((term, 1.0))
        if note:
            warnings.append((note, ir.node(sid).src))
    order = list(nx.lexicographical_topological_sort(g))
    warnings = _drop_revived(g, warnings, [t for t, _ in losses])
    return dataclasses.replace(ir, graph=g, order=order, losses=losses, warnings=warnings)


class _Surrogate:
    """Builds one sample's surrogate term in ``g``; nodes share the sample's location."""

    def __init__(self, g: nx.MultiDiGraph, sid: str, attrs: Sampler, ir: IR) -> None:
        self.g = g
        self.sid = sid
        self.ir = ir
        self.node = ir.op(sid)
        self.attrs = attrs
        self.src: Location | None = self.node.src

    def build(self) -> tuple[str | None, str | None]:
        """The surrogate term's id (None when no loss depends on the sample) and a warning."""
        if self.attrs.cost is None:
            return self.total_loss_term()
        cost = self.resolve_cost(self.attrs.cost)
        lp = self.log_prob()
        lp = self.per_example(lp, cost)
        c = self.add("stop_gradient", [cost], part="cost")
        if self.attrs.baseline == "mean":
            b = self.add("leave_one_out_mean", [c], axis=0, part="baseline")
            c = self.add("sub", [c, b], part="advantage")
        box = self.add("sub", [lp, self.add("stop_gradient", [lp])], part="score")
        term = self.add("mean", [self.add("mul", [c, box])], name=self.sid + ".reinforce")
        note = None
        if cost not in nx.descendants(self.g, self.sid):
            note = (f"the cost '{cost}' of sample '{self.sid}' does not depend on the sample: "
                    "its REINFORCE term has zero expected gradient and only adds noise")
        return term, note

    def log_prob(self) -> str:
        """``log p(z; θ)`` with the sample's own inputs as the distribution's parameters."""
        dist_params = self.node.data_inputs
        return self.add("log_prob", [self.sid, *dist_params], **self.attrs.log_prob_attrs())

    def total_loss_term(self) -> tuple[str | None, str | None]:
        if self.attrs.baseline == "mean":
            raise SpecError(
                f"sample '{self.sid}': baseline: mean needs a per-example cost", self.src,
                hint="name a [batch] cost node with 'cost: NODE' (the loss before its mean); "
                     "the total loss is one number per batch, its own mean",
            )
        if not self.ir.losses:
            raise SpecError(
                f"sample '{self.sid}' has estimator: reinforce but the spec has no loss "
                "to estimate the gradient of", self.src,
                hint="add a 'loss:' section, or name a per-example cost with 'cost: NODE'",
            )
        # Terms the sample cannot influence (a weight penalty) have zero expected score
        # gradient: leaving them out of the cost keeps the estimator unbiased, with less noise.
        downstream = nx.descendants(self.g, self.sid)
        terms = [(lid, w) for lid, w in self.ir.losses if lid in downstream]
        if not terms:
            return None, (f"no loss term depends on sample '{self.sid}': its REINFORCE "
                          "estimator has nothing to train")
        scaled = [lid if w == 1.0 else self.add("scale", [lid], factor=w) for lid, w in terms]
        total = scaled[0] if len(scaled) == 1 else self.add("add", scaled, part="total_loss")
        c = self.add("stop_gradient", [total], part="cost")
        lp = self.log_prob()
        if self.type(lp).rank:  # the whole batch's samples: one joint log-probability
            lp = self.add("sum", [lp], part="joint_log_prob")
        box = self.add("sub", [lp, self.add("stop_gradient", [lp])], part="score")
        return self.add("mul", [c, box], name=self.sid + ".reinforce"), None

    def resolve_cost(self, ref: str) -> str:
        # Inside a block a bare name means the block instance's node, as in 'in:'.
        prefix = self.sid.rpartition(".")[0]
        for cand in ([f"{prefix}.{ref}"] if prefix else []) + [ref]:
            if cand in self.g and node_of(self.g, cand).kind in ("op", "input"):
                break
        else:
            names = [n for n in self.ir.order if self.ir.node(n).kind in ("op", "input")]
            raise SpecError(
                f"sample '{self.sid}': cost '{ref}' names no node", self.src,
                hint=did_you_mean(ref, names) or "cost names a [batch] node: the per-example cost",
            )
        t = self.type(cand)
        if t.rank != 1 or t.dtype != "float":
            raise SpecError(
                f"sample '{self.sid}': cost '{cand}' must be a float [batch] tensor "
                f"(one cost per example), got shape {t}", self.src,
                notes=[(f"'{cand}' is defined here", node_of(self.g, cand).src)],
                hint="reduce it over the non-batch axes, e.g. {op: sum, axis: -1}",
            )
        return cand

    def per_example(self, lp: str, cost: str) -> str:
        """``lp`` as one log-probability per example, checked against the cost's batch."""
        t, c = self.type(lp), self.type(cost)
        if t.rank == 0 or t.shape[0] != c.shape[0]:
            raise SpecError(
                f"sample '{self.sid}' of shape {self.type(self.sid)} and its cost '{cost}' of "
                f"shape {c} do not share a batch axis (the first)", self.src,
                hint="a per-example cost needs samples shaped [batch, ...]",
            )
        if t.rank > 1:  # independent draws per example: their log-probabilities add
            lp = self.add("sum", [lp], axis=list(range(1, t.rank)), part="log_prob_example")
        return lp

    # ---- node construction ---------------------------------------------------------------
    def type(self, nid: str) -> TensorType:
        return node_of(self.g, nid).type

    def add(self, op: str, inputs: list[str], *, part: str | None = None,
            name: str | None = None, **attrs: Any) -> str:
        """Add an op node like build.py does (validated attrs, typed, edges by position)."""
        opdef = REGISTRY[op]
        model = opdef.attrs.model_validate(attrs)
        try:
            out = model.infer(*(self.type(i) for i in inputs))
        except ShapeError as e:  # a bug in this pass, or an op whose rule changed under it
            raise SpecError(f"REINFORCE surrogate of '{self.sid}' ({op}): {e}", self.src) from None
        nid = name or f"{self.sid}.reinforce.{part or op}"
        base, k = nid, 1
        while nid in self.g:
            k += 1
            nid = f"{base}_{k}"
        node = OpNode(
            id=nid, op=op, attrs=model, inputs=tuple(inputs), n_inputs=len(inputs), type=out,
            role="loss", src=self.src, block=self.node.block, cluster=self.node.cluster,
            generated=GENERATED,
        )
        add_node(self.g, node)
        for i, a in enumerate(inputs):
            self.g.add_edge(a, nid, key=i, arg=i)
        return nid


def _drop_revived(
    g: nx.MultiDiGraph, warnings: list[tuple[str, Location | None]], losses: list[str]
) -> list[tuple[str, Location | None]]:
    """Drop 'never used' warnings for nodes a surrogate now reads (a cost node, say)."""
    live: set[str] = set()
    for lid in losses:
        live |= nx.ancestors(g, lid)

    def revived(msg: str) -> bool:
        return (msg.startswith(("node '", "input '")) and "never used" in msg
                and msg.split("'")[1] in live)

    return [(msg, loc) for msg, loc in warnings if not revived(msg)]
