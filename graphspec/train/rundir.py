"""Where runs go, and what may happen to a directory that already holds one.

Without ``--out`` a run of spec ``NAME`` goes to ``runs/NAME/<n>``: the first free ``n``
(1, 2, ...), claimed with ``mkdir`` so that two trainings started at once never share one
(as Lightning's ``version_N``).  ``--resume`` without ``--out`` continues the latest.  A
spec's name and a variant's name become folders (``runs/<name>/<n>/<variant>``), kept
inside their root: loading a spec already refuses names that are not one plain folder
(:func:`graphspec.spec.models.folder_name_problem`), and :func:`run_dir_for` checks again
where the path is built, so that a spec made any other way (``Spec.model_construct``, an
edited object) cannot send checkpoints, metrics and summaries outside the root either: a
name ``..`` made the current directory the run directory.

A directory that holds a run (a checkpoint, a metrics log or a summary) is never trained
into again unless the caller says how: ``resume`` continues it, ``overwrite`` replaces it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from graphspec.analysis.runner import INDEX as ANALYSIS
from graphspec.errors import GraphspecError, Location, SpecError, TrainingError
from graphspec.spec.models import Spec, folder_name_problem
from graphspec.train.checkpoint import FILENAME as CHECKPOINT
from graphspec.train.lock import LOCK
from graphspec.train.logsinks import CSV, TENSORBOARD
from graphspec.train.runlog import METRICS, SUMMARY, read_summary
from graphspec.train.runspec import SPEC

DEFAULT_ROOT = Path("runs")
# The files a run consists of; --overwrite removes these and the TensorBoard folder (and
# nothing else) first, so a replaced run never leaves a summary, checkpoint or event file
# of the old one beside the new log.
RUN_FILES = (CHECKPOINT, METRICS, SUMMARY, ANALYSIS, SPEC, CSV)
MAX_TRIES = 10_000  # versions tried before giving up (another process keeps taking them)


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


def variant_dir(base: str | os.PathLike[str], spec: Spec) -> Path:
    """Where a run of ``spec`` goes under ``base``: a variant gets its own folder."""
    return run_dir_for(spec.variant, base) if spec.variant else Path(base)


def spec_root(name: str, root: str | os.PathLike[str] = DEFAULT_ROOT) -> Path:
    """The folder holding the numbered runs of the spec called ``name`` (inside ``root``)."""
    return run_dir_for(name, root)


def versions(folder: Path) -> list[int]:
    """The run numbers present in ``folder`` (its sub-folders named by a number), sorted."""
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.isascii() and name.isdigit() and entry.is_dir():
            found.append(int(name))
    return sorted(found)


def next_version(folder: Path) -> Path:
    """Create and return ``folder/<n>`` for the first ``n`` above every existing run.

    ``mkdir`` without ``exist_ok`` is the claim: of two processes choosing the same ``n``
    one gets FileExistsError and tries the next, so no two runs ever share a directory."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise cannot_create(folder, e) from None
    n = max(versions(folder), default=0) + 1
    for _ in range(MAX_TRIES):
        path = folder / str(n)
        try:
            path.mkdir()
        except FileExistsError:
            n += 1
            continue
        except OSError as e:
            raise cannot_create(path, e) from None
        return path
    raise TrainingError(
        f"no free run number under {folder} after {MAX_TRIES} tries",
        Location(str(folder)),
        hint="choose a run directory with --out",
    )


def latest_version(folder: Path) -> Path:
    """``folder/<n>`` of the latest run, for ``--resume`` without ``--out``."""
    found = versions(folder)
    if not found:
        raise TrainingError(
            f"no run to resume in {folder}",
            Location(str(folder)),
            hint="pass the run directory with --out",
        )
    return folder / str(found[-1])


def holds_run(path: Path) -> bool:
    return any((path / f).exists() for f in RUN_FILES)


def describe(path: Path) -> str:
    """' (completed after 12 epochs)' from the summary, best effort (for messages)."""
    if not (path / SUMMARY).is_file():
        return ""
    try:
        summary = read_summary(path)
    except GraphspecError:
        return ""
    status, epochs = summary.get("status"), summary.get("epochs")
    return f" ({str(status).replace('_', ' ')} after {epochs} epochs)"


def prepare(path: Path, *, resume: bool, overwrite: bool) -> None:
    """Check that a run may be written into ``path`` (held under its lock): a directory
    holding a run needs ``resume`` or ``overwrite``; ``overwrite`` removes the old run's
    files."""
    if resume or not holds_run(path):
        return
    if not overwrite:
        hint = "start over with --overwrite, or choose another --out"
        if (path / CHECKPOINT).exists():
            hint = "continue it with --resume, " + hint
        raise TrainingError(
            f"{path} already holds a run{describe(path)}; not replacing it",
            Location(str(path)),
            hint=hint,
        )
    events = path / TENSORBOARD
    try:
        if events.is_dir() and not events.is_symlink():  # event files of the old run
            shutil.rmtree(events)
    except OSError as e:
        raise TrainingError(
            f"cannot remove {events}: {e.strerror or e}", Location(str(events))
        ) from None
    for name in RUN_FILES:
        try:
            (path / name).unlink(missing_ok=True)
        except OSError as e:
            raise TrainingError(
                f"cannot remove {path / name}: {e.strerror or e}", Location(str(path / name))
            ) from None


def discard_if_empty(path: Path) -> None:
    """Remove ``path`` when it holds nothing but a lock file: a run that failed before
    writing anything leaves no empty directory behind."""
    with contextlib.suppress(OSError):
        if {p.name for p in path.iterdir()} <= {LOCK}:
            (path / LOCK).unlink(missing_ok=True)
            path.rmdir()


def cannot_create(path: Path, e: OSError) -> TrainingError:
    return TrainingError(
        f"cannot create the run directory {path}: {e.strerror or e}",
        Location(str(path)),
        hint="choose another --out",
    )
