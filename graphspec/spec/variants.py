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
into ``runs/<name>/<n>/<variant>/``; an empty patch (``{}``) is the spec as written.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any

from graphspec.errors import Location, SpecError, UsageError, did_you_mean
from graphspec.spec.load import load, validate
from graphspec.spec.models import Spec, folder_name_problem
from graphspec.spec.source import PathKey, SourceMap, parse_yaml
from graphspec.spec.vars import substitute as substitute_vars

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
        # A variant's run records the file it came from, overrides included.
        out[name]._overrides, out[name]._resolved = spec.overrides, spec.resolved
        out[name]._scale = spec.scale
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
    if spec.resolved is not None and smap is not None:  # overridden on the command line
        return copy.deepcopy(spec.resolved), smap
    if smap is not None and smap.text:
        data, smap = parse_yaml(smap.text, smap.file)
        return data, smap
    data = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return data, SourceMap(file="<spec>")


def _variant(data: dict[str, Any], smap: SourceMap, name: str, base: Any) -> Spec:
    where = smap.keys.get((KEY, name)) or smap.locate((KEY, name))
    problem = folder_name_problem(name)
    if problem:
        raise SpecError(f"variant name '{name}' {problem}", where,
                        hint="variant names are folder names under the run directory")
    root = _track({k: v for k, v in data.items() if k != KEY}, ())
    patch = _track(data[KEY][name], (KEY, name))
    if isinstance(patch.value, dict):
        for key in FROZEN:
            if key in patch.value:
                raise SpecError(f"a variant cannot change '{key}'",
                                smap.locate(patch.origin + (key,), key=True),
                                notes=[(f"in variant '{name}'", where)])
        try:
            merged = _Merger(root, smap).merge(root, patch, ())
        except SpecError as e:
            e.notes.append((f"in variant '{name}'", where))
            raise
        assert merged is not None
        root = merged
    new = SourceMap(file=smap.file, text=smap.text)
    out = _untrack(root, (), smap, new)
    if where is not None:  # the variant's data has no 'variants:'; keep where it was defined
        new.keys[(KEY, name)] = where
    try:
        if out.get("graphspec") == 2:  # the patch may use vars, or change them
            substitute_vars(out, new)  # its warnings: the spec's own, once
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


class _Merger:
    """Merges one patch into the spec's document (``root``, for hints about blocks)."""

    def __init__(self, root: _V, smap: SourceMap) -> None:
        self.root = root
        self.smap = smap

    def merge(self, base: _V | None, patch: _V, path: PathKey) -> _V | None:
        """``patch`` merged into ``base`` at document path ``path``; None removes it."""
        if patch.value is None:
            return None
        if not isinstance(patch.value, dict) or base is None:
            return patch
        if isinstance(base.value, list) and _is_node_list(path):
            return self.patch_nodes(base, patch, path)
        if not isinstance(base.value, dict):
            return patch
        out = dict(base.value)
        for k, pv in patch.value.items():
            if pv.value is None and k not in out:
                raise SpecError(
                    f"nothing to remove: '{k}' is not set here",
                    self.smap.locate(pv.origin, key=True),
                    hint=did_you_mean(str(k), [str(x) for x in out]),
                )
            merged = self.merge(out.get(k), pv, path + (k,))
            if merged is None:
                del out[k]
            else:
                out[k] = merged
        return _V(out, base.origin)

    def patch_nodes(self, base: _V, patch: _V, path: PathKey) -> _V:
        """Patch the nodes of a node list by id; a key that names no node is an error."""
        items: list[_V | None] = list(base.value)
        index = _node_index(base, by_op=path == ("loss",))
        where = ".".join(str(p) for p in path)
        for key, pv in patch.value.items():
            loc = self.smap.locate(pv.origin, key=True)
            if index.get(key) == -1:
                raise SpecError(f"several terms of {where} are '{key}'", loc,
                                hint="give the one to patch an 'id' and patch it by that id")
            if key not in index:
                raise SpecError(f"no node '{key}' in {where} to patch", loc,
                                hint=self.hint(key, index, path))
            if pv.value is not None and not isinstance(pv.value, dict):
                raise SpecError(
                    f"a patch of node '{key}' must be a mapping of its keys, or null to remove "
                    "it", self.smap.locate(pv.origin))
            i = index[key]
            current = items[i]
            assert current is not None  # keys of a mapping are distinct, ids too
            items[i] = self.merge(current, pv, path + (i,))
        return _V([v for v in items if v is not None], base.origin)

    def hint(self, key: str, index: dict[str, int], path: PathKey) -> str:
        close = did_you_mean(str(key), [k for k, i in index.items() if i >= 0])
        if close:
            return close
        blocks = self.root.value.get("blocks")
        if path == ("graph",) and blocks is not None and isinstance(blocks.value, dict):
            # Naming a block's node in the top-level graph is the likely slip.
            for bname, block in blocks.value.items():
                graph = block.value.get("graph") if isinstance(block.value, dict) else None
                if graph is not None and isinstance(graph.value, list) and key in _node_index(
                        graph, by_op=False):
                    return (f"'{key}' is a node of block '{bname}': patch it under "
                            f"blocks: {{{bname}: {{graph: {{{key}: ...}}}}}}")
        ids = [k for k, i in index.items() if i >= 0]
        return ("nodes with ids: " + ", ".join(ids)) if ids else (
            f"no node of {'.'.join(map(str, path))} has an id; add one, or replace the list")


def _node_index(nodes: _V, by_op: bool) -> dict[str, int]:
    """Node id -> position; with ``by_op`` an unnamed node also answers to its op name
    (as a loss term is named in the IR), -1 marking an op name several terms share."""
    index: dict[str, int] = {}
    for i, node in enumerate(nodes.value):
        nid = node.value.get("id") if isinstance(node.value, dict) else None
        if nid is not None and isinstance(nid.value, str):
            index[nid.value] = i
    if by_op:
        for i, node in enumerate(nodes.value):
            op = node.value.get("op") if isinstance(node.value, dict) else None
            if op is None or "id" in node.value or not isinstance(op.value, str):
                continue
            if op.value in index and index[op.value] != i:
                if not _has_id(nodes, op.value):
                    index[op.value] = -1
                continue
            index[op.value] = i
    return index


def _has_id(nodes: _V, nid: str) -> bool:
    return any(isinstance(n.value, dict) and "id" in n.value and n.value["id"].value == nid
               for n in nodes.value)
