"""Training data for a spec: synthetic or from files, fitted to the declared inputs, split.

The IR tells which inputs are *targets* (read only as non-differentiable arguments of loss
terms and metrics, like ``y`` in ``bce_with_logits(logit, y)``) and which are *features*.
An input nothing depends on is neither (it needs no data; validate warns about it).
A synthetic source fills the one feature input and the one target input; a file fills
each input from the columns ``train.data.columns`` names (default: arrays named like the
inputs in a .npz; the last CSV column as the target and the others as features).

Targets take the form the spec declares: integer labels for an ``int`` input, 0/1 floats
for a binary ``[batch, 1]`` target, one-hot rows for ``[batch, classes]`` or ``one_hot``.
Every check that fails raises :class:`DataError` at the ``train.data`` key responsible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphspec.errors import DataError, Location
from graphspec.ir.checks import unknown_token, unused_inputs
from graphspec.ir.graph import IR
from graphspec.ir.node import OpNode
from graphspec.ops.losses import ClassLoss
from graphspec.ops.recurrent import Recurrent
from graphspec.ops.registry import TensorType
from graphspec.spec.models import DataSpec, Spec
from graphspec.train import data_files, datasets, seeds, sequence_sources
from graphspec.train.data_sources import (
    FIXED_CLASSES,
    FIXED_FEATURES,
    REGRESSION,
    corrupt_labels,
    generate,
)
from graphspec.train.datasets import DATASETS
from graphspec.train.sequence_sources import SEQUENCE_SOURCES

Arrays = dict[str, np.ndarray]
RowName = Callable[[int], str]  # row index -> where it is, for messages (data_files.Table.row)
# Losses whose targets are probabilities: a label outside [0, 1] is a data error.
PROBABILITY_TARGETS = {"bce_with_logits", "bce"}


@dataclass
class Dataset:
    splits: dict[str, Arrays]  # "train" and, with a validation split, "val"
    note: str = ""
    vocabulary: str | None = None  # source text: the characters token ids index

    def rows(self, split: str) -> int:
        return len(next(iter(self.splits[split].values())))


def input_roles(ir: IR) -> tuple[list[str], list[str]]:
    """(feature inputs, target inputs) in declaration order; unused inputs are neither."""
    features: list[str] = []
    targets: list[str] = []
    unused = set(unused_inputs(ir))
    for name in ir.inputs:
        if name in unused:
            continue
        uses = list(ir.graph.out_edges(name, data=True))
        is_target = bool(uses)
        for _, consumer, d in uses:
            node = ir.node(consumer)
            if not isinstance(node, OpNode) or node.role not in ("loss", "metric"):
                is_target = False
                break
            if node.grad_flags[d["arg"]]:
                is_target = False
                break
        (targets if is_target else features).append(name)
    return features, targets


def load_data(spec: Spec, ir: IR, seed: int) -> Dataset:
    """The splits for training ``spec``, drawn (synthetic) or split with ``seed`` unless
    ``train.data.seed`` is set."""
    assert spec.train is not None
    data = spec.train.data
    data_seed = seed if data.seed is None else data.seed

    def loc(*path: Any) -> Location | None:
        return spec.source.locate(("train", "data") + path) if spec.source else None

    features, targets = input_roles(ir)
    note = ""
    strata = None
    clean: Arrays = {}  # targets before label_noise: what the test split keeps
    vocabulary = None
    if data.source in SEQUENCE_SOURCES:
        arrays, vocabulary = _sequences(spec, ir, features, targets, data_seed, loc)
    elif data.source in DATASETS:
        arrays, strata = _bundled(data, ir, features, targets, data_seed, loc)
    elif data.source is not None:
        arrays, note, strata, clean = _synthetic(data, ir, features, targets, data_seed, loc)
    else:
        assert data.path is not None
        if data.label_noise:
            raise DataError("label_noise applies to synthetic classification sources",
                            loc("label_noise"))
        arrays = _from_file(spec, ir, data.path, ("path",), features, targets, loc)
    test: Arrays | None = None
    if data.test_path is not None:
        test = _from_file(spec, ir, data.test_path, ("test_path",), features, targets, loc)
    elif data.test_split > 0:
        # The test rows are set aside first, from their own stream, so that the
        # validation split of the rest is drawn as it would be without a test split.
        n = len(next(iter(arrays.values())))
        n_test = max(int(round(n * data.test_split)), 1)
        keep, held = _hold_out(n, n_test, data.shuffle,
                               seeds.stream(data_seed, seeds.TEST_SPLIT), strata)
        if len(keep) < 1:
            raise DataError(f"{n} samples leave none for training with test_split "
                            f"{data.test_split}", loc("test_split"))
        test = {k: (clean.get(k, v))[held] for k, v in arrays.items()}
        arrays = {k: v[keep] for k, v in arrays.items()}
        strata = strata[keep] if strata is not None else None
        # val_split stays a fraction of all the rows: 0.2 and 0.2 leave 60% for training.
        data = data.model_copy(update={"val_split": min(data.val_split * n / len(keep), 0.99)})
    if data.val_path is not None:
        val = _from_file(spec, ir, data.val_path, ("val_path",), features, targets, loc)
        splits = {"train": arrays, "val": val}
    else:
        splits = _split(arrays, data, data_seed, loc, strata)
    if test is not None:
        splits["test"] = test
    if data.source in DATASETS:
        splits = datasets.standardize(data.source, splits, features)
    return Dataset(splits, note, vocabulary)


# ---- synthetic ---------------------------------------------------------------------------


def _synthetic(
    data: DataSpec, ir: IR, features: list[str], targets: list[str], seed: int, loc: Any
) -> tuple[Arrays, str, np.ndarray | None, Arrays]:
    source = data.source
    assert source is not None
    xname = _one_feature(source, features, targets, loc)
    xtype = ir.type(xname)
    width = _static_numel(xtype)
    n_features = data.features
    if source in FIXED_FEATURES:
        n_features = FIXED_FEATURES[source]
    elif "features" not in data.model_fields_set and width is not None:
        n_features = width  # follow the declared input when the spec does not say
    if width is not None and width != n_features:
        raise DataError(
            f"source '{source}' gives {n_features} features but input '{xname}' is declared "
            f"{xtype}", loc("features" if "features" in data.model_fields_set else "source"))
    classes = _classes(data, ir, targets, source, loc)
    k = 1
    if targets and source in REGRESSION:
        tshape = ir.type(targets[0]).shape
        k = tshape[-1] if len(tshape) >= 2 and isinstance(tshape[-1], int) else 1
    syn = generate(source, seeds.stream(seed, seeds.DATA), n=data.samples, features=n_features,
                   classes=classes, noise=data.noise, targets=k)
    arrays = {xname: _fit(xname, syn.x, xtype, loc("source"), row=_sample)}
    clean: Arrays = {}
    if targets:
        tname = targets[0]

        def formed(y: np.ndarray) -> Any:
            return _fit(tname, _target_form(y, syn.regression, classes, data, ir.type(tname),
                                            tname, loc), ir.type(tname), loc("source"), row=_sample)

        if data.label_noise and syn.regression:
            raise DataError(f"label_noise needs class labels; source '{source}' is a "
                            "regression task", loc("label_noise"))
        arrays[tname] = formed(syn.y)
        if data.label_noise:
            clean[tname] = arrays[tname]
            arrays[tname] = formed(corrupt_labels(
                syn.y, data.label_noise, classes, seeds.stream(seed, seeds.LABEL_NOISE)))
    elif data.label_noise:
        raise DataError("label_noise needs a target input", loc("label_noise"))
    _check_targets(ir, arrays, targets, loc("source"), _sample)
    _check_token_ids(ir, arrays, loc("source"), _sample)
    _check_lengths(ir, arrays, loc("source"), _sample)
    return arrays, syn.note, syn.strata, clean


def _one_feature(source: str, features: list[str], targets: list[str], loc: Any) -> str:
    """The one feature input a generated or bundled source fills."""
    kind = "bundled" if source in DATASETS else "synthetic"
    if len(features) != 1 or len(targets) > 1:
        raise DataError(
            f"{kind} source '{source}' fills one feature input and one target input; the "
            f"spec has features {features} and targets {targets}", loc("source"),
            hint="load data from a .npz or .csv file with 'path' and 'columns'")
    return features[0]


def _sequences(
    spec: Spec, ir: IR, features: list[str], targets: list[str], seed: int, loc: Any
) -> tuple[Arrays, str | None]:
    """A sequence task's rows in the declared forms: integer inputs get token ids ``[n, T]``,
    float inputs bits ``[n, T, 1]`` or one-hot rows ``[n, T, V]``; integer targets get ids,
    float targets 0/1 (two classes) or one-hot rows, one per step when the target's second
    axis is the feature input's time axis, else the label of the last step."""
    data = spec.train.data  # type: ignore[union-attr]
    source = data.source
    assert source is not None
    xname = _one_feature(source, features, targets, loc)
    xtype = ir.type(xname)
    if xtype.rank < 2:
        raise DataError(f"source '{source}' gives sequences [n, T, ...], but input '{xname}' is "
                        f"declared {xtype}", loc("source"))
    declared = xtype.shape[1]
    length = data.length or (declared if isinstance(declared, int) else None)
    if length is None:
        raise DataError(f"source '{source}' needs the sequence length: input '{xname}' has "
                        f"the symbolic time axis '{declared}'", loc("source"),
                        hint="give train.data.length")
    if isinstance(declared, int) and declared != length:
        raise DataError(f"length {length} does not fit input '{xname}' declared {xtype}",
                        loc("length"))
    rng = seeds.stream(seed, seeds.DATA)
    tname = targets[0] if targets else None
    vocab = 2  # symbols (parity: the bits)
    if source == "adding":
        seq = sequence_sources.adding(rng, data.samples, length)
    elif source == "parity":
        seq = sequence_sources.parity(rng, data.samples, length)
    elif source == "copy":
        k = data.copy_length
        vocab = _copy_vocabulary(data, ir, xtype, tname, loc)
        if length < 2 * k + 1:
            raise DataError(f"copy needs length >= 2 * copy_length + 1 = {2 * k + 1}, got "
                            f"{length}", loc("length" if data.length else "copy_length"))
        seq = sequence_sources.copy(rng, data.samples, length, k, vocab)
    else:
        file, display = _resolve(spec, data.path or "")
        text = sequence_sources.read_text(file, display, loc("path"))
        seq = sequence_sources.text_windows(text, display, length, loc("length"))
        vocab = len(seq.vocabulary or "")
        _check_text_vocabulary(display, seq.vocabulary or "", ir, xname, tname, loc)
        if "samples" in data.model_fields_set:
            seq.x, seq.y = seq.x[: data.samples], seq.y[: data.samples]
    x = seq.x
    if x.ndim == 2 and xtype.dtype == "float":  # symbols: bits [n, T, 1] or one-hot rows
        x = x[..., None].astype(np.float64) if source == "parity" else np.eye(vocab)[x]
    elif xtype.dtype == "int" and source == "adding":
        raise DataError(f"source 'adding' gives float features, but input '{xname}' is "
                        "declared int", loc("source"))
    arrays = {xname: _fit(xname, x, xtype, loc("source"), row=_sample)}
    if tname is not None:
        t = ir.type(tname)
        if seq.regression:
            y = _target_form(seq.y, True, 0, data, t, tname, loc)
        else:
            per_step = _per_step(t, xtype, length, vocab)
            if source == "copy" and not per_step:
                raise DataError(f"copy labels every step: declare target '{tname}' "
                                f"[batch, {declared}] (int) or [batch, {declared}, {vocab}]",
                                loc("source"))
            labels = seq.y if per_step else seq.y[:, -1]
            y = _label_form(labels, t, vocab)
        arrays[tname] = _fit(tname, y, t, loc("source"), row=_sample)
    _check_targets(ir, arrays, targets, loc("source"), _sample)
    _check_token_ids(ir, arrays, loc("source"), _sample)
    return arrays, seq.vocabulary


