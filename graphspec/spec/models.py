"""The spec's pydantic models: the shape of a graphspec YAML file.

Graph nodes are validated in two steps: here, the fields every node shares (``id``, ``op``
or ``block``, ``in``, ``init``, ``params``); in expansion, the op's own attributes against
the op's attribute model from the registry (which knows which keys an op accepts).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    field_validator,
    model_validator,
)

from graphspec.train.expect import parse

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
Dim = Annotated[int, Field(ge=1, le=1_000_000_000)] | Annotated[
    str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
]


class Strict(BaseModel):
    # No training option can use an infinity or a NaN (a learning rate, a decay, a
    # probability): refused where written, not as a NaN loss in the first step.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class InputSpec(Strict):
    """A declared input: its shape (ints and symbolic names such as ``batch``) and dtype."""

    shape: list[Dim]
    dtype: Literal["float", "int"] = "float"
    differentiable: bool = True
    doc: str = ""


class NodeSpec(BaseModel):
    """One graph node: ``op`` (or ``block``), ``in``, and the op's attributes as extra keys."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: Identifier | None = None
    op: str | None = None
    block: str | None = None
    in_: str | list[str] | None = Field(default=None, alias="in")
    init: dict[str, Any] | str | None = Field(
        default=None,
        description="initializers by parameter ({weight: he_normal}); a single-parameter op "
        "may name one directly (init: uniform, or {name: uniform, a: 0.5})",
    )
    params: dict[str, str] | None = Field(
        default=None, description="share parameters: {weight: other_node.weight}"
    )
    repeat: PositiveInt | str | None = None
    weight: float | str = Field(default=1.0, description="coefficient of a loss term")
    doc: str = ""

    @model_validator(mode="after")
    def _op_or_block(self) -> NodeSpec:
        if (self.op is None) == (self.block is None):
            raise ValueError("a node needs exactly one of 'op' or 'block'")
        if self.repeat is not None and self.block is None:
            raise ValueError("'repeat' applies to blocks only")
        return self

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class BlockSpec(Strict):
    """A reusable subgraph. ``params`` declares its parameters with defaults (None: required)."""

    params: dict[Identifier, Any] = Field(default_factory=dict)
    graph: list[NodeSpec] = Field(min_length=1)
    doc: str = ""


# ---- training -----------------------------------------------------------------------


class DataSpec(Strict):
    """Where training data comes from: a synthetic ``source`` or a ``path`` (.npz/.csv)."""

    source: (
        Literal[
            "xor", "and", "or", "blobs", "circles", "moons", "spirals", "linear", "sine",
            "random_labels", "feature_select",
            # sequence tasks (graphspec.train.sequence_sources); text reads ``path``
            "adding", "copy", "parity", "text",
            # scikit-learn's bundled data sets (graphspec.train.datasets; graphspec[datasets])
            "digits", "iris", "wine", "breast_cancer",
        ]
        | None
    ) = None
    path: str | None = None
    # Sequence sources: steps per sequence (text: the window); default the declared
    # feature input's time axis (its second dimension).
    length: PositiveInt | None = None
    # copy: how many symbols are shown first and reproduced at the end
    copy_length: PositiveInt = 10
    columns: dict[str, str | list[str] | list[int] | int] | None = None
    samples: PositiveInt = 512
    noise: NonNegativeFloat = 0.0
    features: PositiveInt = 2
    classes: PositiveInt = 2
    one_hot: bool = False
    val_split: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    val_path: str | None = None
    # Held-out test data: never used for early stopping or selection, evaluated once on
    # the final (restored) parameters (graphspec.train.data).
    test_split: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    test_path: str | None = None
    # Zhang et al. (2017): this fraction of the training and validation labels is replaced
    # by a uniformly random class; test labels stay clean (synthetic classification).
    label_noise: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    shuffle: bool = True
    seed: int | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if self.source == "text":
            if self.path is None:
                raise ValueError("source 'text' needs 'path': the text file to read")
        elif (self.source is None) == (self.path is None):
            raise ValueError("data needs exactly one of 'source' (synthetic) or 'path' (a file)")
        if self.test_path is not None and self.test_split > 0:
            raise ValueError("give 'test_split' or 'test_path', not both")
        if self.test_split + (0.0 if self.val_path else self.val_split) >= 1.0:
            raise ValueError("test_split and val_split leave no rows for training")
        return self


class ParamGroupSpec(Strict):
    """Options for the parameters matching ``params`` (glob patterns, or 'biases'/'weights')."""

    params: list[str] = Field(min_length=1)
    lr: PositiveFloat | None = None
    weight_decay: NonNegativeFloat | None = None


class _Opt(Strict):
    lr: PositiveFloat
    weight_decay: NonNegativeFloat = 0.0
    groups: list[ParamGroupSpec] = Field(default_factory=list)

    def buffers(self) -> int:
        """State tensors kept per trainable parameter, each of the parameter's size (as
        torch.optim keeps them; the memory estimate counts them)."""
        raise NotImplementedError(f"{type(self).__name__} must say how many buffers it keeps")


