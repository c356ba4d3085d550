"""From a file to a validated :class:`Spec`, turning every error into a located SpecError."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from graphspec.errors import SpecError, did_you_mean
from graphspec.gc_pause import gc_paused
from graphspec.spec.models import OPTIMIZERS, Spec
from graphspec.spec.overrides import apply as apply_overrides
from graphspec.spec.scales import select as select_scale
from graphspec.spec.source import SourceMap, parse_yaml, read_text
from graphspec.spec.vars import check_overrides as check_var_overrides
from graphspec.spec.vars import substitute as substitute_vars
from graphspec.spec.version import check_version


def load(path: str | Path, overrides: Iterable[str] = (), scale: str | None = None) -> Spec:
    """Load and validate a spec file. Raises :class:`SpecError` with ``.location`` on bad input.

    ``overrides`` are ``PATH=VALUE`` strings (``--set``, graphspec.spec.overrides) applied
    to the file's data before validation; ``scale`` names one of its ``scales:``
    (graphspec.spec.scales)."""
    name, text = read_text(path)
    return loads(text, name, base=Path(path), overrides=overrides, scale=scale)


def loads(
    text: str, file: str = "<string>", base: Path | None = None, overrides: Iterable[str] = (),
    scale: str | None = None,
) -> Spec:
    """Validate spec text; ``file`` names it in error messages."""
    with gc_paused():  # composing allocates a node per value: linear without the collector
        data, smap = parse_yaml(text, file)
    if not isinstance(data, dict):
        raise SpecError("a spec must be a YAML mapping (key: value pairs)", smap.locate(()))
    version = check_version(data, smap)
    select_scale(data, smap, scale)
    overrides = tuple(overrides)
    check_var_overrides(data, overrides)
    applied = apply_overrides(data, smap, overrides)
    # Before the vars are substituted and pydantic sees it: the data a run records.
    resolved = copy.deepcopy(data) if applied or scale else None
    warnings = substitute_vars(data, smap) if version >= 2 else []
    spec = validate(Spec, data, smap)
    spec._source = smap
    spec._path = base
    spec._overrides = applied
    spec._scale = scale
    spec._resolved = resolved
    spec._warnings = warnings
    return spec


def validate(model: type[BaseModel], data: Any, smap: SourceMap, prefix: tuple = ()) -> Any:
    """Validate ``data`` against ``model``; the first error becomes a located SpecError."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise error_from_pydantic(e, smap, prefix, model, data) from None


_NO_DATA: Any = object()


def error_from_pydantic(
    e: ValidationError, smap: SourceMap, prefix: tuple, model: type[BaseModel],
    data: Any = _NO_DATA,
) -> SpecError:
    """The first of ``e``'s errors as a located SpecError.  With ``data`` (what was
    validated), the parts of pydantic's error path that are union-member tags are told from
    the user's own keys by looking the keys up; without it, by their look."""
    def real(er: Any) -> tuple:
        if data is _NO_DATA:
            return tuple(p for p in er["loc"] if not _is_union_tag(p))
        return _data_path(er["loc"], data, er["type"])

    # Of a union's alternatives, report the one that got furthest (the longest path); at
    # equal depth an unknown key usually explains a missing one ('unist' for 'units').
    err = min(e.errors(), key=lambda er: (-len(real(er)), _KIND_RANK.get(er["type"], 1)))
    path = prefix + real(err)
    where = _dotted(path)
    kind = err["type"]
    if kind in ("extra_forbidden", "missing") and not real(err):
        return SpecError(err["msg"], smap.locate(prefix))
    if kind == "extra_forbidden":
        key = path[-1]
        allowed = [k for k in _allowed_keys(model, tuple(err["loc"][:-1])) if k != key]
        hint = did_you_mean(str(key), allowed)
        if hint is None and allowed:
            hint = "allowed keys: " + ", ".join(sorted(allowed))
        return SpecError(
            f"unknown key '{key}'" + (f" in {_dotted(path[:-1])}" if path[:-1] else ""),
            smap.locate(path, key=True),
            hint=hint,
        )
    if kind == "missing":
        # Point at the key that owns the incomplete mapping ("train:"), not into it.
        return SpecError(f"missing required key '{path[-1]}'" + (
            f" in {_dotted(path[:-1])}" if path[:-1] else ""), smap.locate(path[:-1], key=True))
    if kind in ("literal_error", "union_tag_invalid") and err.get("ctx"):
        ctx = err["ctx"]
        expected = ctx.get("expected") or ctx.get("expected_tags") or ""
        got = err.get("input")
        if kind == "union_tag_invalid":
            got = ctx.get("tag")
            field = str(ctx.get("discriminator", "")).strip("'")
            if field.isidentifier():
                path += (field,)
                where = _dotted(path)
        choices = [c.strip().strip("'") for c in str(expected).replace(" or ", ",").split(",")]
        hint = did_you_mean(str(got), choices)
        return SpecError(f"{where}: {got!r} is not one of {expected}", smap.locate(path), hint=hint)
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind == "string_pattern_mismatch":
        pattern = (err.get("ctx") or {}).get("pattern", "")
        msg = _PATTERN_MEANINGS.get(pattern, msg)
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) or kind == "missing" else f" (got {_shown(got)})"
    return SpecError(f"{where}: {msg}{shown}" if where else msg, smap.locate(path))