def _bundled(
    data: DataSpec, ir: IR, features: list[str], targets: list[str], seed: int, loc: Any
) -> tuple[Arrays, np.ndarray]:
    """A scikit-learn data set fitted to the declared inputs (digits as images or rows, as
    the input is declared), with its labels as strata for the splits."""
    source = data.source
    assert source is not None
    xname = _one_feature(source, features, targets, loc)
    classes = DATASETS[source].classes
    if "classes" in data.model_fields_set and data.classes != classes:
        raise DataError(f"source '{source}' has {classes} classes", loc("classes"))
    x, labels = datasets.load(source, loc("source"))
    if "samples" in data.model_fields_set:
        if data.samples > len(x):
            raise DataError(f"source '{source}' has {len(x)} samples, not {data.samples}",
                            loc("samples"))
        keep = np.sort(seeds.stream(seed, seeds.DATA).permutation(len(x))[: data.samples])
        x, labels = x[keep], labels[keep]
    arrays = {xname: _fit(xname, x, ir.type(xname), loc("source"), row=_sample)}
    if targets:
        tname = targets[0]
        t = ir.type(tname)
        arrays[tname] = _fit(tname, _target_form(labels, False, classes, data, t, tname, loc),
                             t, loc("source"), row=_sample)
    _check_targets(ir, arrays, targets, loc("source"), _sample)
    return arrays, labels