class SGDSpec(_Opt):
    name: Literal["sgd"]
    lr: PositiveFloat = 0.01
    momentum: NonNegativeFloat = 0.0
    dampening: NonNegativeFloat = 0.0
    nesterov: bool = False

    def buffers(self) -> int:
        return 1 if self.momentum else 0  # the momentum buffer

    @model_validator(mode="after")
    def _nesterov(self) -> SGDSpec:
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov momentum requires momentum > 0 and dampening = 0")
        return self


class AdamSpec(_Opt):
    name: Literal["adam"]
    lr: PositiveFloat = 1e-3
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (
        0.9,
        0.999,
    )
    eps: PositiveFloat = 1e-8
    amsgrad: bool = False

    def buffers(self) -> int:
        return 3 if self.amsgrad else 2  # first and second moments (and their running max)


class AdamWSpec(AdamSpec):
    name: Literal["adamw"]  # type: ignore[assignment]
    weight_decay: NonNegativeFloat = 1e-2


class RMSpropSpec(_Opt):
    name: Literal["rmsprop"]
    lr: PositiveFloat = 1e-2
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.99
    eps: PositiveFloat = 1e-8
    momentum: NonNegativeFloat = 0.0
    centered: bool = False

    def buffers(self) -> int:
        return 1 + bool(self.momentum) + self.centered  # square average, momentum, mean


class AdagradSpec(_Opt):
    name: Literal["adagrad"]
    lr: PositiveFloat = 1e-2
    lr_decay: NonNegativeFloat = 0.0
    initial_accumulator_value: NonNegativeFloat = 0.0
    eps: PositiveFloat = 1e-10

    def buffers(self) -> int:
        return 1  # the sum of squares


# The optimizers a spec can name: this union is their one list.  Each backend keys its
# implementations by these models (tests/backends/test_optim.py checks both cover all).
OptimizerSpec = Annotated[
    SGDSpec | AdamSpec | AdamWSpec | RMSpropSpec | AdagradSpec, Field(discriminator="name")
]


def _optimizer_name(model: type[_Opt]) -> str:
    (name,) = get_args(model.model_fields["name"].annotation)  # name: Literal["sgd"]
    return str(name)


OPTIMIZER_MODELS: dict[str, type[_Opt]] = {
    _optimizer_name(m): m for m in get_args(get_args(OptimizerSpec)[0])
}
OPTIMIZERS: tuple[str, ...] = tuple(OPTIMIZER_MODELS)  # their names, in the union's order


class ScheduleSpec(Strict):
    """Learning-rate factor over epochs (or steps with ``unit: step``), after linear warm-up."""

    name: Literal["constant", "step", "exponential", "cosine"] = "constant"
    unit: Literal["epoch", "step"] = "epoch"
    step_size: PositiveInt = 10
    gamma: PositiveFloat = 0.1
    t_max: PositiveInt | None = None
    eta_min: NonNegativeFloat = 0.0
    warmup: NonNegativeInt = 0


class EarlyStoppingSpec(Strict):
    monitor: str = "val_loss"
    patience: PositiveInt = 10
    min_delta: NonNegativeFloat = 0.0
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best: bool = True


class AdversarialSpec(Strict):
    """Adversarial training (Goodfellow et al., 2015): each batch's FGSM examples
    ``x + epsilon * sign(dL/dx)`` of ``input``; the objective is ``(1 - mix) L(x) + mix
    L(x_adv)``."""

    epsilon: PositiveFloat
    input: Identifier
    mix: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5


class TrainSpec(Strict):
    data: DataSpec
    optimizer: OptimizerSpec = Field(default_factory=lambda: SGDSpec(name="sgd"))
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    epochs: PositiveInt = 10
    batch_size: PositiveInt | Literal["full"] = 32
    clip_grad_norm: PositiveFloat | None = None
    early_stopping: EarlyStoppingSpec | None = None
    metrics: list[str | NodeSpec] = Field(default_factory=list)
    log_grad_norms: bool = False
    adversarial: AdversarialSpec | None = None
    # Update each parameter inside the backward pass as soon as its gradient is final,
    # where that is exact (docs/training.md); false: after the whole backward pass.
    fused_update: bool = True


class AnalysisSpec(BaseModel):
    """A procedure run on the trained (``at: end``) or initial (``at: init``) parameters.

    Like a graph node, only the shared fields are checked here; the procedure's own keys
    are checked against its model in :mod:`graphspec.analysis` (which knows them), with
    the same located errors.
    """

    model_config = ConfigDict(extra="allow")

    procedure: str
    at: Literal["init", "end"] = "end"
    name: Identifier | None = Field(
        default=None, description="the stem of the files it writes (default: per procedure)")
    doc: str = ""

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _parse_claim(claim: str) -> str:
    """A claim of ``expect:`` must parse (graphspec.train.expect); what it names is checked on a
    finished run.  A ClaimError is a ValueError: pydantic locates it at the claim."""

    parse(claim)
    return claim


