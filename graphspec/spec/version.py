"""The spec language's format versions, and the features that need version 2.

Version 1 specs keep working unchanged; ``graphspec: 2`` unlocks the top-level keys in
:data:`V2_ONLY`.  The check runs on the parsed YAML, before anything else reads those keys,
so a v1 spec that uses one gets an error at the key, not a pydantic complaint."""

from __future__ import annotations

from typing import Any

from graphspec.errors import SpecError
from graphspec.spec.source import SourceMap

VERSIONS = (1, 2)
LATEST = VERSIONS[-1]

# Each top-level key that only a version-2 spec may use, with what it is (for the message).
V2_ONLY: dict[str, str] = {
    "vars": "variables",
    "scales": "named sets of var values",
    "include": "blocks from other files",
}


def check_version(data: dict[str, Any], smap: SourceMap) -> int:
    """The spec's format version; a located error for an unknown one, or for a version-2 key
    in a version-1 spec."""
    version = data.get("graphspec")
    if "graphspec" not in data:
        return 0  # pydantic reports the missing key with the others
    if type(version) is not int or version not in VERSIONS:
        raise SpecError(
            f"unsupported format version {version!r}; this graphspec reads versions "
            + " and ".join(map(str, VERSIONS)),
            smap.locate(("graphspec",)),
            hint=f"start the spec with 'graphspec: {LATEST}'",
        )
    if version < 2:
        for key, what in V2_ONLY.items():
            if key in data:
                raise SpecError(
                    f"'{key}' ({what}) needs format version 2; this spec says 'graphspec: "
                    f"{version}'",
                    smap.locate((key,), key=True),
                    hint="write 'graphspec: 2' at the top, or run 'graphspec upgrade' on the file",
                )
    return version
