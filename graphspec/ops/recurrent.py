"""Recurrent layers over ``[batch, time, features]`` (batch first): lstm, gru, rnn.

Parameters are laid out as torch's (``weight_ih [gates * units, features]``, ``weight_hh
[gates * units, units]``, ``bias_ih``, ``bias_hh``, and a ``_reverse`` set when
bidirectional; gate order lstm ``i, f, g, o``, gru ``r, z, n``), so that both backends and an
exported ONNX model read the same numbers.

The optional inputs are chosen by two attributes, since inputs are positional: with
``initial_state: true`` the initial state(s) follow ``x`` (``h0``; ``h0, c0`` for lstm), and
with ``lengths: true`` an int ``lengths`` input comes last. A spec that gives a ``lengths``
input without saying so is refused at validation (the input would be read as a state).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import PositiveInt

from graphspec.ops.registry import Attrs, Input, ParamDecl, Sample, ShapeError, TensorType, op


class Recurrent(Attrs):
    """Shared rule of lstm, gru and rnn; ``gates`` is the number of gate blocks, ``states``
    the number of state tensors (lstm: h and c)."""

    units: PositiveInt
    returns: Literal["sequences", "last"] = "sequences"
    bidirectional: bool = False
    initial_state: bool = False
    lengths: bool = False
    graph_only: ClassVar[frozenset[str]] = frozenset({"units"})
    gates: ClassVar[int] = 1
    states: ClassVar[int] = 1

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        return _samples(cls, rng)

    @property
    def _name(self) -> str:
        return self.op_name  # type: ignore[attr-defined,no-any-return]

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _split(
        self, types: tuple[TensorType, ...]
    ) -> tuple[TensorType, tuple[TensorType, ...], TensorType | None]:
        """(x, initial states, lengths) among the op's input types, by the attributes."""
        n_states = self.states if self.initial_state else 0
        names = self.input_names()
        if len(types) < len(names):
            raise ShapeError(
                f"{self._name} with these attributes takes inputs ({', '.join(names)}), "
                f"got {len(types)}"
            )
        x, states = types[0], types[1 : 1 + n_states]
        lengths = types[1 + n_states] if self.lengths else None
        return x, states, lengths

    def input_names(self) -> list[str]:
        names = ["x"] + (["h0", "c0"][: self.states] if self.initial_state else [])
        return names + (["lengths"] if self.lengths else [])

    def lengths_position(self) -> int | None:
        """Which input holds the lengths (None without ``lengths: true``): the data check
        reads it."""
        if not self.lengths:
            return None
        return 1 + (self.states if self.initial_state else 0)

    def _features(self, x: TensorType) -> int:
        if x.rank != 3:
            raise ShapeError(
                f"{self._name} needs a 3-D input [batch, time, features], got shape {x}"
            )
        f = x.shape[2]
        if not isinstance(f, int):
            raise ShapeError(f"the input's feature axis must be a fixed size, got shape {x}")
        return f

    def _check_extra(
        self,
        x: TensorType,
        states: tuple[TensorType, ...],
        lengths: TensorType | None,
        n_inputs: int,
    ) -> None:
        batch, width = x.shape[0], self.directions * self.units
        for name, s in zip(("h0", "c0"), states):
            if s.rank != 2 or s.shape[1] != width or not _same(s.shape[0], batch):
                raise ShapeError(
                    f"initial state {name} must be [batch, {width}] (directions {self.directions}"
                    f" * units {self.units}) with x's batch {batch}, got shape {s}"
                )
        if lengths is not None:
            if lengths.rank != 1 or not _same(lengths.shape[0], batch):
                raise ShapeError(f"lengths must be an int vector [batch] ({batch}), got {lengths}")
        used = 1 + len(states) + (lengths is not None)
        if n_inputs > used:
            raise ShapeError(
                f"{self._name} got {n_inputs} inputs but reads {used}: set 'initial_state: true'"
                " for initial states and 'lengths: true' for a lengths input"
            )

    def infer(self, *types: TensorType) -> TensorType:
        n_inputs = len(types) - len(self._param_names())
        x, states, lengths = self._split(types[:n_inputs])
        self._features(x)
        self._check_extra(x, states, lengths, n_inputs)
        width = self.directions * self.units
        if self.returns == "last":
            return TensorType((x.shape[0], width))
        return TensorType((x.shape[0], x.shape[1], width))

    def _param_names(self) -> list[str]:
        names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
        return names + [n + "_reverse" for n in names] if self.bidirectional else names

    def params(self, *types: TensorType) -> dict[str, ParamDecl]:
        x, _, _ = self._split(types)
        f, h, rows = self._features(x), self.units, self.gates * self.units
        out: dict[str, ParamDecl] = {}
        for suffix in ("", "_reverse")[: self.directions]:
            out["weight_ih" + suffix] = ParamDecl(
                (rows, f), "glorot_uniform", fan_in=f, fan_out=rows, penalize=True
            )
            out["weight_hh" + suffix] = ParamDecl(
                (rows, h),
                {"name": "orthogonal", "blocks": self.gates},
                fan_in=h,
                fan_out=rows,
                penalize=True,
            )
            out["bias_ih" + suffix] = ParamDecl((rows,), self._bias_ih_init())
            out["bias_hh" + suffix] = ParamDecl((rows,), "zeros")
        return out

    def _bias_ih_init(self) -> str | dict[str, Any]:
        return "zeros"

    def flops(self, *types: TensorType, out: TensorType) -> int:
        x = types[0]
        f = x.shape[2] if isinstance(x.shape[2], int) else 1
        steps = TensorType(x.shape[:2]).numel()
        # Two matrix products per step (input and recurrent projections), per direction.
        return 2 * steps * self.directions * self.gates * self.units * (f + self.units)


