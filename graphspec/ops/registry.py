"""The op registry: every op is defined once, here, for every backend.

An op is a pydantic model of its attributes decorated with :func:`op`.  The model carries
the op's whole contract:

* ``infer(*types) -> TensorType``      the shape and dtype rule (raise :class:`ShapeError`);
* ``params(*types) -> {name: ParamDecl}``  parameters the op creates, with default initializers;
* ``state(*types) -> {name: ParamDecl}``   non-trainable buffers (batch-norm running statistics);
* ``noise() -> Noise | None``           the randomness a stochastic op consumes;
* ``samples(rng) -> Iterable[Sample]``   small inputs away from kinks, for conformance tests;
* ``flops(*types, out=...) -> int``      a cost estimate for ``inspect``.

Backends register kernels against the op's name (see ``graphspec_numpy.kernels``).  A kernel
is called as ``kernel(*inputs, *params, *state, **kernel_attrs, [training=], [noise=])``;
``training`` goes only to ops declared ``uses_training``, ``noise`` (an array shaped like the
input ``Noise.like``) only to ``stochastic`` ones.  Ops declared ``has_state`` return
``(y, new_state_tuple)``.  A numpy VJP is called as ``vjp(g, y, *same args, **same keywords)``
and returns one gradient (or None) per positional argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, get_args

import numpy as np
from pydantic import AfterValidator, AllowInfNan, BaseModel, ConfigDict

Dim = int | str  # a str is a symbolic dimension, e.g. "batch"
DType = Literal["float", "int", "bool"]


@dataclass(frozen=True)
class TensorType:
    """A value's static type: shape (ints and symbolic dims) and element kind."""

    shape: tuple[Dim, ...]
    dtype: DType = "float"

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        return f"[{dims}]" + ("" if self.dtype == "float" else f" {self.dtype}")

    def numel(self, batch: int = 1) -> int:
        """Element count with every symbolic dimension taken as ``batch``."""
        return math.prod(d if isinstance(d, int) else batch for d in self.shape)


class ShapeError(Exception):
    """Raised by shape rules; the IR pass adds locations and the input shapes."""


@dataclass(frozen=True)
class Input:
    """One declared input of an op.

    ``dtype`` is the element kind it takes: ``"float"`` (the default: every op that computes
    with its input's values), ``"int"`` (indices: gather's), or ``"any"`` (ops that only move
    values, and targets, which may be class indices). The IR refuses, at validation and
    located at the reference, a tensor of another kind (an ``int`` input into ``linear``)."""

    name: str
    differentiable: bool = True
    variadic: bool = False  # takes one or more values (concat, add of many)
    optional: bool = False
    dtype: Literal["float", "int", "any"] = "float"

    def accepts(self, t: TensorType) -> bool:
        return self.dtype in ("any", t.dtype)


@dataclass(frozen=True)
class ParamDecl:
    """A parameter (or state buffer) an op creates.

    ``fan_in``/``fan_out`` feed the scaled initializers; ``penalize`` marks weights that
    weight penalties and weight decay apply to by default (not biases or norm scales);
    ``zero_rows``: rows set to zero after any initializer (an embedding's padding row, as
    torch's ``nn.Embedding``).
    """

    shape: tuple[int, ...]
    init: str | dict[str, Any] = "zeros"
    fan_in: int | None = None
    fan_out: int | None = None
    penalize: bool = False
    zero_rows: tuple[int, ...] = ()


@dataclass(frozen=True)
class Noise:
    """Randomness an op consumes: ``uniform`` on [0, 1) or standard ``normal``, shaped like
    its input number ``like``.  The core draws it in verification (both backends see the
    same numbers); in training each backend draws it from its own generator."""

    kind: Literal["uniform", "normal"]
    like: int = 0