def _per_step(t: TensorType, x: TensorType, length: int, classes: int) -> bool:
    """Whether target ``t`` takes a label per step: its second axis is the time axis."""
    if t.rank < 2:
        return False
    if t.dtype == "int" or t.rank >= 3:
        return True
    second = t.shape[1]
    return (second == x.shape[1] or second == length) and not (second == classes > 2)


def _label_form(labels: np.ndarray, t: TensorType, classes: int) -> np.ndarray:
    """Integer labels as target ``t`` is declared: ids, 0/1 floats, or one-hot rows."""
    if t.dtype == "int":
        return labels
    if classes == 2 and t.shape[-1] != 2:
        y = labels.astype(np.float64)
        return y[..., None] if t.rank == labels.ndim + 1 else y
    return np.eye(classes)[labels]


def _copy_vocabulary(
    data: DataSpec, ir: IR, x: TensorType, target: str | None, loc: Any
) -> int:
    """Symbols of the copy task (blank and delimiter included): ``classes`` when given, else
    the prediction's classes, else a float input's one-hot width."""
    vocab = None
    if "classes" in data.model_fields_set:
        vocab = data.classes
    elif target is not None:
        vocab = _classes_of(ir, target)
    if vocab is None and x.dtype == "float" and isinstance(x.shape[-1], int) and x.rank == 3:
        vocab = int(x.shape[-1])
    if vocab is None or vocab < 3:
        raise DataError("copy needs at least 3 symbols (blank, one to copy, delimiter)"
                        + (f"; it has {vocab}" if vocab else ""), loc("classes"),
                        hint="give train.data.classes, the symbols with blank and delimiter")
    return vocab


