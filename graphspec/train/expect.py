"""``expect:``: a spec's expected outcome, as claims a finished run can be checked against.

Each claim is one comparison over the run's numbers, written like Python::

    expect:
      - val_binary_accuracy >= 0.97
      - 0.35 <= val_accuracy <= 0.65                  # chained: a range
      - train_binary_accuracy - val_binary_accuracy >= 0.3
      - grad_norms.first < 1e-4 * grad_norms.last     # an analysis entry's summary
      - robustness.accuracy[2] <= 0.6                 # a list, by position
      - max(robustness.accuracy) <= 1                 # min/max of one list, or of numbers

The names a claim may use (:func:`quantities`):

* the final metrics of the run: ``train_loss``, ``val_loss``, ``train_<term>``,
  ``val_<metric>``... (what ``graphspec train`` prints at the end);
* ``epochs``: the epochs completed (fewer than planned when early stopping ended the run),
  and ``best_epoch`` when a monitor was tracked;
* ``<entry>.<key>``: the summary of the analysis entry named ``<entry>`` (its file stem:
  ``grad_norms``, ``robustness``, ``predictive``, ``estimator_variance``, ``boundary``...),
  as ``analysis.json`` records it.

Arithmetic: numbers, ``+ - * /``, ``**``, unary minus, parentheses, ``abs``, ``min``,
``max``, ``log10``; comparisons ``< <= > >= == !=``.

A claim is user input, checked twice:

* when the spec is loaded (:func:`parse`): its size and nesting are bounded before anything
  walks it, only the forms above are allowed, each function gets the number of arguments it
  takes, and the parts made of numbers alone are computed, so ``log10(0)`` or ``10.0**400``
  is an error located at the claim rather than a surprise after training;
* after training (:func:`evaluate`): arithmetic is done in floats (an integer power is never
  computed exactly, so ``10**10**10`` cannot run for hours), and anything that cannot be
  computed -- a division by zero, an overflow, an unknown name ("did you mean") -- makes the
  claim fail with the reason, instead of ending the command.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphspec.errors import _printable, did_you_mean

# A claim is one line a person reads; these bounds are far above any real one and keep
# parsing, checking and evaluating it cheap and free of deep recursion.
MAX_CLAIM_CHARS = 1000
MAX_CLAIM_NODES = 200  # expressions in the syntax tree (names, numbers, operations)
MAX_CLAIM_DEPTH = 32  # nesting of those expressions
MAX_JSON_BYTES = 64 * 2**20  # summary.json and analysis.json of a run are small


class ClaimError(ValueError):
    """A claim that is not a comparison of the allowed form (refused when the spec loads)."""


class _Failed(Exception):
    """A claim that cannot be computed for a run; it fails with this message."""


@dataclass(frozen=True)
class Outcome:
    """One claim checked against a run: whether it ``held``, the numbers it read and, when it
    could not be computed, why (``error``; then it did not hold)."""

    claim: str
    held: bool
    values: dict[str, float]
    error: str | None = None

    def render(self) -> str:
        shown = ", ".join(f"{k} = {_fmt(v)}" for k, v in self.values.items())
        if self.error:
            shown = f"{shown}; " if shown else ""
            shown += f"cannot be computed: {self.error}"
        line = f"{'ok  ' if self.held else 'FAIL'} {self.claim}" + (
            f"   ({shown})" if shown else ""
        )
        return _printable(line)  # a claim may hold a '\r' or a form feed: never obeyed


@dataclass(frozen=True)
class _Function:
    fn: Callable[[list[float]], float]
    min_args: int
    max_args: int | None  # None: any number
    usage: str


def _log10(args: list[float]) -> float:
    (x,) = args
    if not x > 0:
        raise _Failed(f"log10 needs a positive number, got {_fmt(x)}")
    return math.log10(x)


def _extreme(pick: Callable[[list[float]], float], name: str) -> Callable[[list[float]], float]:
    def fn(args: list[float]) -> float:
        if not args:
            raise _Failed(f"{name} of an empty list")
        return pick(args)

    return fn


FUNCTIONS: dict[str, _Function] = {
    "abs": _Function(lambda a: abs(a[0]), 1, 1, "abs(x)"),
    "log10": _Function(_log10, 1, 1, "log10(x)"),
    # One argument: a list the run records (min(robustness.accuracy)); else numbers.
    "min": _Function(_extreme(min, "min"), 1, None, "min(a, b, ...) or min(a_list)"),
    "max": _Function(_extreme(max, "max"), 1, None, "max(a, b, ...) or max(a_list)"),
}
_BINOPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    # math.pow, not **: floats only (no exact huge integer), OverflowError on overflow and
    # ValueError for a negative number to a fractional power (** would return a complex).
    ast.Pow: math.pow,
}
_CMPOPS: dict[type, Callable[[float, float], bool]] = {
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
}


def parse(claim: str) -> ast.Compare:
    """The claim's syntax tree, checked: one comparison of allowed, computable expressions."""
    if not isinstance(claim, str):
        raise ClaimError("a claim is a string, e.g. 'val_accuracy >= 0.9'")
    text = claim.strip()
    if len(text) > MAX_CLAIM_CHARS:
        raise ClaimError(
            f"the claim has {len(text):,} characters, more than the limit of "
            f"{MAX_CLAIM_CHARS:,}; split it into several claims"
        )
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError) as e:  # ValueError: a NUL character (older Pythons)
        raise ClaimError(f"not an expression: {getattr(e, 'msg', None) or e}") from None
    except (RecursionError, MemoryError):  # pragma: no cover - the length bound prevents it
        raise ClaimError("the claim nests too deeply") from None
    _check_size(tree)  # before any recursive walk below
    if not isinstance(tree, ast.Compare):
        raise ClaimError("a claim is a comparison, e.g. 'val_accuracy >= 0.9'")
    for op in tree.ops:
        if type(op) not in _CMPOPS:
            raise ClaimError(f"unsupported comparison '{type(op).__name__}'")
    for node in _sides(tree):
        _check(node)
    # The parts made of numbers alone can be computed now: a claim that can never be
    # computed is a mistake in the spec, found before training.
    try:
        _Evaluator(None).operands(tree)
    except _Failed as e:
        raise ClaimError(str(e)) from None
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
    """Check ``claim`` against ``values`` (see :func:`quantities`).

    Raises :class:`ClaimError` only for a claim that does not parse (which a loaded spec
    never holds); anything the run's numbers make impossible to compute is a failed
    :class:`Outcome` carrying the reason."""
    tree = parse(claim)
    ev = _Evaluator(values)
    try:
        operands = [_number(v, ast.unparse(n)) for v, n in zip(ev.operands(tree), _sides(tree))]
        held = all(_CMPOPS[type(op)](a, b) for op, a, b in zip(tree.ops, operands, operands[1:]))
    except _Failed as e:
        return Outcome(claim, False, ev.read, str(e))
    return Outcome(claim, bool(held), ev.read)


