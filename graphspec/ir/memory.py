"""How much memory a run of a spec needs, estimated from its IR before anything is allocated.

``units: 40000000`` or ``samples: 1e8`` is a valid spec that no machine can train: without
an estimate it passes ``validate`` and dies in ``MemoryError`` after minutes.  The
estimate adds up what the run holds at its peak, in bytes:

* ``parameters``: every parameter and state buffer, drawn in float64 by
  :func:`graphspec.ir.initializers.init_params` and copied in the program's dtype by the trainer
  (and once more for the best epoch's values when early stopping restores them);
* ``gradients``: one per trainable parameter;
* ``optimizer state``: per trainable parameter, as many buffers as the optimizer keeps
  (SGD with momentum 1, Adam 2 and 3 with ``amsgrad``, RMSprop 1 to 3, Adagrad 1);
* ``activations``: every op node's value at the training batch, twice (the forward values
  kept for the backward pass, and the gradients flowing back), or at an evaluation chunk
  of up to ``EVAL_ROWS`` rows, forward only, whichever is larger;
* ``data``: a synthetic source's ``samples`` rows of every input, generated in float64 and
  cast to the program's dtype, and each epoch's shuffled row indices (a data file is
  bounded when it is read, by :mod:`graphspec.train.data_files`);
* ``program``: the generated module, about ``PROGRAM_BYTES_PER_NODE`` per op node.

Symbolic dimensions: the first one of a shape counts as the rows of the batch, any other
as 1 (its size comes with the data), so the estimate errs low rather than refuse a run
that fits.  ``compile`` and ``verify`` hold less (:func:`estimate` by ``purpose``).

The budget (:func:`budget`) is the memory available now (``MemAvailable`` of
``/proc/meminfo``, lowered by a cgroup's limit in a container), or the
``GRAPHSPEC_MAX_MEMORY`` environment variable (``64G``, ``512M``, bytes; ``off`` skips the
check).  :func:`check_memory` refuses a run that needs more, naming the largest part and
where in the spec it comes from; :func:`memory_warning` is what ``validate`` says instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Literal

from graphspec.errors import Location, SpecError, UsageError
from graphspec.ir.graph import IR
from graphspec.ops.registry import TensorType

Purpose = Literal["train", "compile", "verify"]
ENV = "GRAPHSPEC_MAX_MEMORY"
# Rows per forward pass when the trainers evaluate a split (EVAL_CHUNK of the numpy and
# torch trainers).
EVAL_ROWS = 8192
# Rows of the batch ``verify`` runs (graphspec.verify.inputs.MAX_BATCH).
VERIFY_ROWS = 32
# Measured with the numpy backend on chains of 2,000 and 10,000 linear layers: 105 and
# 114 KB of peak memory per node, most of it Python compiling the generated module.
PROGRAM_BYTES_PER_NODE = 100_000
# Each epoch's permutation of the rows and the batches cut from it (int64, and an array
# object per batch).  Measured: xor with 1e7 samples peaked 790 MB above a 64-sample run,
# 79 bytes a sample, of which the rows themselves are 48.
INDEX_BYTES_PER_SAMPLE = 32
_FLOAT_BYTES = {"float32": 4, "float64": 8}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs at its peak, by part; ``where`` is the spec location that drives
    the largest part (the widest parameter or activation, ``samples``)."""

    purpose: Purpose
    parts: dict[str, int]
    where: dict[str, Location | None]
    rows: int  # the rows activations were counted at

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    @property
    def largest(self) -> str:
        return max(self.parts, key=lambda k: self.parts[k])

    def describe(self) -> str:
        shown = ", ".join(
            f"{k} {size_text(v)}" + (f" ({self.rows:,} rows)" if k == "activations" else "")
            for k, v in sorted(self.parts.items(), key=lambda kv: -kv[1])
            if v
        )
        return f"about {size_text(self.total)} ({shown})"


