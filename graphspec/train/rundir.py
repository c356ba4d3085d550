"""Run directories named after specs and variants, kept inside their root.

A spec's name and a variant's name become folders: ``runs/<name>/<variant>``.  Loading a
spec already refuses names that are not one plain folder
(:func:`graphspec.spec.models.folder_name_problem`); the path is checked again here, where
it is built, so that a spec made any other way (``Spec.model_construct``, an edited
object) cannot send checkpoints, metrics and summaries outside the root either: a name
``..`` made the current directory the run directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from graphspec.errors import SpecError
from graphspec.spec.models import folder_name_problem

DEFAULT_ROOT = Path("runs")


def run_dir_for(name: str, root: str | os.PathLike[str] = DEFAULT_ROOT) -> Path:
    """``root / name``, refusing a ``name`` that is not one folder directly below ``root``.

    The check is on the path as written (not resolved): a run directory that is a symbolic
    link to another disk stays allowed, while ``..``, ``a/../..`` or an absolute name never
    leave ``root``."""
    problem = folder_name_problem(name) if isinstance(name, str) else "is not a string"
    if problem:
        raise SpecError(
            f"name {name!r} {problem}",
            hint="names are folder names under the run "
            "directory: letters, digits, '_', '.' and '-'",
        )
    path = Path(root) / name
    # Belt and braces: whatever the name, the path must be exactly one level below root.
    if os.path.normpath(path.parent) != os.path.normpath(root) or path.name != name:
        raise SpecError(f"name {name!r} does not stay inside the run directory {root}")
    return path
