"""Data a trained model is applied to (``graphspec predict`` and ``evaluate``,
:meth:`graphspec.runs.run.Run.predict`): read with the same column and key mapping as the
training data (graphspec.train.data), targets optional.

A file must match the spec's inputs: every feature input present (and every target input
when targets are required), and nothing else, so a wrong file fails with the names
missing and the names extra rather than being silently misread.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from graphspec.errors import DataError, Location
from graphspec.ir.graph import IR
from graphspec.spec.models import Spec
from graphspec.train import data_files
from graphspec.train.data import (
    RowName,
    check_lengths,
    check_targets,
    check_token_ids,
    fit_input,
    input_roles,
)

Arrays = dict[str, np.ndarray]


def read_file(spec: Spec, ir: IR, path: Path, *, targets: bool | None) -> Arrays:
    """The inputs in ``path`` (.csv or .npz).  ``targets``: True requires the target
    inputs, False ignores them, None reads them when the file has them."""
    display = str(path)
    where = Location(display)
    features, target_names = input_roles(ir)
    with data_files.read(path, display, where) as table:
        columns = _columns(spec, ir, table, features, target_names, targets, where)
        arrays: Arrays = {}
        for name, cols in columns.items():
            raw = data_files.select(table, cols, where)
            arrays[name] = fit_input(name, raw, ir.type(name), where, display, row=table.row)
    return _checked(ir, arrays, target_names, where, display, table.row)


def from_arrays(spec: Spec, ir: IR, data: dict[str, Any], *, targets: bool | None) -> Arrays:
    """Arrays by input name, checked and typed like file data."""
    features, target_names = input_roles(ir)
    wanted = _wanted(features, target_names, set(data), targets)
    _mismatch("the data", set(data), wanted, set(features) | set(target_names), None)
    arrays = {k: fit_input(k, np.asarray(data[k]), ir.type(k), None) for k in wanted}
    return _checked(ir, arrays, target_names, None, "the data")


def _wanted(
    features: list[str], targets: list[str], have: set[str], want_targets: bool | None
) -> list[str]:
    if want_targets is True or (want_targets is None and all(t in have for t in targets)):
        return features + targets
    return list(features)


def _mismatch(
    what: str, have: set[str], wanted: list[str], allowed: set[str], where: Location | None
) -> None:
    missing = [k for k in wanted if k not in have]
    extra = sorted(k for k in have if k not in allowed)
    if missing or extra:
        parts = ([f"missing {', '.join(repr(k) for k in missing)}"] if missing else []) + (
            [f"unexpected {', '.join(repr(k) for k in extra)}"] if extra else []
        )
        raise DataError(
            f"{what} does not match the spec's inputs: " + "; ".join(parts),
            where,
            hint="expected: " + ", ".join(wanted),
        )


def _columns(
    spec: Spec,
    ir: IR,
    table: data_files.Table,
    features: list[str],
    targets: list[str],
    want_targets: bool | None,
    where: Location,
) -> dict[str, Any]:
    """Which columns (CSV) or arrays (npz) each input reads: the spec's ``columns``
    mapping, else arrays and header columns named like the inputs, else (a CSV whose
    header does not name the inputs) the training convention: the last column is the
    target, the others the features."""
    mapping: dict[str, Any] = dict(spec.train.data.columns or {}) if spec.train else {}
    names = table.names()
    by_name = not table.is_csv or (
        table.header is not None and any(k in names for k in ir.inputs if k not in mapping)
    )
    if mapping or by_name:
        cols = {k: mapping.get(k, k) for k in ir.inputs}
        named = {k: _names(cols[k]) for k in ir.inputs}
        # An input selected by column index is there when the indices are (select checks).
        present = {k for k in ir.inputs if named[k] <= set(names)}
        wanted = _wanted(features, targets, present, want_targets)
        need = [n for k in wanted for n in sorted(named[k])]
        allowed = set().union(*named.values())
        _mismatch(str(table.name), set(names), need, allowed, where)
        return {k: cols[k] for k in wanted}
    if len(features) != 1 or len(targets) > 1:
        raise DataError(
            f"{table.name} has no header naming the inputs {', '.join(ir.inputs)}",
            where,
            hint="add a header row, or map inputs to columns in train.data.columns",
        )
    width = _static_width(ir, features[0])
    n = table.width
    with_target = bool(targets) and (
        want_targets is True or (want_targets is None and (width is None or n == width + 1))
    )
    if want_targets is False and targets and width is not None and n == width + 1:
        with_target = True  # the target column is there: read past it
    expect = None if width is None else width + int(with_target)
    if expect is not None and n != expect:
        shown = f"{width} feature column{'s' * (width != 1)}" + (
            " and 1 target column"
            if with_target
            else (" (and optionally 1 target column)" if targets else "")
        )
        raise DataError(f"{table.name} has {n} columns; the model reads {shown}", where)
    cut = n - int(with_target)
    if cut < 1:
        raise DataError(f"{table.name} has no feature columns", where)
    out: dict[str, Any] = {features[0]: list(range(cut))}
    if with_target and want_targets is not False:
        out[targets[0]] = cut
    return out


def _names(columns: Any) -> set[str]:
    """The column or array names a ``columns`` entry refers to (none for indices)."""
    items = columns if isinstance(columns, list) else [columns]
    return {c for c in items if isinstance(c, str)}


def _static_width(ir: IR, name: str) -> int | None:
    rest = ir.type(name).shape[1:]
    if not all(isinstance(d, int) for d in rest):
        return None
    return math.prod(int(d) for d in rest)


def _checked(
    ir: IR,
    arrays: Arrays,
    targets: list[str],
    where: Location | None,
    display: str,
    row: RowName | None = None,
) -> Arrays:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{display}: inputs have different numbers of rows {lengths}", where)
    if not lengths or next(iter(lengths.values())) == 0:
        raise DataError(f"{display} has no rows", where)
    check_targets(ir, arrays, [t for t in targets if t in arrays], where, row)
    check_token_ids(ir, arrays, where, row)
    check_lengths(ir, arrays, where, row)
    return arrays
