"""The result of ``graphspec verify``: one row per compared tensor, a table and a verdict.

A row compares one tensor of a backend against the reference (or the reference against
finite differences).  It passes when every element satisfies
``|a - b| <= atol + rtol * |b|`` (the ``allclose`` rule users know from numpy and torch);
the table shows the largest absolute error and the largest relative error over the
elements that are not negligible (``|b| > atol``), so a near-zero element does not print a
meaningless relative error.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tol:
    rtol: float
    atol: float

    def loosen(self, other: Tol | None) -> Tol:
        """The looser of the two in each component (an op's override never tightens)."""
        if other is None:
            return self
        return Tol(max(self.rtol, other.rtol), max(self.atol, other.atol))

    def __str__(self) -> str:
        return f"rtol {self.rtol:.1e} atol {self.atol:.1e}"


@dataclass
class Row:
    """One comparison.  ``check`` is what was compared (output, loss, grad, state, fd, step,
    vjp, ...), ``tensor`` its name, ``against`` the two sides (``torch~numpy``)."""

    check: str
    tensor: str
    against: str
    max_abs: float
    max_rel: float
    tol: Tol
    ok: bool
    node: str | None = None  # the IR node the tensor belongs to or that is blamed
    where: str | None = None  # the node's spec location, ``file:line:col``
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.check} {self.tensor}"


def compare(
    check: str, tensor: str, against: str, actual: Any, expected: Any, tol: Tol, **extra: Any
) -> Row:
    """Compare ``actual`` with ``expected`` element by element (see the module docstring)."""
    note = extra.pop("note", "")
    a = np.asarray(actual, dtype=np.float64) if actual is not None else None
    b = np.asarray(expected, dtype=np.float64) if expected is not None else None
    if a is None or b is None:
        side = against.split("~")[0 if a is None else 1]
        return Row(check, tensor, against, math.inf, math.inf, tol, False,
                   note=f"missing in {side}", **extra)
    if a.shape != b.shape:
        return Row(check, tensor, against, math.inf, math.inf, tol, False,
                   note=f"shape {a.shape} vs {b.shape}", **extra)
    both_nan = np.isnan(a) & np.isnan(b)
    same_inf = np.isinf(a) & (a == b)
    diff = np.where(both_nan | same_inf, 0.0, np.abs(a - b))
    diff = np.where(np.isnan(diff), np.inf, diff)
    scale = np.abs(np.where(np.isfinite(b), b, 0.0))
    ok = bool(np.all(diff <= tol.atol + tol.rtol * scale))
    max_abs = float(diff.max()) if diff.size else 0.0
    big = scale > tol.atol
    max_rel = float((diff[big] / scale[big]).max()) if np.any(big) else 0.0
    if not np.all(np.isfinite(a) | both_nan | same_inf):
        note = note or "non-finite values"
    return Row(check, tensor, against, max_abs, max_rel, tol, ok, note=note, **extra)


SENSITIVITY = 10.0  # margin over the reference's own spread under a 1-ulp perturbation


def floored(tol: Tol, expected: Any, *shadows: Any) -> tuple[Tol, str]:
    """``tol`` with its atol raised to SENSITIVITY times how far the reference itself moves
    (``shadows``: the reference rerun from parameters perturbed by a rounding).

    Two backends round differently; a well-conditioned computation turns that into
    differences near machine precision, but a chaotic one (saturated deep nets, many
    optimizer steps, Adam dividing by a gradient that is rounding noise) amplifies it.  The
    reference's spread under a rounding-sized change is the honest measure of how many
    digits can agree, so the floor only ever rises above the tolerance there.
    """
    b = None if expected is None else np.asarray(expected, dtype=np.float64)
    spread = 0.0
    for shadow in shadows:
        if shadow is None or b is None:
            continue
        a = np.asarray(shadow, dtype=np.float64)
        if a.shape != b.shape or a.size == 0:
            continue
        d = np.abs(a - b)
        d = d[np.isfinite(d)]
        spread = max(spread, float(d.max()) if d.size else 0.0)
    if SENSITIVITY * spread <= tol.atol:
        return tol, ""
    note = f"rounding-sensitive: the reference itself moves {spread:.1e} under a rounding"
    return Tol(tol.rtol, SENSITIVITY * spread), note


def error_row(check: str, tensor: str, against: str, message: str, **extra: Any) -> Row:
    """A failed stage (a backend raised): reported as a failing row with the message."""
    return Row(check, tensor, against, math.inf, math.inf, Tol(0.0, 0.0), False,
               note=message, **extra)


@dataclass
class Report:
    spec: str
    backends: tuple[str, ...]
    dtype: str
    steps: int
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if not r.ok]

    def verdict(self) -> str:
        steps = f"{self.steps} step" + ("s" if self.steps != 1 else "")
        what = f"{' vs '.join(self.backends)}, {self.dtype}, {steps}"
        if self.ok:
            return f"PASS: {len(self.rows)} checks agree ({what})"
        bad = self.failures
        labels = list(dict.fromkeys(_short(r) for r in bad))
        names = ", ".join(labels[:4]) + (", ..." if len(labels) > 4 else "")
        blamed = [r for r in bad if r.check in ("vjp", "value") and r.node]
        suspect = ""
        if blamed:
            r = blamed[0]
            suspect = f"; suspect node '{r.node}'" + (f" at {r.where}" if r.where else "")
        return f"FAIL: {len(bad)} of {len(self.rows)} checks disagree ({what}): {names}{suspect}"

    def render(self, only_failures: bool = False) -> str:
        rows = self.failures if only_failures else self.rows
        head = ("check", "tensor", "compared", "max abs err", "max rel err", "tolerance", "result")
        table = [head] + [
            (r.check, r.tensor, r.against, _num(r.max_abs), _num(r.max_rel), str(r.tol),
             ("ok" if r.ok else "FAIL") + (f"  {r.note}" if r.note else "")
             + (f"  [{r.node} @ {r.where}]" if not r.ok and r.node and r.where else ""))
            for r in rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(len(head) - 1)]
        out = [f"graphspec verify {self.spec}"]
        for line in table:
            cells = [c.ljust(w) for c, w in zip(line, widths)] + [line[-1]]
            out.append("  ".join(cells).rstrip())
        out += [f"note: {n}" for n in self.notes]
        out.append(self.verdict())
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        def row(r: Row) -> dict[str, Any]:
            d = asdict(r)
            d["tol"] = asdict(r.tol)
            for k in ("max_abs", "max_rel"):
                d[k] = d[k] if math.isfinite(d[k]) else None  # JSON has no Infinity
            return d

        return {
            "spec": self.spec, "backends": list(self.backends), "dtype": self.dtype,
            "steps": self.steps, "ok": self.ok, "verdict": self.verdict(),
            "rows": [row(r) for r in self.rows], "notes": list(self.notes),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def _num(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.2e}"


def _short(r: Row) -> str:
    return f"{r.label} ({r.against})" if "~" in r.against else r.label
