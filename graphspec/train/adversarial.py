"""Adversarial training's arithmetic (Goodfellow et al., 2015), written once for every backend.

Each step crafts the batch's FGSM examples ``x + epsilon * sign(dL/dx)`` from the clean
pass's input gradient and optimizes ``(1 - mix) L(x) + mix L(x_adv)``, so the loss terms
and the parameters' gradients mix the two passes likewise.  The functions take whatever a
backend computes with (floats, numpy arrays, torch tensors) and apply only ``+``, ``*`` and
the backend's own ``sign``, in one order: every backend rounds the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any


def fgsm_example(x: Any, input_grad: Any, epsilon: float, sign: Callable[[Any], Any]) -> Any:
    """``x + epsilon * sign(input_grad)``; ``sign`` is the backend's (np.sign, torch.sign)."""
    return x + epsilon * sign(input_grad)


def mix(clean: Any, adversarial: Any, weight: float) -> Any:
    """``(1 - weight) * clean + weight * adversarial`` (``weight``: the spec's ``mix``)."""
    return (1 - weight) * clean + weight * adversarial


def mix_each(
    clean: Mapping[str, Any],
    adversarial: Mapping[str, Any],
    weight: float,
    keys: Iterable[str] | None = None,
) -> dict[str, Any]:
    """:func:`mix` of each entry (of ``keys``, by default every entry of ``clean``)."""
    return {k: mix(clean[k], adversarial[k], weight) for k in (clean if keys is None else keys)}
