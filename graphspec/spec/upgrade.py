"""``graphspec upgrade``: a version-1 spec rewritten as version 2.

Version 2 only adds keys (``vars:``, ``scales:``, ``include:``); every version-1 key
means the same in it.  So the upgrade rewrites the one token after ``graphspec:`` and
nothing else: comments, key order, quoting, anchors and line endings stay byte for byte
(a YAML round trip through a library would re-flow some of them).  What version 2 reads
differently is a string that is a whole ``$name`` expression outside a block, such as a
data path ``$HOME``: a version-2 spec takes it for a var.  The upgrade therefore loads
the result and compares it with the original; where they differ, or the rewritten text
does not load, it refuses and says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from graphspec.errors import Location, SpecError
from graphspec.spec.load import loads
from graphspec.spec.version import LATEST


def upgrade(text: str, file: str, allow_outside: bool = False) -> str | None:
    """``text`` (a version-1 spec) as version 2, or None when it already is version 2.
    A SpecError says why it cannot be upgraded.  ``allow_outside``: a version-2 spec's
    includes may lead outside its directory (``--allow-outside``)."""
    # A spec that does not load has nothing to upgrade yet (``file`` is its path: a
    # version-2 spec's includes are read from beside it).
    old = loads(text, file, base=Path(file), allow_outside=allow_outside)
    if old.graphspec == LATEST:
        return None
    start, end = _version_span(text, file)
    new_text = text[:start] + str(LATEST) + text[end:]
    try:
        new = loads(new_text, file, base=Path(file))
    except SpecError as e:
        e.message = f"the spec reads differently as version {LATEST}: {e.message}"
        e.hint = (e.hint + "; " if e.hint else "") + "change that value, then upgrade"
        raise
    if _meaning(new) != _meaning(old):
        raise SpecError(
            f"the spec would mean something else as version {LATEST}",
            Location(file),
            hint="a string such as '$name' becomes a var in version 2",
        )
    return new_text


def _meaning(spec: Any) -> Any:
    data = spec.model_dump(mode="json", by_alias=True)
    data.pop("graphspec")
    return data


def _version_span(text: str, file: str) -> tuple[int, int]:
    """Where the value of the top-level ``graphspec`` key stands in ``text``."""
    offset = 1 if text.startswith("\ufeff") else 0  # the reader drops a byte-order mark
    root = yaml.compose(text[offset:], Loader=yaml.SafeLoader)
    assert isinstance(root, yaml.MappingNode)  # loads() above read it as a mapping
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "graphspec":
            return offset + value.start_mark.index, offset + value.end_mark.index
    raise SpecError("the spec has no 'graphspec:' line", Location(file))  # pragma: no cover