def _check_text_vocabulary(
    display: str, vocabulary: str, ir: IR, xname: str, target: str | None, loc: Any
) -> None:
    """A model sized for another vocabulary than the text's is refused, naming both."""
    v = len(vocabulary)
    x = ir.type(xname)
    width = x.shape[-1] if x.dtype == "float" and x.rank == 3 else None
    classes = _classes_of(ir, target) if target is not None else None
    for what, n in ((f"input '{xname}'", width), ("the prediction", classes)):
        if isinstance(n, int) and n != v:
            raise DataError(f"{display} has {v} distinct characters, but {what} has {n}",
                            loc("path"), hint=f"declare the vocabulary size {v}")


def _sample(i: int) -> str:
    return f"generated sample {i}"


def _indexed(file: str) -> RowName:
    """Rows of in-memory arrays named as data_files names an .npz's rows."""
    return lambda i: f"{file}: row index {i}" if file else f"row index {i}"


def _classes(data: DataSpec, ir: IR, targets: list[str], source: str, loc: Any) -> int:
    if source in FIXED_CLASSES:
        if "classes" in data.model_fields_set and data.classes != FIXED_CLASSES[source]:
            raise DataError(f"source '{source}' has {FIXED_CLASSES[source]} classes",
                            loc("classes"))
        return FIXED_CLASSES[source]
    if "classes" in data.model_fields_set or not targets:
        return data.classes
    return _classes_of(ir, targets[0]) or data.classes