def check(claims: list[str], values: Mapping[str, Any]) -> list[Outcome]:
    return [evaluate(c, values) for c in claims]


def quantities(run: Any) -> dict[str, Any]:
    """The numbers claims may read from a finished run: a ``RunResult`` or a run directory."""
    if isinstance(run, str | Path):
        run_dir = Path(run)
        summary = _read_json(run_dir / "summary.json")
        if not isinstance(summary, dict):
            raise ClaimError(f"{run_dir / 'summary.json'} does not hold a run summary")
        final = summary.get("final")
        values: dict[str, Any] = dict(final) if isinstance(final, dict) else {}
        values["epochs"] = summary.get("epochs")
        best = summary.get("best")
    else:
        run_dir = Path(run.run_dir)
        values = dict(run.final)
        values["epochs"] = run.epochs
        best = run.best
    if isinstance(best, dict) and best.get("epoch") is not None:
        values["best_epoch"] = best["epoch"]
    index = run_dir / "analysis.json"
    if index.is_file():
        data = _read_json(index)
        entries = data.get("entries", []) if isinstance(data, dict) else []
        for entry in entries if isinstance(entries, list) else []:
            summary_of = entry.get("summary") if isinstance(entry, dict) else None
            if not isinstance(summary_of, dict) or not isinstance(entry.get("name"), str):
                continue
            for key, v in summary_of.items():
                values[f"{entry['name']}.{key}"] = v
    return {k: v for k, v in values.items() if v is not None}


