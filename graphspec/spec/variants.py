"""Variants: named patches of one spec, to compare configurations side by side.

A top-level ``variants:`` mapping names patches of the spec; each is deep-merged into the
spec's YAML data *before* validation, so a variant is checked exactly like a spec of its
own, and an error in a patched value points at the variant's own ``line:col``::

    variants:
      sigmoid: {}                          # the spec as written
      relu: {graph: {act: {op: relu}}}     # node 'act' becomes a relu
      lr_small: {train: {optimizer: {lr: 0.01}}}

The merge rules (JSON Merge Patch, RFC 7386, plus node lists by id):

* mappings merge key by key, recursively; a key absent from the spec is added;
* ``null`` removes a key (the default then applies), or a node;
* under ``graph:``, ``loss:`` and a block's ``graph:``, a *mapping* patches nodes by id
  (a loss term without an id answers to its op name, as it is named in the IR);
* any other value, lists included, replaces the spec's value wholesale.

With ``variants:`` the spec stands for its variants: ``graphspec train`` trains each one
into ``runs/<name>/<variant>/``; an empty patch (``{}``) is the spec as written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphspec.errors import Location, SpecError, UsageError, did_you_mean
from graphspec.spec.load import load, validate
from graphspec.spec.models import Spec
from graphspec.spec.source import PathKey, SourceMap, parse_yaml

KEY = "variants"
# Top-level keys a patch may not touch: the format version is the file's, and variants
# do not nest (a variant of a variant is just another variant).
FROZEN = ("graphspec", KEY)


def expand_variants(spec_or_path: Spec | str | os.PathLike[str]) -> dict[str, Spec]:
    """Every variant of a spec, validated, by name (in the order written).

    A spec without ``variants:`` gives one entry, itself, under its own name; its
    ``.variant`` is None, while each variant's ``.variant`` is the variant's name."""
    spec = spec_or_path if isinstance(spec_or_path, Spec) else load(os.fspath(spec_or_path))
    if not spec.variants:
        return {spec.name: spec}
    data, smap = _raw(spec)
    out: dict[str, Spec] = {}
    for name in spec.variants:
        out[name] = _variant(data, smap, name, spec.path)
    return out


def select(variants: dict[str, Spec], names: list[str] | None) -> dict[str, Spec]:
    """The variants called ``names`` (all when None), or a UsageError naming the choices."""
    if not names:
        return variants
    known = [n for n, s in variants.items() if s.variant is not None]
    chosen: dict[str, Spec] = {}
    for name in names:
        if name not in variants or variants[name].variant is None:
            raise UsageError(
                f"no variant '{name}'" + ("" if known else ": the spec has no 'variants:'"),
                hint=did_you_mean(name, known) or (
                    "variants: " + ", ".join(known) if known else None),
            )
        chosen[name] = variants[name]
    return chosen


def run_dir(base: str | os.PathLike[str], spec: Spec) -> Path:
    """Where a run of ``spec`` goes under ``base``: a variant gets its own folder."""
    return Path(base) / spec.variant if spec.variant else Path(base)


def variant_location(spec: Spec) -> Location | None:
    """Where the variant ``spec`` is defined (its key under ``variants:``)."""
    if spec.variant is None or spec.source is None:
        return None
    return spec.source.keys.get((KEY, spec.variant))


def note_variant(err: SpecError, spec: Spec) -> SpecError:
    """Add 'in variant NAME' to an error found while checking a variant (once)."""
    if spec.variant is not None:
        text = f"in variant '{spec.variant}'"
        if all(n[0] != text for n in err.notes):
            err.notes.append((text, variant_location(spec)))
    return err


# ---- the merge, with provenance ----------------------------------------------------------


@dataclass
class _V:
    """A value of the document being merged, and the path it was written at (its origin),
    so that the merged document's source map points where each value was written."""

    value: Any  # dict[str, _V] | list[_V] | a scalar
    origin: PathKey


def _track(data: Any, path: PathKey) -> _V:
    if isinstance(data, dict):
        return _V({k: _track(v, path + (k,)) for k, v in data.items()}, path)
    if isinstance(data, list):
        return _V([_track(v, path + (i,)) for i, v in enumerate(data)], path)
    return _V(data, path)


def _untrack(v: _V, path: PathKey, old: SourceMap, new: SourceMap) -> Any:
    if v.origin in old.values:
        new.values[path] = old.values[v.origin]
    if isinstance(v.value, dict):
        out = {}
        for k, child in v.value.items():
            if child.origin in old.keys:
                new.keys[path + (k,)] = old.keys[child.origin]
            out[k] = _untrack(child, path + (k,), old, new)
        return out
    if isinstance(v.value, list):
        return [_untrack(c, path + (i,), old, new) for i, c in enumerate(v.value)]
    return v.value