def _classes_of(ir: IR, target: str) -> int | None:
    """Classes implied by the prediction a loss or metric compares a target with: its class
    axis (the last, or a classification loss's ``axis``; a single logit means two classes)."""
    for _, consumer in ir.graph.out_edges(target):
        node = ir.node(consumer)
        if not isinstance(node, OpNode) or node.role not in ("loss", "metric") or not node.inputs:
            continue
        pred = ir.type(node.inputs[0])
        shape = pred.shape
        if not shape:
            continue
        classes = shape[node.attrs.class_axis(pred)] if isinstance(
            node.attrs, ClassLoss) else shape[-1]
        if isinstance(classes, int):
            return 2 if classes == 1 else int(classes)
    return None


def _ignored_label(ir: IR, target: str) -> int | None:
    """The ``ignore_index`` of a classification loss reading ``target``, if one sets it."""
    for _, consumer in ir.graph.out_edges(target):
        attrs = getattr(ir.node(consumer), "attrs", None)
        if isinstance(attrs, ClassLoss) and attrs.ignore_index is not None:
            return attrs.ignore_index
    return None


def _target_form(
    y: np.ndarray, regression: bool, classes: int, data: DataSpec, t: TensorType, name: str,
    loc: Any,
) -> np.ndarray:
    if regression:
        if t.dtype == "int":
            raise DataError(f"source '{data.source}' is a regression task but target '{name}' "
                            f"is declared int", loc("source"))
        return y
    last = t.shape[-1] if t.shape else None
    if t.dtype == "int":
        if data.one_hot:
            raise DataError(f"one_hot targets need a float input, but '{name}' is declared int",
                            loc("one_hot"))
        return y
    if data.one_hot or (t.rank >= 2 and isinstance(last, int) and last == classes > 2):
        return np.eye(classes)[y]
    if classes == 2:
        return y.astype(np.float64)
    raise DataError(
        f"{classes}-class labels do not fit target '{name}' declared {t}", loc("source"),
        hint=f"declare it {{shape: [batch], dtype: int}} or as [batch, {classes}] one-hot")


# ---- files -------------------------------------------------------------------------------


def _resolve(spec: Spec, path: str) -> tuple[Path, str]:
    p = Path(path)
    if not p.is_absolute() and spec.path:
        p = Path(spec.path).parent / p
    return p, str(p)


def _from_file(
    spec: Spec, ir: IR, path: str, key: tuple[str, ...], features: list[str],
    targets: list[str], loc: Any,
) -> Arrays:
    data = spec.train.data  # type: ignore[union-attr]
    file, display = _resolve(spec, path)
    with data_files.read(file, display, loc(*key)) as table:
        arrays = _select_inputs(table, data.columns or {}, ir, key, features, targets, loc)
    _check_targets(ir, arrays, targets, loc(*key), table.row)
    _check_token_ids(ir, arrays, loc(*key), table.row)
    _check_lengths(ir, arrays, loc(*key), table.row)
    return arrays


def _select_inputs(
    table: data_files.Table, given: dict[str, Any], ir: IR, key: tuple[str, ...],
    features: list[str], targets: list[str], loc: Any,
) -> Arrays:
    """The used inputs' arrays from ``table``: the columns ``given`` names, else the
    defaults (arrays or CSV columns named like the inputs; the CSV convention)."""
    display = table.name
    unknown = [k for k in given if k not in ir.inputs]
    if unknown:
        raise DataError(f"columns given for '{unknown[0]}', which is not an input",
                        loc("columns", unknown[0]), hint="inputs: " + ", ".join(ir.inputs))
    used = [name for name in ir.inputs if name in features or name in targets]
    columns: dict[str, Any] = {}
    for name in used:
        if name in given:
            columns[name] = given[name]
        elif not table.is_csv or (table.header and name in table.header):
            columns[name] = name
        elif len(features) == 1 and len(targets) <= 1 and table.width >= 1 + len(targets):
            # The CSV convention: the last column is the target, the others the features.
            cut = table.width - len(targets)
            columns[name] = list(range(cut)) if name in features else cut
        else:
            raise DataError(f"no columns for input '{name}' in {display}", loc("columns"),
                            hint="map each input to columns: columns: {x: [a, b], y: label}")
    arrays: Arrays = {}
    for name in used:
        where = loc("columns", name) if name in given else loc(*key)
        raw = data_files.select(table, columns[name], where)
        array = columns[name] if isinstance(columns[name], str) and not table.is_csv else ""
        arrays[name] = _fit(name, raw, ir.type(name), where, display, row=table.row,
                            array=array)
    if not arrays:
        raise DataError(f"no input of the spec reads data from {display}", loc(*key),
                        hint="nothing depends on the inputs: connect them to the graph")
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{display}: inputs have different numbers of rows {lengths}", loc(*key))
    if next(iter(lengths.values())) == 0:
        raise DataError(f"{display} has no rows", loc(*key))
    return arrays


