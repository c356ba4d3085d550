"""Initializers, drawn once by the core from the spec's seed and handed to every backend.

An initializer is named in the spec as a string (``glorot_uniform``) or a mapping with
options (``{name: uniform, a: 0.5}``).  Scaled initializers read the fan-in and fan-out the
op declared for the parameter.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from graphspec.errors import SpecError, did_you_mean
from graphspec.ir.graph import IR
from graphspec.ops.registry import ParamDecl

Init = Callable[..., np.ndarray]
INITIALIZERS: dict[str, Init] = {}


def initializer(fn: Init) -> Init:
    INITIALIZERS[fn.__name__] = fn
    return fn


def _fans(decl: ParamDecl) -> tuple[int, int]:
    """The fans the op declared, else read from the shape: a matrix is ``[in, out]``
    (graphspec's layout); rank 3 and up is a convolution kernel ``[out, in, *window]`` (torch's
    and ONNX's layout), each unit seeing ``in * window`` inputs and feeding ``out * window``.
    Ops with another kernel layout (conv_transpose2d's ``[in, out/groups, *window]``) declare
    their fans."""
    shape = decl.shape
    if len(shape) >= 3:
        window = math.prod(shape[2:])
        fan_in, fan_out = shape[1] * window, shape[0] * window
    else:
        fan_in, fan_out = (shape[0], shape[-1]) if shape else (1, 1)
    return int(decl.fan_in or fan_in), int(decl.fan_out or fan_out)


@initializer
def zeros(rng: np.random.Generator, decl: ParamDecl) -> np.ndarray:
    return np.zeros(decl.shape)


@initializer
def ones(rng: np.random.Generator, decl: ParamDecl) -> np.ndarray:
    return np.ones(decl.shape)


@initializer
def constant(rng: np.random.Generator, decl: ParamDecl, value: Any = 0.0) -> np.ndarray:
    """A number, or an array (nested lists) broadcast to the shape (the ``constant`` op)."""
    return np.broadcast_to(np.asarray(value, dtype=np.float64), decl.shape).copy()


@initializer
def uniform(rng: np.random.Generator, decl: ParamDecl, a: float = 0.05) -> np.ndarray:
    """U(-a, a)."""
    return rng.uniform(-a, a, size=decl.shape)


@initializer
def normal(
    rng: np.random.Generator, decl: ParamDecl, std: float = 0.05, mean: float = 0.0
) -> np.ndarray:
    """N(mean, std^2)."""
    return rng.normal(mean, std, size=decl.shape)


@initializer
def glorot_uniform(rng: np.random.Generator, decl: ParamDecl, gain: float = 1.0) -> np.ndarray:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fi, fo = _fans(decl)
    a = gain * math.sqrt(6.0 / (fi + fo))
    return rng.uniform(-a, a, size=decl.shape)


@initializer
def glorot_normal(rng: np.random.Generator, decl: ParamDecl, gain: float = 1.0) -> np.ndarray:
    """N(0, gain^2 * 2 / (fan_in + fan_out))."""
    fi, fo = _fans(decl)
    return rng.normal(0.0, gain * math.sqrt(2.0 / (fi + fo)), size=decl.shape)


@initializer
def he_uniform(rng: np.random.Generator, decl: ParamDecl) -> np.ndarray:
    """U(-a, a) with a = sqrt(6 / fan_in) (He et al., 2015: keeps ReLU variance)."""
    fi, _ = _fans(decl)
    a = math.sqrt(6.0 / fi)
    return rng.uniform(-a, a, size=decl.shape)


@initializer
def he_normal(rng: np.random.Generator, decl: ParamDecl) -> np.ndarray:
    """N(0, 2 / fan_in)."""
    fi, _ = _fans(decl)
    return rng.normal(0.0, math.sqrt(2.0 / fi), size=decl.shape)


@initializer
def lecun_normal(rng: np.random.Generator, decl: ParamDecl) -> np.ndarray:
    """N(0, 1 / fan_in)."""
    fi, _ = _fans(decl)
    return rng.normal(0.0, math.sqrt(1.0 / fi), size=decl.shape)


@initializer
def orthogonal(
    rng: np.random.Generator, decl: ParamDecl, gain: float = 1.0, blocks: int = 1
) -> np.ndarray:
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian (Saxe et al.);
    ``blocks``: the first axis split into that many equal blocks, each orthogonal on its own
    (a recurrent layer's gate blocks, as Keras initializes its recurrent kernel)."""
    shape = decl.shape
    if len(shape) < 2:
        raise ValueError("orthogonal initialization needs a parameter of rank >= 2")
    if blocks < 1 or shape[0] % blocks:
        raise ValueError(f"orthogonal: blocks ({blocks}) must divide the first axis ({shape[0]})")
    rows, cols = shape[0] // blocks, math.prod(shape[1:])
    out = []
    for _ in range(blocks):
        a = rng.normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))  # make the decomposition unique
        if rows < cols:
            q = q.T
        out.append(gain * q[:rows, :cols])
    return np.concatenate(out).reshape(shape)


