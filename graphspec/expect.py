"""``expect:``: a spec's expected outcome, as claims a finished run can be checked against.

Each claim is one comparison over the run's numbers, written like Python::

    expect:
      - val_binary_accuracy >= 0.97
      - 0.35 <= val_accuracy <= 0.65                  # chained: a range
      - train_binary_accuracy - val_binary_accuracy >= 0.3
      - grad_norms.first < 1e-4 * grad_norms.last     # an analysis entry's summary
      - robustness.accuracy[2] <= 0.6                 # a list, by position

The names a claim may use (:func:`quantities`):

* the final metrics of the run: ``train_loss``, ``val_loss``, ``train_<term>``,
  ``val_<metric>``... (what ``graphspec train`` prints at the end);
* ``epochs``: the epochs completed (fewer than planned when early stopping ended the run),
  and ``best_epoch`` when a monitor was tracked;
* ``<entry>.<key>``: the summary of the analysis entry named ``<entry>`` (its file stem:
  ``grad_norms``, ``robustness``, ``predictive``, ``estimator_variance``, ``boundary``...),
  as ``analysis.json`` records it.

Arithmetic: numbers, ``+ - * /``, ``**``, unary minus, parentheses, ``abs``, ``min``,
``max``, ``log10``; comparisons ``< <= > >= == !=``.  A claim is parsed when the spec is
loaded (a syntax error points at the claim) and evaluated after training; a name the run
does not have is reported with "did you mean".
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphspec.errors import did_you_mean

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "min": min,
    "max": max,
    "log10": math.log10,
}
_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_CMPOPS = {
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
}


class ClaimError(ValueError):
    """A claim that is not a comparison of the allowed form, or names an unknown number."""


@dataclass(frozen=True)
class Outcome:
    """One claim checked against a run: whether it ``held`` and the numbers it read."""

    claim: str
    held: bool
    values: dict[str, float]

    def render(self) -> str:
        shown = ", ".join(f"{k} = {_fmt(v)}" for k, v in self.values.items())
        return f"{'ok  ' if self.held else 'FAIL'} {self.claim}" + (
            f"   ({shown})" if shown else ""
        )


def parse(claim: str) -> ast.Compare:
    """The claim's syntax tree, checked: one comparison of allowed expressions."""
    try:
        tree = ast.parse(claim.strip(), mode="eval").body
    except SyntaxError as e:
        raise ClaimError(f"not an expression: {e.msg}") from None
    if not isinstance(tree, ast.Compare):
        raise ClaimError("a claim is a comparison, e.g. 'val_accuracy >= 0.9'")
    for node in [tree.left, *tree.comparators]:
        _check(node)
    for op in tree.ops:
        if type(op) not in _CMPOPS:
            raise ClaimError(f"unsupported comparison '{type(op).__name__}'")
    return tree


def names(claim: str) -> list[str]:
    """The quantity names a claim reads, in order of appearance."""
    out: list[str] = []

    def walk(node: ast.AST) -> None:
        name = _dotted(node)
        if name is not None:
            out.append(name)
            return
        for child in ast.iter_child_nodes(node):
            if not (isinstance(node, ast.Call) and child is node.func):
                walk(child)

    walk(parse(claim))
    return list(dict.fromkeys(out))


def evaluate(claim: str, values: Mapping[str, Any]) -> Outcome:
    """Check ``claim`` against ``values`` (see :func:`quantities`)."""
    tree = parse(claim)
    read: dict[str, float] = {}
    operands = [_eval(n, values, read) for n in [tree.left, *tree.comparators]]
    held = all(_CMPOPS[type(op)](a, b) for op, a, b in zip(tree.ops, operands, operands[1:]))
    return Outcome(claim, bool(held), read)


def check(claims: list[str], values: Mapping[str, Any]) -> list[Outcome]:
    return [evaluate(c, values) for c in claims]


def quantities(run: Any) -> dict[str, Any]:
    """The numbers claims may read from a finished run: a ``RunResult`` or a run directory."""
    if isinstance(run, str | Path):
        run_dir = Path(run)
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        values: dict[str, Any] = dict(summary.get("final") or {})
        values["epochs"] = summary.get("epochs")
        best = summary.get("best")
    else:
        run_dir = Path(run.run_dir)
        values = dict(run.final)
        values["epochs"] = run.epochs
        best = run.best
    if best and best.get("epoch") is not None:
        values["best_epoch"] = best["epoch"]
    index = run_dir / "analysis.json"
    if index.is_file():
        for entry in json.loads(index.read_text(encoding="utf-8")).get("entries", []):
            for key, v in (entry.get("summary") or {}).items():
                values[f"{entry['name']}.{key}"] = v
    return {k: v for k, v in values.items() if v is not None}


def check_run(claims: list[str], run: Any) -> list[Outcome]:
    """Check ``claims`` against a finished run (a ``RunResult`` or a run directory)."""
    return check(claims, quantities(run))


# ---- the evaluator ----------------------------------------------------------------------


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _check(node: ast.AST) -> None:
    if _dotted(node) is not None:
        return
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        _check(node.left)
        _check(node.right)
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        _check(node.operand)
        return
    if isinstance(node, ast.Subscript):
        _check(node.value)
        if not (isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int)):
            raise ClaimError("an index is a whole number, e.g. robustness.accuracy[2]")
        return
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in FUNCTIONS
        and not node.keywords
        and node.args
    ):
        for a in node.args:
            _check(a)
        return
    raise ClaimError(f"unsupported expression '{ast.unparse(node)}'")


def _eval(node: ast.AST, values: Mapping[str, Any], read: dict[str, float]) -> Any:
    name = _dotted(node)
    if name is not None:
        if name not in values:
            hint = did_you_mean(name, list(values))
            raise ClaimError(
                f"the run has no number '{name}'"
                + (f"; {hint}" if hint else "")
                + "; it has: "
                + ", ".join(sorted(values))
            )
        v = values[name]
        if isinstance(v, int | float):
            read[name] = float(v)
        return v
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](
            _eval(node.left, values, read), _eval(node.right, values, read)
        )
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, values, read)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Subscript):
        seq = _eval(node.value, values, read)
        assert isinstance(node.slice, ast.Constant)
        i = int(node.slice.value)  # type: ignore[arg-type]  # checked by _check
        try:
            v = seq[i]
        except (IndexError, TypeError, KeyError):
            raise ClaimError(f"'{ast.unparse(node)}': no element {i}") from None
        label = ast.unparse(node)
        if isinstance(v, int | float):
            read[label] = float(v)
            read.pop(_dotted(node.value) or "", None)
        return v
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        args = [_eval(a, values, read) for a in node.args]
        return FUNCTIONS[node.func.id](*args)
    raise ClaimError(f"unsupported expression '{ast.unparse(node)}'")  # pragma: no cover


def _fmt(v: float) -> str:
    return f"{v:.4g}"