Claim = Annotated[str, AfterValidator(_parse_claim)]

VariantName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$", max_length=64)]


def folder_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a folder's name under the run root, or None.

    A spec's name and a variant's name become folders (``runs/<name>/<n>/<variant>``): a name
    must stay one plain folder below the root, so no path separators, no control
    characters, and no leading '.' (which also rules out '.' and '..', the root itself and
    its parent).  The patterns above already refuse most of this; the function is also what
    :mod:`graphspec.train.rundir` checks where the path is built."""
    if not name:
        return "may not be empty"
    if name.startswith("."):
        return "may not start with '.' (it names a folder under the run directory)"
    if any(c in name for c in "/\\") or not name.isprintable():
        return "may not contain path separators or control characters"
    return None


class Spec(Strict):
    """A whole graphspec file."""

    graphspec: Literal[1, 2] = Field(description="format version of the spec language")
    name: Identifier | Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$", max_length=128)]
    doc: str = ""
    seed: int = 0
    inputs: dict[Identifier, list[Dim] | InputSpec] = Field(min_length=1)
    include: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="block libraries whose blocks this spec uses, relative to it "
        "(graphspec.spec.includes; format version 2)",
    )
    blocks: dict[Identifier, BlockSpec] = Field(default_factory=dict)
    graph: list[NodeSpec] = Field(min_length=1)
    outputs: list[str] = Field(default_factory=list)
    loss: list[NodeSpec] = Field(default_factory=list)
    train: TrainSpec | None = None
    analysis: list[AnalysisSpec] = Field(default_factory=list)
    expect: list[Claim] = Field(
        default_factory=list,
        description="the expected outcome: claims about the finished run, such as "
        "'val_binary_accuracy >= 0.97' (graphspec.train.expect)",
    )
    variants: dict[VariantName, dict[str, Any] | None] = Field(
        default_factory=dict,
        description="named patches of this spec, deep-merged into it (graphspec.spec.variants)",
    )
    vars: dict[Identifier, Any] = Field(
        default_factory=dict,
        description="variables used as $name in attribute values (graphspec: 2; "
        "graphspec.spec.vars); after loading, their values",
    )
    scales: dict[Identifier, dict[Identifier, Any]] = Field(
        default_factory=dict,
        description="named sets of var values, chosen with --scale (graphspec: 2; "
        "graphspec.spec.scales)",
    )

    @field_validator("name")
    @classmethod
    def _name_is_a_folder(cls, name: str) -> str:
        problem = folder_name_problem(name)
        if problem:
            raise ValueError(problem)
        return name

    # Where the spec came from, for error locations and relative data paths.
    _source: Any = PrivateAttr(default=None)
    _path: Any = PrivateAttr(default=None)
    _variant: str | None = PrivateAttr(default=None)
    # Command-line overrides (--set) applied before validation, and the YAML data they
    # produced (None without overrides: the file's text is the spec).
    _overrides: tuple[str, ...] = PrivateAttr(default=())
    # The files ``include:`` read (graphspec.spec.includes), as messages name them.
    _includes: tuple[str, ...] = PrivateAttr(default=())
    _resolved: Any = PrivateAttr(default=None)
    _scale: str | None = PrivateAttr(default=None)
    # Warnings found while loading (a var nothing uses), reported with the IR's.
    _warnings: list[Any] = PrivateAttr(default_factory=list)

    @property
    def source(self) -> Any:
        """The :class:`~graphspec.spec.source.SourceMap` of the file, when loaded from one."""
        return self._source

    @property
    def path(self) -> Any:
        return self._path

    @property
    def variant(self) -> str | None:
        """The name of the variant this spec is (graphspec.spec.variants), else None."""
        return self._variant

    @property
    def overrides(self) -> tuple[str, ...]:
        """The ``--set PATH=VALUE`` overrides applied to the file (graphspec.spec.overrides)."""
        return self._overrides

    @property
    def includes(self) -> tuple[str, ...]:
        """The files whose blocks ``include:`` brought in (graphspec.spec.includes)."""
        return self._includes

    @property
    def scale(self) -> str | None:
        """The scale chosen with ``--scale`` (graphspec.spec.scales), else None."""
        return self._scale

    @property
    def warnings(self) -> list[Any]:
        """``(message, location)`` warnings found while loading the spec."""
        return self._warnings

    @property
    def resolved(self) -> Any:
        """The YAML data after includes, overrides and the scale (before vars are
        substituted), standing alone (no ``include:``), or
        None when the file's text is the spec as is."""
        return self._resolved

    def input_specs(self) -> dict[str, InputSpec]:
        return {
            k: v if isinstance(v, InputSpec) else InputSpec(shape=list(v))
            for k, v in self.inputs.items()
        }
