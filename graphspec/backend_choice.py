"""``backend="auto"`` (``--backend auto``): numpy or torch, on the CPU or a CUDA GPU, by the
device asked for and the size of a training step.

The rule (docs/training.md has the measurement, from ``tools/bench/bench_backends.py``):

* a device named ``cuda...`` gets torch on it;
* a step of at most :data:`NUMPY_MAX_FLOPS_GPU` runs on numpy even with a GPU present:
  numpy's whole step is shorter than eager torch's fixed cost per step (dispatch, autograd
  bookkeeping, the optimizer's calls: about 1 ms measured on the CPU with tiny models),
  which a GPU step cannot go under, as the host launches the same kernels one by one;
* a larger one runs on torch on a CUDA GPU when one is present (device ``auto``);
* without a GPU, numpy up to :data:`NUMPY_MAX_FLOPS_CPU`, where eager torch on the CPU
  catches up with it, and torch on the CPU above.  Without the torch backend, numpy.

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
# Measured (docs/training.md): on one CPU thread numpy's step took 0.2-0.86x eager torch's
# from 1e5 to 4.5e9 FLOPs, the ratio rising ~0.17 a decade; 3e10 is where it extrapolates
# to 1.  With a GPU: numpy's step is under ~1 ms (torch's fixed cost) up to ~2e7 FLOPs.
NUMPY_MAX_FLOPS_CPU = 30_000_000_000
NUMPY_MAX_FLOPS_GPU = 20_000_000
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
    if not has_torch:
        return Choice("numpy", "cpu", f"{size}; the torch backend is not installed")
    if device.startswith("cuda"):
        return Choice("torch", device, f"device {device} asked for")
    if flops <= NUMPY_MAX_FLOPS_GPU:
        return Choice(
            "numpy",
            "cpu",
            f"{size}, at most {NUMPY_MAX_FLOPS_GPU:.3g}: faster than eager torch on any device",
        )
    if device == "auto" and cuda_available():
        return Choice(
            "torch", "cuda", f"{size}, above {NUMPY_MAX_FLOPS_GPU:.3g}, and a CUDA GPU is present"
        )
    if flops <= NUMPY_MAX_FLOPS_CPU:
        return Choice(
            "numpy",
            "cpu",
            f"{size}, at most {NUMPY_MAX_FLOPS_CPU:.3g} on the CPU: faster than eager torch",
        )
    return Choice("torch", "cpu", f"{size}, above {NUMPY_MAX_FLOPS_CPU:.3g} on the CPU")


def resolve(backend: str, ir: IR, device: str = "auto", quiet: bool = False) -> tuple[str, str]:
    """``(backend, device)``: as given, or what ``auto`` chooses, said in one line on stderr
    (unless ``quiet``: the ranks of a data-parallel run but the first)."""
    if backend != AUTO:
        return backend, device
    choice = choose(ir, device)
    if not quiet:
        print(choice.note(), file=sys.stderr)
    return choice.backend, choice.device
