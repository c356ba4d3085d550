"""The spec a run was trained from, saved in its run directory as ``spec.yaml``.

A run directory is self-describing: ``spec.yaml`` (the effective spec: the file as
written, or its data after ``--set`` overrides), ``summary.json`` (which variant of it,
the overrides, where the file came from) and ``checkpoint.npz`` are all that predict,
evaluate and :func:`graphspec.load_run` need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from graphspec.spec.models import Spec
from graphspec.train.atomic import atomic_open

SPEC = "spec.yaml"


def effective_text(spec: Spec) -> str:
    """The YAML text of ``spec`` as this run sees it: the file's own text (comments kept)
    when nothing overrode it, else the overridden data with the overrides in a comment."""
    head = ""
    if spec.overrides or spec.scale is not None:
        chosen = [f"--scale {_one_line(spec.scale)}"] if spec.scale is not None else []
        head = "# the spec file with these overrides applied:\n" + "".join(
            f"#   {o}\n" for o in chosen + [f"--set {_one_line(o)}" for o in spec.overrides]
        )
    source = spec.source
    if spec.resolved is not None:
        return head + yaml.safe_dump(spec.resolved, sort_keys=False, allow_unicode=True)
    if source is not None and source.text:
        return source.text if source.text.endswith("\n") else source.text + "\n"
    data: Any = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def write(run_dir: Path, spec: Spec) -> Path:
    path = Path(run_dir) / SPEC
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(effective_text(spec))
    return path