def _same(a: Any, b: Any) -> bool:
    """Two batch dimensions agree: equal, or either symbolic (checked when data arrives)."""
    return a == b or not (isinstance(a, int) and isinstance(b, int))


def _samples(cls: type[Recurrent], rng: np.random.Generator) -> Any:
    """One sample per option (each small: batch 2-3, time 3-5, units 3)."""

    def sample(
        batch: int,
        time: int,
        features: int,
        note: str,
        lengths: list[int] | None = None,
        **attrs: Any,
    ) -> Sample:
        units = attrs.setdefault("units", 3)
        d = 2 if attrs.get("bidirectional") else 1
        rows = cls.gates * units
        inputs: dict[str, Any] = {"x": rng.normal(size=(batch, time, features))}
        if attrs.get("initial_state"):
            for name in ("h0", "c0")[: cls.states]:
                inputs[name] = rng.normal(scale=0.5, size=(batch, d * units))
        if lengths is not None:
            inputs["lengths"] = np.array(lengths)
            attrs["lengths"] = True
        for suffix in ("", "_reverse")[:d]:
            inputs["weight_ih" + suffix] = rng.normal(scale=0.5, size=(rows, features))
            inputs["weight_hh" + suffix] = rng.normal(scale=0.5, size=(rows, units))
            inputs["bias_ih" + suffix] = rng.normal(scale=0.3, size=rows)
            inputs["bias_hh" + suffix] = rng.normal(scale=0.3, size=rows)
        return Sample(inputs, attrs, note=note)

    yield sample(2, 4, 3, "sequences")
    yield sample(2, 3, 2, "bidirectional, last", returns="last", bidirectional=True)
    yield sample(3, 5, 2, "initial state, lengths", [5, 2, 3], initial_state=True)
    yield sample(2, 3, 2, "initial state, bidirectional", initial_state=True, bidirectional=True)
    yield sample(
        3, 4, 2, "lengths, bidirectional, last", [4, 1, 3], returns="last", bidirectional=True
    )


