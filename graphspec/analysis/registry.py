"""The procedure registry: one attribute model and one ``run`` per procedure.

As with ops, a procedure is defined once (``graphspec/analysis/<name>.py``): its keys
(a pydantic model, so a spec entry is validated with located errors), the checks against
the IR that can fail before any training (``check``), and ``run`` over a backend's Program.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from graphspec.errors import Location

if TYPE_CHECKING:
    from graphspec.analysis.context import CheckContext, Context

At = Literal["init", "end"]


class Procedure(BaseModel):
    """Base of each procedure's keys (the entry's own keys; ``procedure``, ``at``, ``name``
    and ``doc`` are shared and live on the spec's ``AnalysisSpec``)."""

    # Finite numbers only (a budget or a margin at infinity is a typo); a bound that may be
    # infinite is declared graphspec.ops.registry.Bound.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    stem: ClassVar[str]  # the default stem of the files it writes (robustness -> .json)

    def check(self, ctx: CheckContext) -> Procedure:
        """Raise a located SpecError for what cannot work with this IR (names, shapes);
        return the attributes with their defaults resolved (``input: None`` -> ``x``)."""
        return self

    def run(self, ctx: Context, entry: Entry) -> dict[str, Any]:  # pragma: no cover
        """Compute, write ``entry.name``.json/.npz under the run directory, and return a
        few numbers worth showing in ``analysis.json``."""
        raise NotImplementedError


@dataclass(frozen=True)
class Entry:
    """One validated ``analysis:`` entry."""

    index: int  # position in the spec's list (for locations and its random stream)
    procedure: str
    at: At
    name: str  # file stem
    attrs: Procedure
    src: Location | None = None


REGISTRY: dict[str, type[Procedure]] = {}


def procedure(name: str) -> Callable[[type[Procedure]], type[Procedure]]:
    def register(cls: type[Procedure]) -> type[Procedure]:
        if name in REGISTRY:  # pragma: no cover - a programming error
            raise ValueError(f"procedure '{name}' registered twice")
        REGISTRY[name] = cls
        return cls

    return register