def estimate(
    ir: IR, purpose: Purpose = "train", dtype: str = "float64", backends: int = 1
) -> MemoryEstimate:
    """What ``purpose`` needs for ``ir`` in ``dtype`` (``backends``: how many ``verify``
    compares)."""
    size = _FLOAT_BYTES.get(dtype, 8)
    spec = ir.spec
    train = getattr(spec, "train", None)
    all_params = sum(ir.type(p).numel() for p in ir.params + ir.state)
    trainable = ir.param_count()
    n_ops = len(ir.op_nodes())
    samples, data_bytes = _synthetic_data(ir, train)
    where = {
        "parameters": _widest_param(ir),
        "data": _locate(spec, ("train", "data", "samples")),
        "program": _locate(spec, ("graph",)),
    }
    where["gradients"] = where["optimizer state"] = where["parameters"]
    if purpose == "compile":
        # The float64 initial values, and the .npz written from them.
        parts = {"parameters": all_params * 8 * 2, "program": n_ops * PROGRAM_BYTES_PER_NODE}
        return MemoryEstimate(purpose, parts, where, 0)
    if purpose == "verify":
        rows = VERIFY_ROWS
        per_backend = all_params * size * 4  # parameters, gradients, two optimizer buffers
        act, where["activations"] = _activations(ir, rows)
        parts = {
            "parameters": all_params * 8 + backends * per_backend,
            "activations": backends * 2 * act * size,
            "data": data_bytes,  # verify draws its batches from the spec's data
            "program": backends * n_ops * PROGRAM_BYTES_PER_NODE,
        }
        return MemoryEstimate(purpose, parts, where, rows)
    n_train = samples
    if train is not None and samples:
        n_train = max(1, int(samples * (1 - train.data.val_split)))
    batch = train.batch_size if train is not None else 32
    batch_rows = n_train if batch == "full" else min(int(batch), n_train or int(batch))
    eval_rows = min(n_train or EVAL_ROWS, EVAL_ROWS)
    step, at_step = _activations(ir, batch_rows)
    ev, at_eval = _activations(ir, eval_rows)
    if 2 * step >= ev:  # a training step's forward values and their gradients
        rows, act, where["activations"] = batch_rows, 2 * step, at_step
    else:  # an evaluation chunk, forward only
        rows, act, where["activations"] = eval_rows, ev, at_eval
    es = getattr(train, "early_stopping", None)
    copies = 8 + size + (size if es is not None and es.restore_best else 0)
    parts = {
        "parameters": all_params * copies,
        "gradients": trainable * size,
        "optimizer state": trainable * size * _optimizer_buffers(train),
        "activations": act * size,
        "data": data_bytes,
        "program": n_ops * PROGRAM_BYTES_PER_NODE,
    }
    return MemoryEstimate(purpose, parts, where, rows)


def check_memory(
    ir: IR, purpose: Purpose = "train", dtype: str = "float64", backends: int = 1
) -> MemoryEstimate:
    """Refuse, with a located :class:`SpecError`, a ``purpose`` that needs more memory than
    the budget (:func:`budget`); call it before allocating parameters or data."""
    est = estimate(ir, purpose, dtype, backends)
    limit, source = budget()
    if limit is not None and est.total > limit:
        what = {"train": "training", "compile": "compiling", "verify": "verifying"}[purpose]
        raise SpecError(
            f"{what} this spec needs {est.describe()}, more than the {size_text(limit)} {source}",
            est.where.get(est.largest),
            hint=_HINTS[est.largest] + f"; {ENV}=SIZE sets another budget ({ENV}=off: no check)",
        )
    return est


def memory_warning(ir: IR) -> tuple[str, Location | None] | None:
    """A warning for ``validate`` when training (or, without ``train:``, compiling) the spec
    would need more than the budget, else None."""
    purpose: Purpose = "train" if getattr(ir.spec, "train", None) is not None else "compile"
    est = estimate(ir, purpose)
    try:
        limit, source = budget()
    except UsageError:
        return None  # a bad GRAPHSPEC_MAX_MEMORY is reported by the commands that allocate
    if limit is None or est.total <= limit:
        return None
    what = "training" if purpose == "train" else "compiling"
    return (
        f"{what} this spec needs {est.describe()}, more than the {size_text(limit)} "
        f"{source}; it would be refused",
        est.where.get(est.largest),
    )


_HINTS = {
    "parameters": "reduce the widest layers ('units', shapes) or their 'repeat'",
    "gradients": "reduce the widest layers ('units', shapes) or their 'repeat'",
    "optimizer state": "reduce the widest layers, or use an optimizer with less state (sgd)",
    "activations": "reduce the widest layers, the depth or train.batch_size",
    "data": "reduce train.data.samples",
    "program": "reduce the number of nodes ('repeat' counts of blocks)",
}


# ---- the budget ----------------------------------------------------------------------------


