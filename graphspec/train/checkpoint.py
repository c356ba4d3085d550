"""Checkpoints: one ``.npz`` file, written atomically, read without pickle, integrity-checked.

Layout (every entry a plain numeric array but the digest, a 0-d string)::

    param/<name>   parameters and state buffers the run ends with (best ones after
                   restore-best) -- what a user or the generated ``load_checkpoint`` reads
    last/<name>    only when ``param/`` holds restored best values: the last epoch's
                   parameters, from which ``resume`` continues the trajectory
    best/<name>    best parameters so far (early stopping with restore_best)
    opt/<key>      the backend trainer's ``state_dict()`` (optimizer state, step counters)
    meta           UTF-8 JSON as uint8 bytes: format, run settings, completed epochs,
                   history, early-stopping state
    digest         SHA-256 (hex, a 0-d string) over every other entry: name, dtype, shape, bytes

Writing goes to a temporary file in the same folder, is flushed and fsync'ed, then renamed
over the old file with ``os.replace`` (atomic on POSIX and Windows), and the folder is
fsync'ed: a process killed at any moment leaves the previous checkpoint or the new one,
never a torn file.  A truncated or altered file fails the zip CRC or the digest and raises
:class:`CheckpointError`.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graphspec import regular_file
from graphspec.errors import CheckpointError, Location
from graphspec.train.atomic import atomic_open
from graphspec.train.runlog import to_json

if TYPE_CHECKING:
    from graphspec.ir.graph import IR

FORMAT = 1
FILENAME = "checkpoint.npz"
ZIP_MAGIC = b"PK\x03\x04"
Arrays = dict[str, np.ndarray]
_SECTIONS = ("param", "last", "best", "opt")


@dataclass
class Checkpoint:
    meta: dict[str, Any]
    param: Arrays
    opt: Arrays = field(default_factory=dict)
    best: Arrays = field(default_factory=dict)
    last: Arrays = field(default_factory=dict)

    @property
    def train_params(self) -> Arrays:
        """The parameters training continues from."""
        return self.last or self.param


def _digest(arrays: Arrays) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _meta_problem(meta: dict[str, Any]) -> str | None:
    """What is wrong with the run state a checkpoint claims, or None.  The digest proves
    the file is as written, not who wrote it: resume must not trip over a value of the
    wrong type."""
    kinds: dict[str, tuple[Any, ...]] = {
        "name": (str,), "backend": (str,), "dtype": (str,), "status": (str,), "seed": (int,),
        "epoch": (int,), "epochs": (int,), "batch_size": (int,), "history": (list,),
        "tracker": (dict,), "wall_time_s": (int, float),
    }
    for key, types in kinds.items():
        if key in meta and (not isinstance(meta[key], types) or isinstance(meta[key], bool)):
            return f"'{key}' is {meta[key]!r}"
    history = meta.get("history", [])
    if not all(isinstance(r, dict) and all(v is None or _is_number(v)  # null: non-finite
                                           for k, v in r.items() if k != "epoch")
               for r in history):
        return "'history' holds something other than per-epoch records of numbers"
    if "epoch" in meta and meta["epoch"] != len(history):
        return f"'epoch' is {meta['epoch']} but the history has {len(history)} epochs"
    tracker = meta.get("tracker", {})
    for key in ("best", "best_epoch", "wait"):
        value = tracker.get(key)
        if value is not None and not _is_number(value):
            return f"the early-stopping state's '{key}' is {value!r}"
    return None


def save(path: Path, ckpt: Checkpoint) -> None:
    arrays: Arrays = {}
    for section in _SECTIONS:
        for name, value in getattr(ckpt, section).items():
            arrays[f"{section}/{name}"] = np.asarray(value)
    text = to_json({**ckpt.meta, "format": FORMAT})
    arrays["meta"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    arrays["digest"] = np.array(_digest(arrays))
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]


def _read_arrays(path: Path, missing_hint: str | None = None) -> Arrays:
    """Every array of an .npz file, never unpickling; CheckpointError for anything else."""
    where = Location(str(path))
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}" + (" (it is a directory)" if path.is_dir() else ""),
            where, hint=missing_hint)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror or e}", where) from None
    if magic != ZIP_MAGIC:  # np.load would take anything else for a pickle
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt (not an .npz archive)",
                              where)
    try:
        too_large = regular_file.npz_too_large(path)
        if too_large is not None:
            raise CheckpointError(
                f"checkpoint {path} unpacks to {too_large:,} bytes, over the "
                f"{regular_file.MAX_NPZ_BYTES:,}-byte limit", where)
        with np.load(path, allow_pickle=False) as f:
            return {k: np.asarray(f[k]) for k in f.files}
    except ValueError as e:  # pickled objects inside, or a malformed array header
        raise CheckpointError(f"checkpoint {path} cannot be read without pickle ({e})",
                              where) from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({e})", where,
                              hint="a checkpoint is written atomically; this file was "
                              "altered or copied incompletely") from None


def load_params(path: Path) -> Arrays:
    """The ``param/<name>`` arrays of a checkpoint, or of a plain parameter .npz (what
    ``graphspec compile`` writes beside a module); a checkpoint's digest is checked."""
    path = Path(path)
    arrays = _read_arrays(path)
    if "digest" in arrays:
        return load(path).param
    params = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    if not params:
        raise CheckpointError(f"{path} holds no 'param/<name>' arrays", Location(str(path)))
    return params