# ---- fitting and checking ----------------------------------------------------------------


def _static_numel(t: TensorType) -> int | None:
    rest = t.shape[1:]
    if not all(isinstance(d, int) for d in rest):
        return None
    return math.prod(int(d) for d in rest)


def _fit(
    name: str, a: np.ndarray, t: TensorType, loc: Location | None, file: str = "",
    row: RowName | None = None, array: str = "",
) -> Any:
    """``a`` shaped and typed as input ``name`` is declared (batch first), or a DataError;
    ``row`` names a row for messages (default: its index), ``array`` the .npz array read."""
    src = f"{file}: " if file else ""
    row = row or _indexed(file)
    shape = t.shape
    a = np.asarray(a)
    if a.ndim == 0 or len(shape) == 0:
        raise DataError(f"{src}input '{name}' is declared {t}; data must have a batch axis", loc)
    n = a.shape[0]
    static = _static_numel(t)
    fits = a.ndim == len(shape) and all(
        not isinstance(d, int) or d == s for d, s in zip(shape[1:], a.shape[1:]))
    if not fits and a.ndim != len(shape) and static is not None and (
            math.prod(a.shape[1:]) == static):
        a = a.reshape((n,) + tuple(shape[1:]))  # e.g. [n] -> [n, 1], [n, 8] -> [n, 8, 1]
        fits = True
    if not fits:
        got = "[" + ", ".join(["n"] + [str(d) for d in a.shape[1:]]) + "]"
        detail = [f"array '{array}'"] if array else []
        if a.ndim == len(shape) >= 3:  # images and sequences: say which axis differs
            axis = next(i for i, (d, s) in enumerate(zip(shape, a.shape))
                        if i and isinstance(d, int) and d != s)
            detail.append(f"axis {axis} is {a.shape[axis]}, not {shape[axis]}")
        more = f" ({', '.join(detail)})" if detail else ""
        raise DataError(f"{src}data for input '{name}' has shape {got}, but it is declared "
                        f"{t}{more}", loc)
    if t.dtype == "int":
        if a.dtype.kind == "f":
            bad = a != np.round(a)
            if bad.any():
                i = int(np.argwhere(bad)[0][0])
                raise DataError(f"{row(i)}: input '{name}' is declared int, but the row holds "
                                f"{a.reshape(n, -1)[i][:4].tolist()}", loc)
        return a.astype(np.int64)
    return a.astype(np.float64)


def _check_targets(
    ir: IR, arrays: Arrays, targets: list[str], loc: Location | None,
    row: RowName | None = None,
) -> None:
    row = row or _indexed("")
    for name in targets:
        y = arrays[name]
        if ir.type(name).dtype == "int":
            classes = _classes_of(ir, name)
            if classes is None:
                continue
            bad = (y < 0) | (y >= classes)
            ignored = _ignored_label(ir, name)
            if ignored is not None:
                bad &= y != ignored  # positions the loss skips
            if bad.any():
                i = int(np.argwhere(bad)[0][0])
                label = int(y.reshape(len(y), -1)[i][bad.reshape(len(y), -1)[i]][0])
                raise DataError(
                    f"{row(i)}: label {label} of '{name}' is out "
                    f"of range: the prediction has {classes} classes (labels 0..{classes - 1})",
                    loc)
            continue
        losses = {n.op for _, c in ir.graph.out_edges(name) if isinstance(n := ir.node(c), OpNode)}
        if losses & PROBABILITY_TARGETS and ((y < 0) | (y > 1)).any():
            i = int(np.argwhere((y < 0) | (y > 1))[0][0])
            raise DataError(
                f"{row(i)}: target '{name}' must lie in [0, 1] for "
                f"{sorted(losses & PROBABILITY_TARGETS)[0]}, but the row holds "
                f"{y.reshape(len(y), -1)[i][:4].tolist()}", loc)


