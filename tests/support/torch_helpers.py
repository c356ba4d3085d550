"""Shared pieces of the torch backend tests: specs that exercise the backend's corners."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from paths import XOR

import graphspec as gs

# CUDA tests carry the `cuda` marker (select them with -m cuda) and skip without a GPU.
cuda = pytest.mark.cuda
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")

# Ids that are nn.Module attributes (train, eval, to, float) must still work; a parameter
# shared by two nodes; batch norm (state), dropout (noise), integer class labels.
FEATURES = """\
graphspec: 1
name: torch-features
seed: 3
inputs:
  x: [batch, 4]
  label: {shape: [batch], dtype: int}
graph:
  - {id: train, op: linear, in: x, units: 6}
  - {id: eval, op: batch_norm, momentum: 0.2}
  - {id: to, op: tanh}
  - {id: float, op: dropout, p: 0.25}
  - {id: head, op: linear, units: 3}
  - {id: twin, op: linear, in: to, units: 3, params: {weight: head.weight}}
  - {id: logits, op: add, in: [head, twin]}
outputs: [logits]
loss:
  - {op: cross_entropy, in: [logits, label]}
  - {op: l2_penalty, weight: 1.0e-3}
train:
  data: {source: blobs, classes: 3, features: 4, samples: 256}
  optimizer: {name: adam, lr: 0.01, groups: [{params: [biases], lr: 0.02, weight_decay: 0.0}]}
  schedule: {name: cosine, warmup: 2, t_max: 10}
  clip_grad_norm: 1.0
  epochs: 5
  batch_size: 32
  metrics: [accuracy]
"""


def features_ir() -> gs.IR:
    return gs.build(gs.loads(FEATURES, "<features>"))


def xor_ir() -> gs.IR:
    return gs.build(gs.load(XOR))


def features_batch(n: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(n, 4)), "label": rng.integers(0, 3, size=n)}


def xor_batch(n: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    return {"x": x, "y": (x[:, :1] * x[:, 1:] > 0).astype(float)}


def dropout_noise(n: int = 16, seed: int = 1) -> dict[str, np.ndarray]:
    return {"float": np.random.default_rng(seed).random((n, 6))}


def max_rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))) if a.size else 0.0