@dataclass
class Sample:
    """One conformance case: attribute values, input arrays by name, options."""

    inputs: dict[str, Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    training: bool = True
    note: str = ""


def _not_nan(value: float) -> float:
    if math.isnan(value):
        raise ValueError("must be a number or +-.inf, not NaN")
    return value


Bound = Annotated[float, AllowInfNan(True), AfterValidator(_not_nan)]
"""A float attribute where an infinity means something: a bound (``clip``'s ``min: -.inf``
is no lower bound).  Every other float attribute of every op is finite: :class:`Attrs`
refuses inf and NaN, which no weight, scale, slope, exponent or eps can use."""


def allows_infinity(attrs: type[Attrs], name: str) -> bool:
    """Whether attribute ``name`` of ``attrs`` is declared :data:`Bound` (may be +-inf)."""

    def walk(tp: Any) -> bool:
        if any(isinstance(m, AllowInfNan) and m.allow_inf_nan for m in getattr(
                tp, "__metadata__", ())):
            return True
        return any(walk(a) for a in get_args(tp))

    info = attrs.model_fields[name]
    return walk(info.annotation) or any(
        isinstance(m, AllowInfNan) and m.allow_inf_nan for m in info.metadata
    )


class Attrs(BaseModel):
    """Base of every op's attribute model.  Float attributes are finite unless declared
    :data:`Bound` (``allow_inf_nan=False``: ``.inf`` and ``.nan`` are refused at validation,
    located at the value, instead of failing inside generated code)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Attributes used only to build the graph (shapes, parameters), not passed to kernels.
    graph_only: ClassVar[frozenset[str]] = frozenset()

    def infer(self, *types: TensorType) -> TensorType:  # pragma: no cover - always overridden
        raise NotImplementedError

    def params(self, *types: TensorType) -> dict[str, ParamDecl]:
        return {}

    def state(self, *types: TensorType) -> dict[str, ParamDecl]:
        return {}

    def noise(self) -> Noise | None:
        return None

    def input_names(self) -> list[str] | None:
        """The declared inputs a node takes, by name, when its attributes choose among
        optional ones (the recurrent ops: initial states and lengths, each switched on by an
        attribute); None: arguments fill the declared inputs in order."""
        return None

    def flops(self, *types: TensorType, out: TensorType) -> int:
        return out.numel()

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Iterable[Sample]:  # pragma: no cover
        return ()

    def kernel_attrs(self) -> dict[str, Any]:
        """Keyword arguments for backend kernels."""
        return {k: getattr(self, k) for k in type(self).model_fields if k not in self.graph_only}


class OptionAttrs(Attrs):
    """Attributes that are options added to an op after it existed: those at their defaults
    are left out of the kernels' keywords, so the code generated for a spec that sets none
    is what it was before the options existed."""

    def kernel_attrs(self) -> dict[str, Any]:
        defaults = type(self).model_fields
        return {k: v for k, v in super().kernel_attrs().items() if v != defaults[k].default}


Category = Literal["op", "loss", "metric"]


@dataclass(frozen=True)
class OpDef:
    name: str
    attrs: type[Attrs]
    inputs: tuple[Input, ...]
    category: Category
    uses_training: bool  # behaves differently in training and evaluation
    stochastic: bool  # consumes noise (declared by ``Attrs.noise``)
    has_state: bool  # keeps buffers updated in training (``Attrs.state``)
    differentiable_params: bool = True
    family: str = ""

    @property
    def doc(self) -> str:
        return (self.attrs.__doc__ or "").strip()

    @property
    def summary(self) -> str:
        return self.doc.splitlines()[0] if self.doc else ""

    def arg_inputs(self, n_inputs: int, attrs: Attrs | None = None) -> list[Input]:
        """The declared input of each of ``n_inputs`` arguments (a variadic one repeats, and
        ``attrs`` may name which optional inputs are present: :meth:`Attrs.input_names`)."""
        names = attrs.input_names() if attrs is not None else None
        if names is not None:
            declared = {inp.name: inp for inp in self.inputs}
            return [declared[name] for name in names][:n_inputs]
        out: list[Input] = []
        for inp in self.inputs:
            out += [inp] * (n_inputs - len(self.inputs) + 1) if inp.variadic else [inp]
        return out[:n_inputs]

    def differentiable(
        self, n_args: int, n_inputs: int, attrs: Attrs | None = None
    ) -> list[bool]:
        """Which of ``n_args`` positional arguments (inputs, then params) take gradients."""
        flags = [inp.differentiable for inp in self.arg_inputs(n_inputs, attrs)]
        return flags + [self.differentiable_params] * (n_args - n_inputs)

    def grad_flags(
        self, n_args: int, n_inputs: int, n_state: int, attrs: Attrs | None = None
    ) -> list[bool]:
        """Which of ``n_args`` arguments (inputs, params, then ``n_state`` state buffers) a
        gradient flows through: as declared, and never through a state buffer."""
        return self.differentiable(n_args - n_state, n_inputs, attrs) + [False] * n_state


REGISTRY: dict[str, OpDef] = {}


def op(
    name: str,
    inputs: Iterable[str | Input] = ("x",),
    *,
    category: Category = "op",
    uses_training: bool = False,
    stochastic: bool = False,
    has_state: bool = False,
) -> Callable[[type[Attrs]], type[Attrs]]:
    """Register an attribute model as the definition of op ``name``."""

    def register(cls: type[Attrs]) -> type[Attrs]:
        if name in REGISTRY:
            raise ValueError(f"op '{name}' is defined twice")
        ins = tuple(i if isinstance(i, Input) else Input(i) for i in inputs)
        family = cls.__module__.rsplit(".", 1)[-1]
        REGISTRY[name] = OpDef(
            name, cls, ins, category, uses_training, stochastic, has_state, family=family
        )
        cls.op_name = name  # type: ignore[attr-defined]
        return cls

    return register


def get_op(name: str) -> OpDef:
    return REGISTRY[name]


# ---- helpers for shape rules -------------------------------------------------------------


def broadcast(*types: TensorType) -> tuple[Dim, ...]:
    """NumPy broadcasting of static shapes; symbolic dims match themselves or 1."""
    rank = max(t.rank for t in types)
    out: list[Dim] = []
    for i in range(rank):
        dims = {t.shape[i - rank + t.rank] for t in types if i - rank + t.rank >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise ShapeError(
                "shapes do not broadcast: " + " vs ".join(str(t) for t in types)
            )
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def norm_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"axis {axis} is out of range for a rank-{rank} tensor")
    return axis % rank


def require_rank(t: TensorType, *ranks: int, what: str = "input") -> None:
    if t.rank not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ShapeError(f"{what} must have rank {want}, got shape {t}")


def iter_samples(cls: type[Attrs], seed: int = 0) -> Iterator[Sample]:
    yield from cls.samples(np.random.default_rng(seed))


class Elementwise(Attrs):
    """Base for ops whose output has the input's shape (activations, unary math)."""

    def infer(self, x: TensorType, *rest: TensorType) -> TensorType:
        return x

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Iterable[Sample]:
        # Away from 0, where several activations have kinks.
        x = rng.normal(size=(3, 4))
        x = np.where(np.abs(x) < 0.1, x + 0.3, x)
        yield Sample({"x": x})
