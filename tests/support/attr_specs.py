"""Specs that set one float attribute of one op, for the non-finite attribute tests
(tests/spec/test_nonfinite_attrs.py and the fuzzing in tests/robustness/test_fuzz.py)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from graphspec.ops import REGISTRY
from graphspec.ops.registry import allows_infinity  # noqa


def float_attrs() -> list[tuple[str, str]]:
    """(op, attribute) for every float attribute of every registered op."""
    return [
        (name, field)
        for name, opdef in sorted(REGISTRY.items())
        for field, info in opdef.attrs.model_fields.items()
        if "float" in str(info.annotation)
    ]


def infinity_allowed(op: str, field: str) -> bool:
    return allows_infinity(REGISTRY[op].attrs, field)


def first_sample(op: str) -> Any:
    return next(iter(REGISTRY[op].attrs.samples(np.random.default_rng(0))))


def _inputs(op: str) -> str:
    """Three float inputs ``[batch, 3]``; an op whose first sample takes an integer input
    (a class-index target) gets its inputs shaped and typed like that sample's instead."""
    given = first_sample(op).inputs
    values = [np.asarray(given[i.name]) for i in REGISTRY[op].inputs if i.name in given]
    if not any(v.dtype.kind in "iub" for v in values):
        return "{i0: [batch, 3], i1: [batch, 3], i2: [batch, 3]}"
    decls = []
    for k, v in enumerate(values):
        shape = ", ".join(["batch", *(str(d) for d in v.shape[1:])])
        kind = ", dtype: int" if v.dtype.kind in "iub" else ""
        decls.append(f"i{k}: {{shape: [{shape}]{kind}}}")
    return "{" + ", ".join(decls) + "}"


def spec_with(op: str, field: str, value: str) -> tuple[str, int, int]:
    """A spec using ``op`` (its first sample's attributes) with ``field: value`` on a line of
    its own, and the line and column of ``value``."""
    opdef = REGISTRY[op]
    attrs = {k: v for k, v in first_sample(op).attrs.items() if k != field}
    n_in = sum(1 for i in opdef.inputs if not i.optional)
    ins = [f"i{k}" for k in range(n_in)]
    lines = ["graphspec: 1", "name: t", "inputs: " + _inputs(op)]
    indent = "    "
    if opdef.category == "op":
        lines.append("graph:")
    else:
        lines += ["graph:", "  - {id: g, op: identity, in: i0}"]
        if opdef.category == "loss":
            lines.append("loss:")
        else:
            lines += [
                "loss:",
                "  - {op: l2_penalty, in: [g]}",
                "train:",
                "  data: {source: xor}",
                "  metrics:",
            ]
            indent = "      "
    lines.append(indent[:-2] + "- id: n")
    lines.append(f"{indent}op: {op}")
    if ins:
        lines.append(f"{indent}in: [{', '.join(ins)}]")
    lines += [f"{indent}{k}: {json.dumps(v)}" for k, v in attrs.items()]
    lines.append(f"{indent}{field}: {value}")
    return "\n".join(lines) + "\n", len(lines), len(indent) + len(field) + 3
