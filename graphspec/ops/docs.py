"""Op documentation drawn from the registry: ``graphspec ops`` and ``docs/ops.md``.

Everything here is derived from the op definitions (docstring, attribute model, inputs,
parameters), so the reference cannot drift from the code; ``tests/docs/test_docs.py`` fails when
the committed ``docs/ops.md`` differs from :func:`ops_markdown`.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from typing import Any

import numpy as np
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from graphspec.ops import REGISTRY, OpDef, TensorType
from graphspec.ops.registry import ParamDecl

CATEGORY_TITLES = {"op": "Graph ops", "loss": "Losses and penalties", "metric": "Metrics"}
CATEGORY_ORDER = ("op", "loss", "metric")


# ---- facts about one op -------------------------------------------------------------------


def doc_paragraphs(opdef: OpDef) -> list[str]:
    """The op's docstring as paragraphs, each joined onto one line."""
    text = inspect.cleandoc(opdef.attrs.__doc__ or "")
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def summary(opdef: OpDef) -> str:
    paras = doc_paragraphs(opdef)
    return paras[0] if paras else ""


def type_name(annotation: Any) -> str:
    """A short, stable rendering of an attribute's type (``int > 0``, ``'a' | 'b'``...)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        base = type_name(args[0])
        for meta in args[1:]:
            for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
                bound = getattr(meta, attr, None)
                if bound is not None:
                    base += f" {sym} {bound}"
            for m in getattr(meta, "metadata", []) or []:
                for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
                    bound = getattr(m, attr, None)
                    if bound is not None:
                        base += f" {sym} {bound}"
        return base
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin in (list, tuple, dict):
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{origin.__name__}[{inner}]"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type):
        return annotation.__name__
    return re.sub(r"typing\.", "", str(annotation))


def field_type(info: FieldInfo) -> str:
    text = type_name(info.annotation)
    for m in info.metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(m, attr, None)
            if bound is not None:
                text += f" {sym} {bound}"
        min_len = getattr(m, "min_length", None)
        if min_len:
            text += f", at least {min_len} long"
    return text


def field_default(info: FieldInfo) -> str | None:
    """The default as YAML would spell it, or None when the attribute is required."""
    if info.default_factory is not None:
        return _yaml_value(info.default_factory())  # type: ignore[call-arg]
    if info.default is PydanticUndefined:
        return None
    return _yaml_value(info.default)


def _yaml_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_yaml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_yaml_value(x)}" for k, x in v.items()) + "}"
    return str(v)


def parameters(opdef: OpDef) -> tuple[dict[str, ParamDecl], dict[str, ParamDecl]]:
    """Parameters and state an op creates, for the shapes of its first sample.

    Parameter shapes depend on input shapes; names and default initializers do not, so the
    first sample stands in for "some input".  An op without usable samples shows none.
    """
    try:
        sample = next(iter(opdef.attrs.samples(np.random.default_rng(0))))
        attrs = opdef.attrs.model_validate(sample.attrs)
        types_: list[TensorType] = []
        for inp in opdef.inputs:
            value = sample.inputs.get(inp.name)
            if value is None:
                continue
            for arr in value if inp.variadic else [value]:
                types_.append(TensorType(tuple(np.shape(arr))))
        return attrs.params(*types_), attrs.state(*types_)
    except Exception:  # a sample the op cannot take: document without parameters
        return {}, {}


def _init_name(init: Any) -> str:
    if isinstance(init, str):
        return init
    if isinstance(init, dict):
        opts = ", ".join(f"{k}: {_yaml_value(v)}" for k, v in init.items() if k != "name")
        return f"{init.get('name')}({opts})" if opts else str(init.get("name"))
    return str(init)


def flags(opdef: OpDef) -> list[str]:
    out = []
    if opdef.uses_training:
        out.append("behaves differently in training and evaluation")
    if opdef.stochastic:
        out.append("stochastic (consumes noise)")
    if opdef.has_state:
        out.append("keeps state buffers")
    return out


def _inputs_text(opdef: OpDef) -> list[str]:
    out = []
    for inp in opdef.inputs:
        name = inp.name + ("..." if inp.variadic else "")
        notes = ["differentiable" if inp.differentiable else "not differentiable"]
        if inp.dtype != "float":  # the default, left unsaid
            notes.insert(0, "any dtype" if inp.dtype == "any" else "int")
        if inp.optional:
            notes.append("optional")
        if inp.variadic:
            notes.append("one or more")
        out.append(f"{name} ({', '.join(notes)})")
    return out


# ---- plain text (graphspec ops) -------------------------------------------------------------


def ops_table() -> str:
    """One line per op, grouped by category: name and summary."""
    lines: list[str] = []
    width = max((len(n) for n in REGISTRY), default=4)
    for cat in CATEGORY_ORDER:
        names = sorted(n for n, d in REGISTRY.items() if d.category == cat)
        if not names:
            continue
        lines.append(f"{CATEGORY_TITLES[cat]}:")
        lines += [f"  {n.ljust(width)}  {summary(REGISTRY[n])}" for n in names]
        lines.append("")
    lines.append("'graphspec ops NAME' documents one op.")
    return "\n".join(lines) + "\n"


def op_text(opdef: OpDef) -> str:
    out = [f"{opdef.name}  ({opdef.category}, {opdef.family})", ""]
    for para in doc_paragraphs(opdef):
        out += ["  " + para, ""]
    out += ["inputs:"]
    out += [f"  {line}" for line in _inputs_text(opdef)] or ["  none"]
    out.append("attributes:")
    fields = opdef.attrs.model_fields
    if not fields:
        out.append("  none")
    for name, info in fields.items():
        default = field_default(info)
        out.append(
            f"  {name}: {field_type(info)}"
            + (" (required)" if default is None else f" = {default}")
        )
    params, state = parameters(opdef)
    if params:
        out.append("parameters (default initializer):")
        out += [f"  {n}: {_init_name(d.init)}" for n, d in params.items()]
    if state:
        out.append("state buffers:")
        out += [f"  {n}: {_init_name(d.init)}" for n, d in state.items()]
    for f in flags(opdef):
        out.append(f"note: {f}")
    return "\n".join(out) + "\n"


# ---- Markdown (docs/ops.md) -------------------------------------------------------------------

_HEADER = """# Op reference

