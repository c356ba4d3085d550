"""Whole-graph checks that warn rather than fail: unused inputs and parameters, dead nodes;
and which inputs hold token ids, for the checks of their values where data enters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from graphspec.errors import Location
from graphspec.ir.graph import IR
from graphspec.ir.node import OpNode
from graphspec.ir.traverse import ancestors
from graphspec.ops.embedding import Embedding


def live_nodes(ir: IR) -> set[str]:
    """Every node an output, a loss term or a metric depends on (one walk: linear time)."""
    sinks = [f"output:{name}" for name in ir.outputs] + [lid for lid, _ in ir.losses] + ir.metrics
    return ancestors(ir.graph, sinks, inclusive=True)


def unused_inputs(ir: IR, live: set[str] | None = None) -> list[str]:
    """Inputs nothing computed depends on: they need no data."""
    live = live_nodes(ir) if live is None else live
    return [name for name in ir.inputs if name not in live]


def check_warnings(ir: IR) -> list[tuple[str, Location | None]]:
    """Warnings about ``ir``: its spec's (graphspec.spec.vars: a var nothing uses), unused
    inputs, ops nothing needs, parameters that cannot train."""
    warnings: list[tuple[str, Location | None]] = list(ir.spec.warnings if ir.spec else [])
    live = live_nodes(ir)
    for name in unused_inputs(ir, live):
        warnings.append((f"input '{name}' is never used: no output, loss or metric depends "
                         "on it", ir.node(name).src))
    for nid in ir.order:
        node = ir.node(nid)
        if node.kind == "op" and nid not in live:
            warnings.append((f"node '{nid}' ({node.op}) is never used", node.src))
    if ir.losses:
        feeding = ancestors(ir.graph, [lid for lid, _ in ir.losses])
        for p in ir.params:
            if p not in feeding:
                warnings.append(
                    (f"parameter '{p}' never reaches the loss: it will not train", ir.node(p).src)
                )
    return warnings


@dataclass(frozen=True)
class UnknownToken:
    """A token id outside the vocabulary of the embedding that looks it up."""

    input: str
    row: int  # index along the input's batch (first) axis
    token: int
    vocab: int
    node: str  # the embedding

    def message(self) -> str:
        return (
            f"token id {self.token} of input '{self.input}' is outside the vocabulary of "
            f"embedding '{self.node}' (vocab {self.vocab}: ids 0..{self.vocab - 1})"
        )


def token_vocabularies(ir: IR) -> dict[str, tuple[int, str]]:
    """Inputs that embeddings look up: input -> (the smallest vocabulary, its embedding)."""
    out: dict[str, tuple[int, str]] = {}
    for name in ir.inputs:
        for _, consumer in ir.graph.out_edges(name):
            node = ir.node(consumer)
            if isinstance(node, OpNode) and isinstance(node.attrs, Embedding) and (
                    node.inputs[0] == name):
                if name not in out or node.attrs.vocab < out[name][0]:
                    out[name] = (node.attrs.vocab, consumer)
    return out


def unknown_token(
    ir: IR, arrays: Mapping[str, np.ndarray],
    vocabularies: dict[str, tuple[int, str]] | None = None,
) -> UnknownToken | None:
    """The first token id (in row order) outside its embedding's vocabulary, or None;
    ``vocabularies``: ``token_vocabularies(ir)`` when the caller keeps it."""
    if vocabularies is None:
        vocabularies = token_vocabularies(ir)
    for name, (vocab, node) in vocabularies.items():
        if name not in arrays:
            continue
        a = np.asarray(arrays[name])
        bad = (a < 0) | (a >= vocab)
        if a.ndim and bad.any():
            row = int(np.argwhere(bad.reshape(len(a), -1).any(axis=1))[0][0])
            token = int(a.reshape(len(a), -1)[row][bad.reshape(len(a), -1)[row]][0])
            return UnknownToken(name, row, token, vocab, node)
    return None