def budget() -> tuple[int | None, str]:
    """The bytes a run may use and where that figure comes from; None when unknown (then
    nothing is refused).  ``GRAPHSPEC_MAX_MEMORY`` overrides what the system says."""
    setting = os.environ.get(ENV, "").strip()
    if setting:
        if setting.lower() in ("off", "none", "unlimited"):
            return None, f"{ENV}=off"
        value = parse_size(setting)
        if value is None:
            raise UsageError(
                f"{ENV}={setting[:40]!r} is not a size",
                hint="give bytes or a size such as 512M, 16G, 1T; 'off' disables the check",
            )
        return value, f"allowed by {ENV}"
    available = _meminfo_available()
    room = _cgroup_room()
    if room is not None and (available is None or room < available):
        return room, "left under this container's memory limit (cgroup)"
    if available is not None:
        return available, "available (MemAvailable in /proc/meminfo)"
    return _sysconf_available(), "available"


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtKMGT]?)i?[bB]?$")


def parse_size(text: str) -> int | None:
    """Bytes from ``123``, ``512M``, ``16G``, ``1.5T`` (powers of 1024), or None."""
    m = _SIZE.match(text.strip()) if len(text) < 40 else None
    if m is None:
        return None
    scale = 1024 ** " KMGT".index(m[2].upper() or " ")
    return int(float(m[1]) * scale)


def size_text(n: float) -> str:
    """``1.5 GiB``: bytes for people."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} PiB"  # pragma: no cover


def _read_small(path: str) -> str | None:
    """A small system file's text (bounded read), or None."""
    try:
        with open(path, "rb") as f:
            return f.read(64 * 1024).decode("ascii", "replace")
    except OSError:
        return None


def _meminfo_available() -> int | None:
    text = _read_small("/proc/meminfo")
    m = re.search(r"^MemAvailable:\s+(\d+)\s*kB", text or "", re.M)
    return int(m[1]) * 1024 if m else None


def _cgroup_room() -> int | None:
    """Bytes left under a cgroup memory limit (v2, then v1), or None without a limit."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit, usage = _read_small(limit_file), _read_small(usage_file)
        if limit is None or not limit.strip().isdigit():
            continue  # "max", or no such controller
        value = int(limit.strip())
        if value >= 2**60:  # v1 writes "no limit" as a huge number
            return None
        used = int(usage.strip()) if usage and usage.strip().isdigit() else 0
        return max(value - used, 0)
    return None


def _sysconf_available() -> int | None:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


# ---- the parts -----------------------------------------------------------------------------


def _rows_numel(t: TensorType, rows: int) -> int:
    """Elements of a value of type ``t`` when the batch has ``rows`` rows: the first
    symbolic dimension is the batch, any other counts as 1 (known only from the data)."""
    out, seen = 1, False
    for d in t.shape:
        if isinstance(d, int):
            out *= d
        elif not seen:
            out *= rows
            seen = True
    return out


def _activations(ir: IR, rows: int) -> tuple[int, Location | None]:
    """Elements of every op node's value at ``rows`` rows, and where the largest is made."""
    total, biggest, where = 0, -1, None
    for nid in ir.op_nodes():
        n = _rows_numel(ir.type(nid), rows)
        total += n
        if n > biggest:
            biggest, where = n, ir.node(nid).src
    return total, where


def _synthetic_data(ir: IR, train: Any) -> tuple[int, int]:
    """(samples, bytes) of a synthetic source: every input's row in float64 and in the
    program's dtype (counted as float64 too, the larger), and ``INDEX_BYTES_PER_SAMPLE``."""
    data = getattr(train, "data", None)
    if data is None or data.source is None:
        return 0, 0
    row = sum(_rows_numel(ir.type(name), 1) for name in ir.inputs)
    return data.samples, data.samples * (row * 16 + INDEX_BYTES_PER_SAMPLE)


def _optimizer_buffers(train: Any) -> int:
    """Buffers per trainable parameter: the spec's optimizer says (no optimizer: none)."""
    opt = getattr(train, "optimizer", None)
    return opt.buffers() if opt is not None else 0


def _widest_param(ir: IR) -> Location | None:
    if not ir.params + ir.state:
        return None
    widest = max(ir.params + ir.state, key=lambda p: ir.type(p).numel())
    return ir.node(widest).src


def _locate(spec: Any, path: tuple[Any, ...]) -> Location | None:
    smap = getattr(spec, "source", None)
    if smap is None:
        return None
    return smap.locate(path)


__all__ = [
    "ENV",
    "MemoryEstimate",
    "budget",
    "check_memory",
    "estimate",
    "memory_warning",
    "parse_size",
    "size_text",
]