@initializer
def unit_forget_bias(rng: np.random.Generator, decl: ParamDecl, value: float = 1.0) -> np.ndarray:
    """An LSTM bias in torch's gate order ``i, f, g, o``: zeros, and ``value`` in the forget
    gate's block (the second quarter), as Keras's ``unit_forget_bias`` (Jozefowicz et al.)."""
    if len(decl.shape) != 1 or decl.shape[0] % 4:
        raise ValueError("unit_forget_bias needs a vector of 4 gate blocks")
    out = np.zeros(decl.shape)
    n = decl.shape[0] // 4
    out[n : 2 * n] = value
    return out


def parse(init: str | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(init, str):
        return init, {}
    if not isinstance(init, dict):
        raise ValueError(f"an initializer is a name or a mapping with a 'name', got {init!r}")
    opts = dict(init)
    name = opts.pop("name", None)
    if not isinstance(name, str):
        raise ValueError("an initializer mapping needs a 'name'")
    return name, opts


def check(init: str | dict[str, Any]) -> str | None:
    """An error message for a bad initializer spec, or None."""
    try:
        name, opts = parse(init)
    except ValueError as e:
        return str(e)
    if name not in INITIALIZERS:
        hint = did_you_mean(name, INITIALIZERS)
        return f"unknown initializer '{name}'" + (f"; {hint}" if hint else "")
    allowed = _options(name)
    for k, v in opts.items():
        if k not in allowed:
            takes = ", ".join(allowed) or "none"
            return f"initializer '{name}' has no option '{k}' (it takes: {takes})"
        if not _finite(v):
            return f"initializer '{name}': option '{k}' must be finite, got {v!r}"
    return None


def _finite(value: Any) -> bool:
    """False for a float (or one in a nested list) that is inf or NaN, or an int too large to
    be a float; other values are left to the initializer's own checks."""
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return True
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


@functools.cache
def _options(name: str) -> list[str]:
    """The options an initializer takes (its keyword arguments after ``rng, decl``); cached:
    ``inspect.signature`` costs more than the rest of building a node."""

    return list(inspect.signature(INITIALIZERS[name]).parameters)[2:]


def init_params(ir: IR, seed: int | None = None) -> dict[str, np.ndarray]:
    """Initial values of every parameter and state buffer, float64, from ``seed``.

    Each parameter draws from its own stream keyed by its name, so adding a node does not
    change the initial values of the others.
    """
    base = ir.seed if seed is None else seed
    out: dict[str, np.ndarray] = {}
    for pid in ir.params + ir.state:
        node = ir.param(pid)
        msg = check(node.init)
        if msg:
            raise SpecError(f"parameter '{pid}': {msg}", node.src)
        name, opts = parse(node.init)
        key = int.from_bytes(hashlib.sha256(pid.encode()).digest()[:8], "little")
        rng = np.random.default_rng([base & 0xFFFFFFFF, key & 0xFFFFFFFF, key >> 32])
        try:
            value = INITIALIZERS[name](rng, node.decl, **opts)
        except (TypeError, ValueError) as e:
            raise SpecError(f"parameter '{pid}': {e}", node.src) from None
        out[pid] = np.asarray(value, dtype=np.float64).reshape(node.decl.shape)
        if node.decl.zero_rows:  # an embedding's padding row, zero whatever the initializer
            out[pid][list(node.decl.zero_rows)] = 0.0
    return out
