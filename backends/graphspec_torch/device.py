"""Devices, dtypes, mixed precision and TF32: the torch settings a compile option maps to."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch

from graphspec.errors import BackendError

DTYPES = {"float32": torch.float32, "float64": torch.float64}
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else the CPU; ``cuda`` and ``cuda:N`` must exist."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise BackendError(
                f"device '{name}' was asked for, but CUDA is not available",
                hint="use --device cpu, or --device auto to take a GPU only when there is one",
            )
        index_text = name.partition(":")[2]
        if index_text:
            if not index_text.isdigit():
                raise BackendError(f"bad CUDA device '{name}'", hint="write cuda or cuda:N")
            n = torch.cuda.device_count()
            if int(index_text) >= n:
                raise BackendError(f"device '{name}' does not exist: this machine has {n} GPU(s)")
            return torch.device("cuda", int(index_text))
        return torch.device("cuda", torch.cuda.current_device())
    raise BackendError(f"unknown device '{name}'", hint="devices: auto, cpu, cuda, cuda:N")


def resolve_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise BackendError(f"unknown dtype '{name}'", hint="dtypes: float32, float64")
    return DTYPES[name]


def resolve_amp(amp: str, dtype: torch.dtype) -> torch.dtype | None:
    """The autocast dtype, or None.  AMP keeps float32 master weights, so it needs float32."""
    if amp in (None, "none"):
        return None
    if amp not in AMP_DTYPES:
        raise BackendError(f"unknown amp mode '{amp}'", hint="amp: none, bf16, fp16")
    if dtype != torch.float32:
        raise BackendError(
            f"--amp {amp} needs --dtype float32 (mixed precision keeps float32 master weights)"
        )
    return AMP_DTYPES[amp]


def autocast(device: torch.device, amp_dtype: torch.dtype | None, cache: bool = True) -> Any:
    """Autocast for ``amp_dtype`` on ``device`` (a no-op context when AMP is off).  Without
    ``cache`` the casts of the weights are not kept between uses: what recording a CUDA
    graph needs (torch.cuda.graphs' advice)."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype, cache_enabled=cache)


def set_tf32(enabled: bool) -> tuple[bool, bool, str]:
    """Set TF32 for CUDA matmuls and cuDNN; returns the previous settings."""
    before = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    torch.set_float32_matmul_precision("high" if enabled else "highest")
    return before


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Full float32 precision inside (verification compares against float64 numpy)."""
    before = set_tf32(False)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before[0]
        torch.backends.cudnn.allow_tf32 = before[1]
        torch.set_float32_matmul_precision(before[2])


def deterministic(seed: int | None = None) -> None:
    """Bit-reproducible runs on CUDA: deterministic kernels, TF32 off, cuBLAS workspace fixed.

    ``CUBLAS_WORKSPACE_CONFIG`` must be set before cuBLAS initialises, so call this early.
    """

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    set_tf32(False)
    if seed is not None:
        torch.manual_seed(seed)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