def check_run(claims: list[str], run: Any) -> list[Outcome]:
    """Check ``claims`` against a finished run (a ``RunResult`` or a run directory)."""
    return check(claims, quantities(run))


def _read_json(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_JSON_BYTES + 1)
        if len(raw) > MAX_JSON_BYTES:
            raise ClaimError(f"{path} is larger than {MAX_JSON_BYTES // 2**20} MiB")
        return json.loads(raw)
    except OSError as e:
        raise ClaimError(f"cannot read {path}: {e.strerror or e}") from None
    except (ValueError, RecursionError):  # JSONDecodeError, bad UTF-8, absurd nesting
        raise ClaimError(f"{path} is not valid JSON") from None


# ---- checking the form -------------------------------------------------------------------


def _check_size(tree: ast.AST) -> None:
    """Refuse a claim with too many expressions or nested too deeply, without recursion
    (the recursive walks that follow are then bounded by MAX_CLAIM_DEPTH)."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, _LEAF_MARKERS):  # Load, Add, Lt...: part of their parent
            continue
        count += 1
        if count > MAX_CLAIM_NODES:
            raise ClaimError(
                f"the claim has more than {MAX_CLAIM_NODES} terms and operations (the limit); "
                "split it into several claims"
            )
        if depth > MAX_CLAIM_DEPTH:
            raise ClaimError(
                f"the claim nests more than {MAX_CLAIM_DEPTH} levels deep (the limit); "
                "split it into several claims"
            )
        stack.extend((c, depth + 1) for c in ast.iter_child_nodes(node))


_LEAF_MARKERS = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)


def _sides(tree: ast.Compare) -> list[ast.expr]:
    return [tree.left, *tree.comparators]


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _is_number(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    )


def _check(node: ast.AST) -> None:
    if _dotted(node) is not None or _is_number(node):
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
        if not (
            isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, int)
            and not isinstance(node.slice.value, bool)
        ):
            raise ClaimError("an index is a whole number, e.g. robustness.accuracy[2]")
        return
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        fn = FUNCTIONS.get(name)
        if fn is None:
            hint = did_you_mean(name, FUNCTIONS)
            raise ClaimError(
                f"unknown function '{name}'"
                + (f"; {hint}" if hint else "; the functions are " + ", ".join(FUNCTIONS))
            )
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise ClaimError(f"{name} takes plain arguments: {fn.usage}")
        n = len(node.args)
        if n < fn.min_args or (fn.max_args is not None and n > fn.max_args):
            raise ClaimError(f"{name} takes {_arity(fn)}, got {n}: {fn.usage}")
        if n == 1 and fn.max_args is None and _dotted(node.args[0]) is None:
            # min(x) of one number is a slip: a single argument must be a list of the run.
            raise ClaimError(
                f"{name} of one argument takes a list the run records, such as "
                f"{name}(robustness.accuracy); got '{ast.unparse(node.args[0])}'"
            )
        for a in node.args:
            _check(a)
        return
    raise ClaimError(f"unsupported expression '{ast.unparse(node)}'")


def _arity(fn: _Function) -> str:
    if fn.max_args == fn.min_args:
        return f"{fn.min_args} argument" + ("s" if fn.min_args != 1 else "")
    return f"at least {fn.min_args} argument" + ("s" if fn.min_args != 1 else "")


# ---- the evaluator -----------------------------------------------------------------------


class _Unknown:
    """The value of an expression that reads the run, while checking a claim at load."""


_UNKNOWN = _Unknown()


class _Evaluator:
    """Computes a checked claim in floats.  With ``values`` None (when the spec loads) a
    name's value is unknown, and so is every expression reading one: only the parts made
    of numbers alone are computed.  Every failure is a :class:`_Failed` with its reason."""

    def __init__(self, values: Mapping[str, Any] | None) -> None:
        self.values = values
        self.read: dict[str, float] = {}

    def operands(self, tree: ast.Compare) -> list[Any]:
        return [self.eval(n) for n in _sides(tree)]

    def eval(self, node: ast.AST) -> Any:
        name = _dotted(node)
        if name is not None:
            return self.lookup(name)
        if isinstance(node, ast.Constant):
            try:
                return float(node.value)  # type: ignore[arg-type]  # a number (checked)
            except OverflowError:
                raise _Failed(f"the number {_short(ast.unparse(node))} is too large") from None
        if isinstance(node, ast.UnaryOp):
            v = self.eval(node.operand)
            if v is _UNKNOWN:
                return v
            x = _number(v, ast.unparse(node.operand))
            return -x if isinstance(node.op, ast.USub) else x
        if isinstance(node, ast.BinOp):
            a, b = self.eval(node.left), self.eval(node.right)
            if isinstance(node.op, ast.Div) and b == 0.0:  # whatever the run's numbers are
                raise _Failed(f"{_short(ast.unparse(node))}: division by zero")
            if a is _UNKNOWN or b is _UNKNOWN:
                return _UNKNOWN
            x, y = _number(a, ast.unparse(node.left)), _number(b, ast.unparse(node.right))
            return _compute(node, lambda: _BINOPS[type(node.op)](x, y))
        if isinstance(node, ast.Subscript):
            return self.index(node)
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            fn = FUNCTIONS[node.func.id]
            args = [self.eval(a) for a in node.args]
            if any(a is _UNKNOWN for a in args):
                return _UNKNOWN
            if len(args) == 1 and fn.max_args is None:  # min/max of a list
                seq = args[0]
                if not isinstance(seq, list):
                    raise _Failed(f"'{ast.unparse(node.args[0])}' is not a list")
                nums = [_number(v, f"an element of {ast.unparse(node.args[0])}") for v in seq]
            else:
                nums = [_number(v, ast.unparse(a)) for v, a in zip(args, node.args)]
            return _compute(node, lambda: fn.fn(nums))
        raise _Failed(f"unsupported expression '{ast.unparse(node)}'")  # pragma: no cover

    def lookup(self, name: str) -> Any:
        if self.values is None:
            return _UNKNOWN
        if name not in self.values:
            hint = did_you_mean(name, list(self.values))
            raise _Failed(
                f"the run has no number '{name}'"
                + (f"; {hint}" if hint else "")
                + "; it has: "
                + ", ".join(sorted(self.values))
            )
        v = self.values[name]
        if _numeric(v):
            self.read[name] = x = _number(v, name)
            return x
        return v

    def index(self, node: ast.Subscript) -> Any:
        seq = self.eval(node.value)
        if seq is _UNKNOWN:
            return seq
        assert isinstance(node.slice, ast.Constant)
        i = node.slice.value
        assert isinstance(i, int)  # checked by _check
        label = ast.unparse(node)
        if not isinstance(seq, list):
            raise _Failed(f"'{ast.unparse(node.value)}' is not a list")
        if not 0 <= i < len(seq):
            raise _Failed(f"'{label}': no element {i} (the list has {len(seq)})")
        v = seq[i]
        if _numeric(v):
            self.read[label] = x = _number(v, label)
            self.read.pop(_dotted(node.value) or "", None)
            return x
        return v


def _numeric(v: Any) -> bool:
    return isinstance(v, int | float)  # bools count as 0 and 1, as Python has them


def _number(v: Any, what: str) -> float:
    if isinstance(v, float):
        return v
    if _numeric(v):
        try:
            return float(v)
        except OverflowError:
            raise _Failed(f"{_short(what)} is too large") from None
    kind = "a list" if isinstance(v, list) else type(v).__name__
    raise _Failed(f"{_short(what)} is {kind}, not a number")


def _compute(node: ast.AST, fn: Callable[[], float]) -> float:
    """``fn()`` with Python's arithmetic errors turned into a failure naming ``node``."""
    try:
        return fn()
    except ZeroDivisionError:
        raise _Failed(f"{_short(ast.unparse(node))}: division by zero") from None
    except OverflowError:
        raise _Failed(f"{_short(ast.unparse(node))}: the result is too large for a float") from None
    except ValueError:  # math.pow's domain: 0 to a negative power, negative to a fraction
        raise _Failed(
            f"{_short(ast.unparse(node))}: undefined (a negative number to a fractional power, "
            "or 0 to a negative one)"
        ) from None


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt(v: float) -> str:
    return f"{v:.4g}"
