"""``backend="auto"`` (``--backend auto``): numpy or torch, on the CPU or a CUDA GPU, by the
device asked for and the size of a training step.

The rule, measured with ``tools/bench/bench_backends.py`` (docs/training.md):

* a device named ``cuda...`` gets torch on it;
* otherwise a training step of at most :data:`NUMPY_MAX_FLOPS` floating-point operations
  runs on numpy: there eager torch's fixed cost per op (dispatch, autograd bookkeeping,
  the optimizer's per-tensor calls) outweighs the arithmetic, and numpy's is lower;
* a larger step runs on torch: on a CUDA GPU when one is present (device ``auto``), else on
  the CPU.  Without the torch backend installed, numpy.

The FLOPs of a step are three times the forward pass's (:func:`graphspec.ir.counts.
flop_count`: the backward pass costs about twice the forward) at the spec's batch size.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from graphspec.backend import available_backends
from graphspec.ir.counts import flop_count
from graphspec.ir.graph import IR

AUTO = "auto"
# Measured on the reference machine (docs/training.md): numpy's step is faster than eager
# torch's up to here and slower above it.
NUMPY_MAX_FLOPS = 2_000_000
DEFAULT_BATCH = 32  # the spec's default batch size, for an IR without a train section


@dataclass(frozen=True)
class Choice:
    backend: str
    device: str
    reason: str

    def note(self) -> str:
        """The one line that says what was chosen and why."""
        where = f" on {self.device}" if self.backend != "numpy" else ""
        return f"note: backend auto: {self.backend}{where} ({self.reason})"


def step_batch(ir: IR) -> int:
    """Rows per training step: the spec's batch size (for ``full``, the data's samples)."""
    train = ir.spec.train if ir.spec is not None else None
    if train is None:
        return DEFAULT_BATCH
    if train.batch_size == "full":
        return int(train.data.samples)
    return int(train.batch_size)


def step_flops(ir: IR, batch: int) -> int:
    """FLOPs of one training step at ``batch`` rows: forward and backward passes."""
    return 3 * flop_count(ir, batch)


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU (imports torch: asked only when the rule needs it)."""
    import torch  # heavy: only for a step too large for numpy

    return bool(torch.cuda.is_available())


def choose(ir: IR, device: str = "auto") -> Choice:
    """The backend and device ``backend="auto"`` stands for (module docstring)."""
    has_torch = "torch" in available_backends()
    batch = step_batch(ir)
    flops = step_flops(ir, batch)
    size = f"{flops:.3g} FLOPs per training step at batch {batch}"
    if device.startswith("cuda"):
        if not has_torch:
            return Choice("numpy", "cpu", f"device {device} asked for, but the torch backend "
                          "is not installed")
        return Choice("torch", device, f"device {device} asked for")
    if flops <= NUMPY_MAX_FLOPS or not has_torch:
        why = (f"{size}, at most {NUMPY_MAX_FLOPS:.3g}" if has_torch
               else f"{size}; the torch backend is not installed")
        return Choice("numpy", "cpu", why)
    if device == "auto" and cuda_available():
        return Choice("torch", "cuda", f"{size}, above {NUMPY_MAX_FLOPS:.3g}; a CUDA GPU is "
                      "present")
    return Choice("torch", "cpu", f"{size}, above {NUMPY_MAX_FLOPS:.3g}"
                  + ("" if device != "auto" else "; no CUDA GPU"))


def resolve(backend: str, ir: IR, device: str = "auto", quiet: bool = False) -> tuple[str, str]:
    """``(backend, device)``: as given, or what ``auto`` chooses, said in one line on stderr
    (unless ``quiet``: the ranks of a data-parallel run but the first)."""
    if backend != AUTO:
        return backend, device
    choice = choose(ir, device)
    if not quiet:
        print(choice.note(), file=sys.stderr)
    return choice.backend, choice.device