@op(
    "lstm",
    inputs=[
        "x",
        Input("h0", optional=True),
        Input("c0", optional=True),
        Input("lengths", differentiable=False, optional=True, dtype="int"),
    ],
)
class LSTM(Recurrent):
    """Long short-term memory over ``[batch, time, features]``, as torch's ``nn.LSTM`` (one
    layer, ``batch_first``): gates ``i, f, g, o`` in that order, ``c' = f * c + i * g``,
    ``h' = o * tanh(c')``.

    Inputs: ``x`` ``[batch, time, features]``; with ``initial_state: true`` the initial states
    ``h0`` and ``c0`` ``[batch, directions * units]`` (the layout of the ``last`` output;
    zeros otherwise); with ``lengths: true`` an int ``lengths`` ``[batch]`` last (padded
    sequences: the steps past a sequence's length leave its state unchanged, give zeros in
    the ``sequences`` output, as torch's packed sequences padded back, and no gradient; each
    length must lie in ``1..time``, checked against the data in training).

    ``returns: sequences`` gives ``[batch, time, directions * units]``, ``last`` the final
    state ``[batch, directions * units]`` (each sequence's own last step with ``lengths``;
    the reverse direction's final state is at the first step, as torch's ``h_n``).
    ``bidirectional`` runs a second set of parameters (``_reverse``) backwards in time and
    concatenates the two on the feature axis, forward first.

    Parameters (torch's layout): ``weight_ih [4 * units, features]``, ``weight_hh
    [4 * units, units]``, ``bias_ih``, ``bias_hh [4 * units]``. Default init:
    ``glorot_uniform`` input weights (fans ``features`` and ``4 * units``, as Keras),
    ``orthogonal`` recurrent weights per gate block, ``bias_hh`` zeros and ``bias_ih`` zeros
    but the forget gate's block, 1 (``unit_forget_bias``, as Keras; torch starts it at 0).
    """

    gates: ClassVar[int] = 4
    states: ClassVar[int] = 2

    def _bias_ih_init(self) -> str | dict[str, Any]:
        return "unit_forget_bias"


@op(
    "gru",
    inputs=[
        "x",
        Input("h0", optional=True),
        Input("lengths", differentiable=False, optional=True, dtype="int"),
    ],
)
class GRU(Recurrent):
    """Gated recurrent unit over ``[batch, time, features]``, as torch's ``nn.GRU`` (one
    layer, ``batch_first``): gates ``r, z, n`` in that order,
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.

    Inputs (``h0`` the one initial state), ``returns``, ``bidirectional`` and ``lengths`` as
    ``lstm``. Parameters (torch's layout): ``weight_ih [3 * units, features]``, ``weight_hh
    [3 * units, units]``, ``bias_ih``, ``bias_hh [3 * units]``. Default init:
    ``glorot_uniform`` input weights, ``orthogonal`` recurrent weights per gate block, zero
    biases.
    """

    gates: ClassVar[int] = 3


@op(
    "rnn",
    inputs=[
        "x",
        Input("h0", optional=True),
        Input("lengths", differentiable=False, optional=True, dtype="int"),
    ],
)
class RNN(Recurrent):
    """Elman recurrent network over ``[batch, time, features]``, as torch's ``nn.RNN`` (one
    layer, ``batch_first``): ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``, ``act`` the
    ``nonlinearity``: ``tanh`` (default) or ``relu``.

    Inputs (``h0`` the one initial state), ``returns``, ``bidirectional`` and ``lengths`` as
    ``lstm``. Parameters (torch's layout): ``weight_ih [units, features]``, ``weight_hh
    [units, units]``, ``bias_ih``, ``bias_hh [units]``. Default init: ``glorot_uniform``
    input weights, ``orthogonal`` recurrent weights, zero biases.
    """

    nonlinearity: Literal["tanh", "relu"] = "tanh"

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield from _samples(cls, rng)
        # relu has a kink at 0: this seeded sample's pre-activations keep clear of it by far
        # more than the finite differences' step.
        x = rng.normal(size=(2, 4, 3))
        yield Sample(
            {
                "x": x,
                "weight_ih": rng.normal(scale=0.5, size=(3, 3)),
                "weight_hh": rng.normal(scale=0.5, size=(3, 3)),
                "bias_ih": rng.normal(scale=0.3, size=3),
                "bias_hh": rng.normal(scale=0.3, size=3),
            },
            {"units": 3, "nonlinearity": "relu"},
            note="relu",
        )