def _raw(spec: Spec) -> tuple[dict[str, Any], SourceMap]:
    """The spec's YAML data and source map (re-read from its text), or a dump of it."""
    smap = spec.source
    if smap is not None and smap.text:
        data, smap = parse_yaml(smap.text, smap.file)
        return data, smap
    data = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return data, SourceMap(file="<spec>")


def _variant(data: dict[str, Any], smap: SourceMap, name: str, base: Any) -> Spec:
    where = smap.keys.get((KEY, name)) or smap.locate((KEY, name))
    if name.startswith("."):
        raise SpecError(f"variant name '{name}' may not start with '.'", where,
                        hint="variant names are folder names under the run directory")
    root = _track({k: v for k, v in data.items() if k != KEY}, ())
    patch = _track(data[KEY][name], (KEY, name))
    if isinstance(patch.value, dict):
        for key in FROZEN:
            if key in patch.value:
                raise SpecError(f"a variant cannot change '{key}'",
                                smap.locate(patch.origin + (key,), key=True),
                                notes=[(f"in variant '{name}'", where)])
        merged = _merge(root, patch, (), smap)
        assert merged is not None
        root = merged
    new = SourceMap(file=smap.file, text=smap.text)
    out = _untrack(root, (), smap, new)
    try:
        spec: Spec = validate(Spec, out, new)
    except SpecError as e:
        e.notes.append((f"in variant '{name}'", where))
        raise
    spec._source = new
    spec._path = base
    spec._variant = name
    return spec


def _is_node_list(path: PathKey) -> bool:
    return path in (("graph",), ("loss",)) or (
        len(path) == 3 and path[0] == "blocks" and path[2] == "graph")


def _merge(base: _V | None, patch: _V, path: PathKey, smap: SourceMap) -> _V | None:
    """``patch`` merged into ``base`` at document path ``path``; None removes the value."""
    if patch.value is None:
        return None
    if not isinstance(patch.value, dict) or base is None:
        return patch
    if isinstance(base.value, list) and _is_node_list(path):
        return _patch_nodes(base, patch, path, smap)
    if not isinstance(base.value, dict):
        return patch
    out = dict(base.value)
    for k, pv in patch.value.items():
        if pv.value is None and k not in out:
            raise SpecError(
                f"nothing to remove: '{k}' is not set here", smap.locate(pv.origin, key=True),
                hint=did_you_mean(str(k), [str(x) for x in out]),
            )
        merged = _merge(out.get(k), pv, path + (k,), smap)
        if merged is None:
            del out[k]
        else:
            out[k] = merged
    return _V(out, base.origin)


def _patch_nodes(base: _V, patch: _V, path: PathKey, smap: SourceMap) -> _V:
    """Patch the nodes of a node list by id; a mapping key that names no node is an error."""
    items: list[_V | None] = list(base.value)
    index: dict[str, int] = {}
    ambiguous: set[str] = set()
    for i, node in enumerate(base.value):
        if not isinstance(node.value, dict):
            continue
        nid = node.value.get("id")
        if nid is not None and isinstance(nid.value, str):
            index[nid.value] = i
    if path == ("loss",):  # an unnamed loss term is named after its op in the IR
        for i, node in enumerate(base.value):
            op = node.value.get("op") if isinstance(node.value, dict) else None
            if op is None or "id" in node.value or not isinstance(op.value, str):
                continue
            if op.value in index:
                ambiguous.add(op.value)
            index.setdefault(op.value, i)
    where = ".".join(str(p) for p in path)
    for key, pv in patch.value.items():
        loc = smap.locate(pv.origin, key=True)
        if key in ambiguous and key not in {
                n.value["id"].value for n in base.value
                if isinstance(n.value, dict) and "id" in n.value}:
            raise SpecError(f"several terms of {where} are '{key}'", loc,
                            hint="give the one to patch an 'id' and patch it by that id")
        if key not in index:
            raise SpecError(
                f"no node '{key}' in {where} to patch", loc,
                hint=did_you_mean(str(key), index) or (
                    "nodes with ids: " + ", ".join(index) if index else
                    f"no node of {where} has an id; add one, or replace the list"),
            )
        i = index[key]
        if pv.value is not None and not isinstance(pv.value, dict):
            raise SpecError(
                f"a patch of node '{key}' must be a mapping of its keys, or null to remove it",
                smap.locate(pv.origin))
        current = items[i]
        if current is None:
            raise SpecError(f"node '{key}' is patched twice", loc)
        items[i] = _merge(current, pv, path + (i,), smap)
    return _V([v for v in items if v is not None], base.origin)