def _check_token_ids(
    ir: IR, arrays: Arrays, loc: Location | None, row: RowName | None = None
) -> None:
    """Token ids an embedding looks up lie in its vocabulary (else the first row that
    holds one outside)."""
    bad = unknown_token(ir, arrays)
    if bad is not None:
        raise DataError(f"{(row or _indexed(''))(bad.row)}: {bad.message()}", loc)


def _check_lengths(
    ir: IR, arrays: Arrays, loc: Location | None, row: RowName | None = None
) -> None:
    """Every ``lengths`` input of a recurrent op holds, per row, a length in ``1..time``
    (time: the sequence input's declared length, else its data's)."""
    row = row or _indexed("")
    for nid in ir.op_nodes():
        node = ir.node(nid)
        if not isinstance(node, OpNode) or not isinstance(node.attrs, Recurrent):
            continue
        k = node.attrs.lengths_position()
        if k is None or node.inputs[k] not in arrays:
            continue
        name, x = node.inputs[k], node.inputs[0]
        declared = ir.type(x).shape[1]
        time = declared if isinstance(declared, int) else (
            int(arrays[x].shape[1]) if x in arrays else None)
        lengths = arrays[name].reshape(len(arrays[name]))
        bad = (lengths < 1) | (lengths > time) if time is not None else lengths < 1
        if bad.any():
            i = int(np.argwhere(bad)[0][0])
            reads = (f"sequences of {time} steps (lengths 1..{time})" if time is not None
                     else "lengths of at least 1")
            raise DataError(
                f"{row(i)}: length {int(lengths[i])} of '{name}' is out of range: '{nid}' "
                f"({node.op}) reads {reads}",
                loc)


def _split(
    arrays: Arrays, data: DataSpec, seed: int, loc: Any, strata: np.ndarray | None = None
) -> dict[str, Arrays]:
    """Train and validation rows.  Shuffled first unless ``shuffle: false`` (then the last
    rows validate, as for time series); synthetic classification data is split per class
    (per corner for xor/and/or) so that both splits keep the generated proportions."""
    n = len(next(iter(arrays.values())))
    n_val = int(round(n * data.val_split))
    if data.val_split > 0:
        n_val = max(n_val, 1)
    if n - n_val < 1:
        rows = f"{n} sample leaves" if n == 1 else f"{n} samples leave"
        raise DataError(f"{rows} none for training with val_split {data.val_split}",
                        loc("val_split"))
    if n_val == 0:  # batches are reshuffled every epoch anyway
        return {"train": dict(arrays)}
    tr, va = _hold_out(n, n_val, data.shuffle, seeds.stream(seed, seeds.SPLIT), strata)
    return {"train": {k: v[tr] for k, v in arrays.items()},
            "val": {k: v[va] for k, v in arrays.items()}}


def _hold_out(
    n: int, n_held: int, shuffle: bool, rng: np.random.Generator, strata: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(kept rows, ``n_held`` held-out rows): the last rows without shuffling, else drawn
    from ``rng``, per stratum in proportion when there are strata."""
    if not shuffle:
        return np.arange(n - n_held), np.arange(n - n_held, n)
    if strata is None:
        order = rng.permutation(n)
        return order[: n - n_held], order[n - n_held:]
    perm = rng.permutation(n)
    order = perm[np.argsort(strata[perm], kind="stable")]  # random within each stratum
    counts = np.bincount(strata)[np.unique(strata)]
    # n_held shared out in proportion to the strata (largest remainders round up)
    quota = counts * n_held / n
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take), kind="stable")[: n_held - int(take.sum())]:
        take[i] += 1
    held = np.zeros(n, dtype=bool)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for start, k in zip(starts, take):
        held[order[start:start + k]] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


# Public names for readers of data beyond training (graphspec.train.apply_data).
fit_input = _fit
check_targets = _check_targets
check_token_ids = _check_token_ids
check_lengths = _check_lengths
