"""Parameter groups: which options (lr, weight decay) apply to which trainable parameter.

A group in the spec names parameters by fnmatch globs over parameter names
(``hidden.*``, ``*.bias``) or by the words ``biases`` (parameters the op declares
``penalize: False``: biases, norm scales and shifts) and ``weights`` (``penalize: True``).
A parameter belongs to the first group that matches it; the rest form the default group,
which takes the optimizer's own options.  Every backend builds its optimizer from
:func:`param_groups`, so numpy and torch group identically.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from graphspec.errors import SpecError, did_you_mean
from graphspec.ir.graph import IR

WORDS = {"biases": False, "weights": True}  # word -> the ``penalize`` flag it selects


def _matches(pattern: str, name: str, penalize: bool) -> bool:
    if pattern in WORDS:
        return WORDS[pattern] == penalize
    return fnmatch.fnmatchcase(name, pattern)


def param_groups(ir: IR, optimizer: Any) -> list[tuple[list[str], dict[str, float]]]:
    """``[(param names, overrides), ...]``: the default group first (no overrides), then
    each spec group in spec order; overrides hold only the keys the group sets (``lr``,
    ``weight_decay``).  Every trainable parameter is in exactly one group; empty groups
    are left out.  A group pattern that matches no parameter is a spec error (a typo
    would otherwise silently train with the default options)."""
    spec_groups = list(getattr(optimizer, "groups", []) or [])
    assigned: list[list[str]] = [[] for _ in spec_groups]
    default: list[str] = []
    for pid in ir.params:
        penalize = bool(ir.param(pid).decl.penalize)
        for gi, group in enumerate(spec_groups):
            if any(_matches(p, pid, penalize) for p in group.params):
                assigned[gi].append(pid)
                break
        else:
            default.append(pid)
    for gi, group in enumerate(spec_groups):
        for pi, pattern in enumerate(group.params):
            if not any(_matches(pattern, pid, bool(ir.param(pid).decl.penalize))
                       for pid in ir.params):
                raise SpecError(
                    f"parameter group pattern '{pattern}' matches no trainable parameter",
                    _locate(ir, gi, pi),
                    hint=did_you_mean(pattern, list(ir.params) + list(WORDS))
                    or "parameters: " + ", ".join(ir.params[:12]) + " (or 'weights', 'biases')",
                )
    out: list[tuple[list[str], dict[str, float]]] = []
    if default:
        out.append((default, {}))
    for group, names in zip(spec_groups, assigned):
        if not names:
            continue  # every pattern matched something, but earlier groups took it all
        overrides = {
            k: float(v) for k, v in (("lr", group.lr), ("weight_decay", group.weight_decay))
            if v is not None
        }
        out.append((names, overrides))
    return out


def _locate(ir: IR, group: int, pattern: int) -> Any:
    spec = ir.spec
    if spec is None or spec.source is None:
        return None
    return spec.source.locate(("train", "optimizer", "groups", group, "params", pattern))