Generated from the op registry (`graphspec/ops/`) by `python tools/gen_ops_doc.py`
(the same text as `graphspec ops --markdown`); do not edit by hand.
`tests/docs/test_docs.py` fails when this file is stale.

Every node of a spec names one of these in `op:`; its attributes are keys of the node
beside `id`, `in`, `init` and `params` (see [spec.md](spec.md)).
"""


def ops_markdown() -> str:
    out = [_HEADER]
    for cat in CATEGORY_ORDER:
        names = sorted(n for n, d in REGISTRY.items() if d.category == cat)
        if not names:
            continue
        out.append(f"## {CATEGORY_TITLES[cat]}\n")
        out.append(" ".join(f"[`{n}`](#{n})" for n in names) + "\n")
        for n in names:
            out.append(op_markdown(REGISTRY[n]))
    return "\n".join(out).rstrip() + "\n"


def op_markdown(opdef: OpDef) -> str:
    out = [f"### {opdef.name}\n"]
    for para in doc_paragraphs(opdef):
        out += [para, ""]
    out.append(f"*Family:* `{opdef.family}`" + "".join(f" · {f}" for f in flags(opdef)))
    out.append("")
    ins = _inputs_text(opdef)
    out.append(
        "**Inputs:** "
        + (", ".join(f"`{i.split(' ')[0]}` {i.split(' ', 1)[1]}" for i in ins) if ins else "none")
    )
    out.append("")
    fields = opdef.attrs.model_fields
    if fields:
        out += ["| attribute | type | default |", "| --- | --- | --- |"]
        for name, info in fields.items():
            default = field_default(info)
            out.append(
                f"| `{name}` | {_cell(field_type(info))} | "
                f"{'*required*' if default is None else '`' + _cell(default) + '`'} |"
            )
        out.append("")
    else:
        out += ["No attributes.", ""]
    params, state = parameters(opdef)
    if params:
        out.append(
            "**Parameters** (default initializer): "
            + ", ".join(f"`{n}` ({_init_name(d.init)})" for n, d in params.items())
        )
        out.append("")
    if state:
        out.append(
            "**State buffers:** "
            + ", ".join(f"`{n}` ({_init_name(d.init)})" for n, d in state.items())
        )
        out.append("")
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
