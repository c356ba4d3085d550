"""From a file to a validated :class:`Spec`, turning every error into a located SpecError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from graphspec.errors import SpecError, did_you_mean
from graphspec.spec.models import Spec
from graphspec.spec.source import SourceMap, parse_yaml, read_text


def load(path: str | Path) -> Spec:
    """Load and validate a spec file. Raises :class:`SpecError` with ``.location`` on bad input."""
    name, text = read_text(path)
    return loads(text, name, base=Path(path))


def loads(text: str, file: str = "<string>", base: Path | None = None) -> Spec:
    """Validate spec text; ``file`` names it in error messages."""
    data, smap = parse_yaml(text, file)
    if not isinstance(data, dict):
        raise SpecError("a spec must be a YAML mapping (key: value pairs)", smap.locate(()))
    spec = validate(Spec, data, smap)
    spec._source = smap
    spec._path = base
    return spec


def validate(model: type[BaseModel], data: Any, smap: SourceMap, prefix: tuple = ()) -> Any:
    """Validate ``data`` against ``model``; the first error becomes a located SpecError."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise error_from_pydantic(e, smap, prefix, model) from None


def error_from_pydantic(
    e: ValidationError, smap: SourceMap, prefix: tuple, model: type[BaseModel]
) -> SpecError:
    errors = _most_relevant(e.errors())
    err = errors[0]
    loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
    path = prefix + loc
    where = _dotted(path)
    kind = err["type"]
    if kind == "extra_forbidden":
        key = path[-1]
        allowed = _allowed_keys(model, loc[:-1])
        hint = did_you_mean(str(key), allowed)
        if hint is None and allowed:
            hint = "allowed keys: " + ", ".join(sorted(allowed))
        return SpecError(
            f"unknown key '{key}'" + (f" in {_dotted(path[:-1])}" if path[:-1] else ""),
            smap.locate(path, key=True),
            hint=hint,
        )
    if kind == "missing":
        return SpecError(f"missing required key '{path[-1]}'" + (
            f" in {_dotted(path[:-1])}" if path[:-1] else ""), smap.locate(path[:-1]))
    if kind in ("literal_error", "union_tag_invalid") and err.get("ctx"):
        ctx = err["ctx"]
        expected = ctx.get("expected") or ctx.get("expected_tags") or ""
        got = err.get("input")
        if kind == "union_tag_invalid":
            got = ctx.get("tag")
        choices = [c.strip().strip("'") for c in str(expected).replace(" or ", ",").split(",")]
        hint = did_you_mean(str(got), choices)
        return SpecError(f"{where}: {got!r} is not one of {expected}", smap.locate(path), hint=hint)
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) or kind == "missing" else f" (got {got!r})"
    return SpecError(f"{where}: {msg}{shown}" if where else msg, smap.locate(path))


def _is_union_tag(p: Any) -> bool:
    # pydantic inserts the union member's name (e.g. 'sgd', 'list[...]') into error paths.
    return isinstance(p, str) and ("[" in p or p in _UNION_TAGS)


_UNION_TAGS = {"sgd", "adam", "adamw", "rmsprop", "adagrad", "InputSpec", "NodeSpec", "str", "int"}


def _most_relevant(errors: list[Any]) -> list[Any]:
    # Of a union's alternatives, report the one that got furthest (the longest path).
    return sorted(errors, key=lambda er: -len(er["loc"]))


def _dotted(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the sub-model at ``loc`` (best effort, for did-you-mean)."""
    from typing import get_args, get_origin

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann = fields[part].annotation
        current = _first_model(ann, get_args, get_origin)
        if current is None:
            return []
    fields = getattr(current, "model_fields", {})
    return [f.alias or n for n, f in fields.items()]


def _first_model(ann: Any, get_args: Any, get_origin: Any) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for a in get_args(ann):
        m = _first_model(a, get_args, get_origin)
        if m is not None:
            return m
    return None
