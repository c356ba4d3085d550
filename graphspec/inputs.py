"""The arrays given to a compiled program, checked against the spec's inputs.

Every backend's ``Program.forward``, ``evaluate`` and ``loss_and_grads`` call an
:class:`InputCheck` first, so a caller's mistake -- an unbatched array, a wrong width, a
missing target, a misspelt name, strings or floats for an ``int`` input, a token id outside
an embedding's vocabulary -- is one
:class:`~graphspec.errors.InputError` naming the input with its declared and actual shape,
instead of a numpy broadcasting error, a wrong-shaped result or a ``KeyError`` from the
generated code.  Trainers do not call it per step: their data was fitted to the inputs
once, when it was loaded (``graphspec.train.data``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from graphspec.errors import InputError, did_you_mean
from graphspec.ir.checks import token_vocabularies, unknown_token
from graphspec.ir.graph import IR
from graphspec.ir.traverse import ancestors

# What each entry point computes, hence which inputs it reads.
PURPOSES = {
    "forward": "the outputs",
    "evaluate": "the outputs, losses and metrics",
    "loss_and_grads": "the loss",
}
# Array kinds (numpy dtype.kind) each declared input dtype accepts: bool and integer arrays
# are numbers for a float input; a float array for an int input would be truncated silently.
ACCEPTS = {"float": "biuf", "int": "biu", "bool": "biu"}
CONVERT = {
    "float": "give numbers (float, int or bool arrays)",
    "int": "convert whole numbers with np.asarray({name}, dtype=np.int64)",
    "bool": "convert it with np.asarray({name}, dtype=bool)",
}
KINDS = {
    "f": "floats",
    "c": "complex numbers",
    "U": "strings",
    "S": "bytes",
    "O": "Python objects",
    "M": "dates",
    "m": "time spans",
    "V": "records",
}


class InputCheck:
    """``check(inputs, purpose)`` raises an InputError unless ``inputs`` fit ``ir``'s inputs
    for ``purpose`` (``forward``, ``evaluate`` or ``loss_and_grads``).  An input that
    ``purpose`` does not read may be left out (``y`` for ``forward``); every input given is
    checked."""

    def __init__(self, ir: IR) -> None:
        self.ir = ir
        outputs = [f"output:{name}" for name in ir.outputs]
        losses = [lid for lid, _ in ir.losses]
        sinks = {
            "forward": outputs,
            "evaluate": outputs + losses + list(ir.metrics),
            "loss_and_grads": losses,
        }
        self.vocabularies = token_vocabularies(ir)
        self.required: dict[str, list[str]] = {}
        for purpose, nodes in sinks.items():
            live = ancestors(ir.graph, nodes)
            self.required[purpose] = [name for name in ir.inputs if name in live]

    def __call__(self, inputs: Mapping[str, Any] | None, purpose: str) -> None:
        ir = self.ir
        if inputs is None:
            inputs = {}
        if not isinstance(inputs, Mapping):
            raise InputError(
                f"inputs must be a dict of arrays by input name, not {type(inputs).__name__}",
                hint="inputs: " + ", ".join(ir.inputs),
            )
        for name in inputs:
            if name not in ir.inputs:
                same = [i for i in ir.inputs if i.lower() == str(name).lower()]
                raise InputError(
                    f"'{name}' is not an input of '{ir.name}'",
                    hint=(f"did you mean '{same[0]}'?" if same else None)
                    or did_you_mean(str(name), ir.inputs)
                    or "inputs: " + (", ".join(ir.inputs) or "none"),
                )
        for name in self.required[purpose]:
            if name not in inputs:
                raise InputError(
                    f"input '{name}' is missing: {purpose} needs it for {PURPOSES[purpose]} "
                    f"(declared {ir.type(name)})",
                    notes=self._declared(name),
                )
        sizes: dict[str, tuple[int, str]] = {}  # symbolic dim -> (size, the input that set it)
        for name, value in inputs.items():
            self._check_one(name, value, sizes)
        bad = unknown_token(ir, inputs, self.vocabularies) if self.vocabularies else None
        if bad is not None:
            raise InputError(f"row {bad.row}: {bad.message()}", notes=self._declared(bad.input))

    def _declared(self, name: str) -> list[tuple[str, Any]]:
        src = self.ir.node(name).src
        return [(f"input '{name}' is declared here", src)] if src is not None else []

    def _check_one(self, name: str, value: Any, sizes: dict[str, tuple[int, str]]) -> None:
        t = self.ir.type(name)
        shape, dtype = _shape_and_dtype(name, value)
        where = f"input '{name}' is declared {t}"
        notes = self._declared(name)
        if dtype.kind not in ACCEPTS[t.dtype]:
            what = KINDS.get(dtype.kind, f"{dtype} values")
            raise InputError(
                f"{where} but holds {what}",
                notes=notes,
                hint=CONVERT[t.dtype].format(name=name),
            )
        if len(shape) != t.rank:
            hint = None
            if len(shape) == t.rank - 1 and t.shape and isinstance(t.shape[0], str):
                hint = f"add the '{t.shape[0]}' axis for a single example: {name}[None]"
            raise InputError(
                f"{where} (rank {t.rank}) but has shape {shape}", notes=notes, hint=hint
            )
        for axis, (want, got) in enumerate(zip(t.shape, shape)):
            if isinstance(want, int):
                if want != got:
                    raise InputError(
                        f"{where} but has shape {shape}: axis {axis} has size {got}, not {want}",
                        notes=notes,
                    )
                continue
            size, first = sizes.setdefault(want, (got, name))
            if size != got:
                raise InputError(
                    f"{where} but has shape {shape}: its '{want}' axis has size {got}, while "
                    f"input '{first}' has {size}",
                    notes=notes,
                    hint=f"every input's '{want}' axis must have the same size",
                )


def _shape_and_dtype(name: str, value: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an array-like without copying a numpy array."""
    if isinstance(value, np.ndarray):
        return value.shape, value.dtype
    if value is None:
        raise InputError(f"input '{name}' is None")
    try:
        a = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as e:  # ragged lists, device tensors...
        raise InputError(f"input '{name}' is not an array ({type(value).__name__}: {e})") from None
    return a.shape, a.dtype