def _shown(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut short: the value is quoted in the source line below anyway, and
    a 2 KB string (or a 4,000-digit number) would bury the message."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's digit limit for str()
        return "a number too large to show"
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def _data_path(loc: tuple, data: Any, kind: str) -> tuple:
    """The keys and indices of pydantic's ``loc`` that exist in ``data``: the rest are tags
    of union members.  A user's key may look like a tag ('in-put', 'x[1]'); it still exists
    in the data.  The last part of a 'missing' error is the absent key itself."""
    out: list[Any] = []
    cur = data
    for k, part in enumerate(loc):
        if isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif (isinstance(cur, list) and isinstance(part, int) and not isinstance(part, bool)
              and 0 <= part < len(cur)):
            out.append(part)
            cur = cur[part]
        elif k == len(loc) - 1 and kind == "missing" and not _is_union_tag(part):
            out.append(part)
    return tuple(out)


# What the spec's name patterns mean, for messages people can act on.
_PATTERN_MEANINGS = {
    r"^[A-Za-z_][A-Za-z0-9_]*$":
        "must be an identifier: letters, digits and '_', not starting with a digit",
    r"^[A-Za-z0-9_.\-]+$": "must be letters, digits, '_', '.' and '-' only",
}


def _is_union_tag(p: Any) -> bool:
    # pydantic inserts the union member's name into error paths: 'sgd' (a discriminated
    # union's tag), 'list[...]', 'constrained-int', 'function-after[...]', 'InputSpec'.
    # Spec keys are identifiers, so anything with '[' or '-' is such a tag.
    return isinstance(p, str) and ("[" in p or "-" in p or p in _UNION_TAGS)


_UNION_TAGS = {*OPTIMIZERS, "InputSpec", "NodeSpec", "str", "int"}

# At equal depth, an unknown key usually explains a missing one ('unist' for 'units').
_KIND_RANK = {"extra_forbidden": 0, "missing": 2}


def _dotted(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the sub-model at ``loc`` (pydantic's raw path, union tags included)."""

    current: Any = model
    pending: list[Any] = []  # the members of a union met on the way
    for part in loc:
        if isinstance(part, int):
            continue
        if pending:
            tagged = [m for m in pending if _tag_of(m) == part or m.__name__ == part]
            if tagged:
                current, pending = tagged[0], []
                continue
            current, pending = pending[0], []
        if _is_union_tag(part):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        members = _models_in(fields[part].annotation, get_args)
        if not members:
            return []
        current, pending = members[0], (members if len(members) > 1 else [])
    fields = getattr(current, "model_fields", {})
    return [f.alias or n for n, f in fields.items()]


def _tag_of(m: type[BaseModel]) -> Any:
    # The literal value of a discriminated union member's 'name' field ('adam').

    field = m.model_fields.get("name")
    args = get_args(field.annotation) if field is not None else ()
    return args[0] if len(args) == 1 else None


def _models_in(ann: Any, get_args: Any) -> list[Any]:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    out: list[Any] = []
    for a in get_args(ann):
        out += _models_in(a, get_args)
    return out
