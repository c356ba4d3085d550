"""The JSON Schema of one ``analysis:`` entry, for editors: the shared keys and, chosen by
``procedure``, that procedure's own keys (as the op nodes' schema dispatches on ``op``).

``graphspec.spec.schema`` can use it for ``$defs.AnalysisSpec``; until then the spec's
schema accepts any keys in an entry and ``graphspec validate`` checks them.
"""

from __future__ import annotations

from typing import Any

from graphspec.analysis.registry import REGISTRY
from graphspec.spec.models import AnalysisSpec

_SHARED = ("procedure", "at", "name", "doc")


def analysis_entry_schema() -> dict[str, Any]:
    shared = AnalysisSpec.model_json_schema()["properties"]
    branches = []
    for name in sorted(REGISTRY):
        cls = REGISTRY[name]
        own = cls.model_json_schema()
        props = {k: v for k, v in shared.items() if k in _SHARED}
        props["procedure"] = {"const": name}
        props.update(own.get("properties", {}))
        branches.append({
            "if": {"properties": {"procedure": {"const": name}}, "required": ["procedure"]},
            "then": {"type": "object", "title": name, "description": (cls.__doc__ or "").strip(),
                     "properties": props, "required": ["procedure", *own.get("required", [])],
                     "additionalProperties": False},
        })
    return {
        "type": "object",
        "description": "a procedure run on the initial (at: init) or trained (at: end) model",
        "required": ["procedure"],
        "properties": {"procedure": {"enum": sorted(REGISTRY)}},
        "allOf": branches,
    }
