"""One tolerance table: what verify and the conformance tests accept as agreement.

Each kind of check has a relative and an absolute tolerance per dtype; an op may loosen them
for itself (``tolerances`` on its attribute model, with the reason), never tighten them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx

from graphspec.ir.graph import IR
from graphspec.verify.report import Tol

TOLERANCES: dict[str, dict[str, Tol]] = {
    "float64": {"forward": Tol(1e-12, 1e-12), "grad": Tol(1e-9, 1e-10)},
    "float32": {"forward": Tol(1.3e-6, 1e-5), "grad": Tol(2e-3, 1e-4)},
}
FD_EPS = 1e-6
FD_RTOL = 1e-5
FD_ATOL = 1e-8  # times max(1, |loss|): the rounding of two loss evaluations divided by 2 eps
FULL_FD_MAX = 32  # tensors up to this many elements also get an element-wise Jacobian check


def op_tolerance(attrs: Any, kind: str, dtype: str) -> Tol | None:
    """An op's declared override for ``kind`` (forward, grad, fd) in ``dtype``, or None.

    Declared next to the op, with the reason::

        class GELU(Elementwise):
            tolerances: ClassVar[dict] = {
                "grad": (1e-7, 1e-9), "float32.grad": (5e-3, 1e-4),
                "reason": "numpy's and torch's erf differ in the last bits",
            }

    ``kind`` alone applies to every dtype; ``dtype.kind`` to one.  Overrides only loosen.
    """
    table = getattr(attrs, "tolerances", None)
    if not table:
        return None
    value = table.get(f"{dtype}.{kind}", table.get(kind))
    return Tol(*value) if value is not None else None


def tolerance(kind: str, dtype: str, ops: Sequence[Any] = ()) -> Tol:
    """The default tolerance for ``kind`` loosened by the overrides of the ops involved."""
    tol = FD_TOL if kind == "fd" else TOLERANCES[dtype][kind]
    for attrs in ops:
        tol = tol.loosen(op_tolerance(attrs, kind, dtype))
    return tol


FD_TOL = Tol(FD_RTOL, FD_ATOL)


def fd_tolerance(ops: Sequence[Any], value: float) -> Tol:
    """The tolerance of a gradient against central differences of a scalar function whose
    value is ``value`` (a loss; ``<g, f(x)>`` for one op): FD_ATOL times ``max(1, |value|)``,
    loosened by the overrides of the ops involved."""
    tol = tolerance("fd", "float64", ops)
    return Tol(tol.rtol, tol.atol * max(1.0, abs(value)))

def ops_behind(ir: IR, check: str, tensor: str) -> list[Any]:
    """Attribute models of the ops a tensor's value depends on (for tolerance overrides)."""
    if check.startswith("output") and tensor in ir.outputs:
        sinks = [ir.outputs[tensor]]
    elif tensor in ir.graph and check not in ("grad", "state"):
        sinks = [tensor]
    else:
        sinks = [lid for lid, _ in ir.losses]
    nodes: set[str] = set()
    for s in sinks:
        nodes |= nx.ancestors(ir.graph, s) | {s}
    return [ir.op(n).attrs for n in nodes if ir.node(n).kind == "op"]
