"""Checking ``analysis:`` entries and ``train.adversarial`` against a spec's IR.

Everything here can fail before any training, with errors located at the entry's keys:
an unknown procedure (with "did you mean"), a key the procedure does not take, an input or
output the graph does not have, two entries writing the same file.
"""

from __future__ import annotations

from pydantic import ValidationError

from graphspec.analysis.context import CheckContext
from graphspec.analysis.registry import REGISTRY, Entry
from graphspec.errors import SpecError, did_you_mean
from graphspec.ir.build import build
from graphspec.ir.counts import check_param_budget
from graphspec.ir.graph import IR
from graphspec.spec.load import error_from_pydantic
from graphspec.spec.models import Spec
from graphspec.spec.requirements import require_training
from graphspec.spec.source import SourceMap
from graphspec.spec.variants import note_variant


def plan(spec: Spec, ir: IR) -> list[Entry]:
    """The spec's analysis entries, validated and with defaults resolved; also checks
    ``train.adversarial``.  Raises a located :class:`SpecError`."""
    smap = spec.source or SourceMap(file="<spec>")
    entries: list[Entry] = []
    files: dict[str, int] = {}
    for i, a in enumerate(spec.analysis):
        ctx = CheckContext(spec, ir, i)
        cls = REGISTRY.get(a.procedure)
        if cls is None:
            raise ctx.error(f"unknown procedure '{a.procedure}'", "procedure",
                            hint=did_you_mean(a.procedure, REGISTRY)
                            or "procedures: " + ", ".join(sorted(REGISTRY)))
        try:
            attrs = cls.model_validate(a.attrs)
        except ValidationError as e:
            err = error_from_pydantic(e, smap, ("analysis", i), cls, a.attrs)
            if err.message.startswith("unknown key"):
                key = err.message.split("'")[1]
                err.message = f"unknown key '{key}' for procedure '{a.procedure}'"
                err.hint = did_you_mean(key, cls.model_fields) or (
                    f"'{a.procedure}' takes: " + ", ".join(cls.model_fields))
            raise err from None
        name = a.name or cls.stem
        if name in files:
            raise SpecError(
                f"two analysis entries write '{name}'", ctx.loc("name" if a.name else
                                                                "procedure"),
                notes=[("the first", smap.locate(("analysis", files[name])))],
                hint="give one of them another 'name:' (the stem of its files)")
        files[name] = i
        entries.append(Entry(i, a.procedure, a.at, name, attrs.check(ctx),
                             smap.locate(("analysis", i))))
    check_adversarial(spec, ir)
    return entries


def check_adversarial(spec: Spec, ir: IR) -> None:
    """``train.adversarial.input`` must be a feature input with a gradient."""
    adv = spec.train.adversarial if spec.train is not None else None
    if adv is None:
        return
    smap = spec.source or SourceMap(file="<spec>")
    ctx = CheckContext(spec, ir, 0)
    where = smap.locate(("train", "adversarial", "input"))
    try:
        ctx.differentiable_input(adv.input)
    except SpecError as e:
        e.location = where
        raise
    if spec.loss == []:  # pragma: no cover - require_training reports it first
        raise SpecError("adversarial training needs a loss", where)


def check_variant(spec: Spec, max_params: int | None = None, training: bool = False) -> IR:
    """Everything short of running one spec (or variant): build and type-check it, its
    parameter budget, its analysis entries and, with ``training``, what training needs.
    An error found in a variant says which variant it was."""

    try:
        if training:
            require_training(spec)
        ir = build(spec)
        if max_params is not None:
            check_param_budget(ir, max_params)
        plan(spec, ir)
    except SpecError as e:
        raise note_variant(e, spec) from None
    return ir