def load(path: Path) -> Checkpoint:
    path = Path(path)
    where = Location(str(path))
    arrays = _read_arrays(path, "train without --resume first, or point --out at the run")
    if "meta" not in arrays or "digest" not in arrays:
        raise CheckpointError(f"{path} is not a graphspec checkpoint (no meta/digest)", where)
    digest = str(arrays.pop("digest"))
    if _digest(arrays) != digest:
        raise CheckpointError(f"checkpoint {path} fails its integrity check (digest mismatch)",
                              where, hint="the file was modified after it was written")
    try:
        raw = arrays.pop("meta")
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"meta has dtype {raw.dtype} and shape {raw.shape}")
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {path} has unreadable metadata ({e})", where) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} has an unknown format "
                              f"{meta.get('format') if isinstance(meta, dict) else meta!r}", where)
    problem = _meta_problem(meta)
    if problem:
        raise CheckpointError(f"checkpoint {path} has inconsistent metadata: {problem}", where,
                              hint="the file was altered (its digest was recomputed)")
    sections: dict[str, Arrays] = {s: {} for s in _SECTIONS}
    for key, value in arrays.items():
        section, _, name = key.partition("/")
        if section not in sections or not name:
            raise CheckpointError(f"checkpoint {path} has an unexpected entry '{key}'", where)
        sections[section][name] = value
    return Checkpoint(meta, sections["param"], sections["opt"], sections["best"],
                      sections["last"])


# ---- does a set of parameters fit a spec? ------------------------------------------------------

Shape = tuple[int, ...]
SHOWN = 12  # names listed per kind of difference; the count says how many more


@dataclass
class Mismatch:
    """How parameters (a checkpoint's) differ from what a spec declares."""

    missing: list[tuple[str, Shape]] = field(default_factory=list)  # (name, expected shape)
    extra: list[tuple[str, Shape]] = field(default_factory=list)  # (name, found shape)
    shapes: list[tuple[str, Shape, Shape]] = field(default_factory=list)  # (name, exp, found)
    dtypes: list[tuple[str, str]] = field(default_factory=list)  # (name, found dtype)

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.shapes or self.dtypes)

    def counts(self) -> str:
        """'2 missing, 1 extra, 1 of another shape'."""
        parts = [f"{len(self.missing)} missing" if self.missing else "",
                 f"{len(self.extra)} extra" if self.extra else "",
                 f"{len(self.shapes)} of another shape" if self.shapes else "",
                 f"{len(self.dtypes)} not real numbers" if self.dtypes else ""]
        return ", ".join(p for p in parts if p)

    def lines(self) -> list[str]:
        """One line per difference (at most SHOWN of each kind)."""
        out: list[str] = []

        def listed(kind: str, items: list[str]) -> None:
            out.extend(f"{kind}: {text}" for text in items[:SHOWN])
            if len(items) > SHOWN:
                out.append(f"{kind}: ... and {len(items) - SHOWN} more")

        listed("missing", [f"'{n}' (the spec's shape {_shape(s)})" for n, s in self.missing])
        listed("extra", [f"'{n}' (shape {_shape(s)}), which the spec does not have"
                         for n, s in self.extra])
        listed("shape", [f"'{n}': the spec's shape is {_shape(e)}, the checkpoint's {_shape(f)}"
                         for n, e, f in self.shapes])
        listed("dtype", [f"'{n}' holds {d}, not real numbers" for n, d in self.dtypes])
        return out


def _shape(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def expected_shapes(ir: IR) -> dict[str, Shape]:
    """Every parameter and state buffer of ``ir`` with its shape."""
    return {k: tuple(int(d) for d in ir.type(k).shape) for k in ir.params + ir.state}


def compare_params(params: Mapping[str, np.ndarray], expected: Mapping[str, Shape]) -> Mismatch:
    """Missing, extra, differently shaped and non-numeric parameters of ``params`` against
    ``expected`` (names and shapes, as :func:`expected_shapes` gives)."""
    found = {k: tuple(np.shape(v)) for k, v in params.items()}
    m = Mismatch()
    m.missing = [(k, s) for k, s in expected.items() if k not in found]
    m.extra = [(k, s) for k, s in found.items() if k not in expected]
    m.shapes = [(k, s, found[k]) for k, s in expected.items() if k in found and found[k] != s]
    m.dtypes = [(k, str(np.asarray(v).dtype)) for k, v in params.items()
                if k in expected and np.asarray(v).dtype.kind not in "fiu"]
    return m


def check_fits(params: Mapping[str, np.ndarray], ir: IR, source: str | Path) -> None:
    """Raise a CheckpointError listing every difference between ``params`` (read from
    ``source``) and the parameters of ``ir``'s spec."""
    m = compare_params(params, expected_shapes(ir))
    if not m:
        return
    spec = ir.spec
    name = f"spec '{spec.name}'" if spec is not None else "this spec"
    raise CheckpointError(
        f"the parameters of this checkpoint do not fit {name}: {m.counts()}",
        Location(str(source)),
        notes=[(line, None) for line in m.lines()],
        hint="was it written by another spec? Parameters are matched by name and shape",
    )


def resolve(path: str | Path) -> Path:
    """A checkpoint file, given itself or the run directory holding it."""
    p = Path(path)
    return p / FILENAME if p.is_dir() and p.name != FILENAME else p


def load_params_for(ir: IR, path: str | Path) -> Arrays:
    """The parameters (``param/``) of a checkpoint or run directory ``path``, checked to
    fit ``ir``'s spec: a CheckpointError lists every missing, extra or misshapen one."""
    source = resolve(path)
    params = load_params(source)
    check_fits(params, ir, source)
    return params
