"""PyTorch kernels: forward only (autograd is the independent check of the numpy VJPs).

Rules for kernel modules (the code generator copies kernels into standalone modules):

* a kernel is a plain function that uses only ``torch``, ``F`` (torch.nn.functional),
  ``nn``, ``math``, helpers defined in its own module (its family) or in ``_prelude``, and
  literal constants defined there; register it with ``@kernel("op")``. The code generator
  copies exactly the helpers a module's kernels call, transitively, and refuses (at
  generation, naming the kernel and the name) anything else a kernel reads;
* it is called as ``kernel(*inputs, *params, *state, **kernel_attrs, [training=], [noise=])``
  with tensors; ops declared ``has_state`` return ``(y, new_state_tuple)``;
* it must work on any device and dtype it is given (no ``.cpu()``, no numpy, no Python
  scalars pulled from tensors in the hot path).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

KERNELS: dict[str, Callable[..., Any]] = {}


def kernel(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in KERNELS:
            raise ValueError(f"torch kernel for '{name}' is defined twice")
        KERNELS[name] = fn
        return fn

    return register


for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _mod.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod}")
