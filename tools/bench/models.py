"""The benchmark models: the same MLP as a graphspec spec and written by hand in NumPy.

An architecture is a list of layer sizes: ``sizes[0]`` inputs, a ReLU after every hidden
linear layer, ``sizes[-1]`` outputs; a softmax cross-entropy loss on integer classes (a
single output: binary cross-entropy on logits).  The hand-written NumPy MLP is what a careful
person writes: weights ``[in, out]`` like the spec's ``linear``, activations computed in
place, the ReLU mask taken from the kept activation, the softmax cotangent written over the
logits, and ``W -= lr * gW`` updates in place.  ``matmul_bound`` runs the same matrix
products (forward, weight gradients, input gradients but the first layer's) into
preallocated buffers and nothing else: the floor no training step can go under.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Arch:
    name: str
    sizes: tuple[int, ...]
    batch: int

    @property
    def classes(self) -> int:
        return self.sizes[-1]

    @property
    def binary(self) -> bool:
        return self.sizes[-1] == 1

    def describe(self) -> str:
        s = self.sizes
        hidden = s[1:-1]
        if len(hidden) > 3 and len(set(hidden)) == 1:
            body = f"{s[0]}-{hidden[0]}x{len(hidden)}-{s[-1]}"
        else:
            body = "-".join(map(str, s))
        return f"{body}, batch {self.batch}"


ARCHS = {
    "big": Arch("big", (784, 1024, 1024, 1024, 1024, 10), 256),
    "small": Arch("small", (2, 16, 16, 1), 64),
    # 50 hidden layers of 64 (and a 10-class read-out).
    "deep": Arch("deep", (64,) * 51 + (10,), 128),
}

LR = 0.01


def spec_text(arch: Arch, lr: float = LR, momentum: float = 0.0) -> str:
    layers = []
    prev = "x"
    for i, units in enumerate(arch.sizes[1:-1]):
        layers.append(f"  - {{id: fc{i}, op: linear, in: {prev}, units: {units}}}")
        layers.append(f"  - {{id: act{i}, op: relu}}")
        prev = f"act{i}"
    if arch.binary:
        y, loss = "  y: [batch, 1]", "bce_with_logits"
    else:
        y, loss = "  y: {shape: [batch], dtype: int}", "cross_entropy"
    return "\n".join([
        "graphspec: 1",
        f"name: bench-{arch.name}",
        "seed: 0",
        "inputs:",
        f"  x: [batch, {arch.sizes[0]}]",
        y,
        "graph:",
        *layers,
        f"  - {{id: logits, op: linear, units: {arch.classes}}}",
        "outputs: [logits]",
        "loss:",
        f"  - {{op: {loss}, in: [logits, y]}}",
        "train:",
        "  data: {source: blobs}",
        f"  optimizer: {{name: sgd, lr: {lr}, momentum: {momentum}}}",
        f"  batch_size: {arch.batch}",
    ]) + "\n"


def layer_names(arch: Arch) -> list[str]:
    return [f"fc{i}" for i in range(len(arch.sizes) - 2)] + ["logits"]


def dataset(arch: Arch, rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, arch.sizes[0]))
    if arch.binary:
        y = (rng.random((rows, 1)) < 0.5).astype(np.float64)
    else:
        y = rng.integers(0, arch.classes, size=rows)
    return {"x": x, "y": y}


class HandNumpyMLP:
    """A ReLU MLP with hand-written backprop and in-place SGD."""

    def __init__(self, arch: Arch, params: dict[str, np.ndarray], dtype: str, lr: float = LR):
        self.arch = arch
        self.dtype = np.dtype(dtype)
        self.lr = lr
        names = layer_names(arch)
        self.W = [np.array(params[f"{n}.weight"], dtype=self.dtype) for n in names]
        self.b = [np.array(params[f"{n}.bias"], dtype=self.dtype) for n in names]

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        W, b, lr = self.W, self.b, self.lr
        last = len(W) - 1
        acts = [x]
        h = x
        for i in range(last):
            h = h @ W[i]
            h += b[i]
            np.maximum(h, 0, out=h)
            acts.append(h)
        z = h @ W[last]
        z += b[last]
        n = z.shape[0]
        if self.arch.binary:
            # loss = mean(softplus(z) - y z) ; dL/dz = (sigmoid(z) - y) / n
            loss = float(np.mean(np.logaddexp(0, z) - y * z))
            g = np.exp(-np.logaddexp(0, -z))
            g -= y
            g *= 1.0 / z.size
        else:
            # loss = mean(logsumexp(z) - z[y]) ; dL/dz = (softmax(z) - onehot(y)) / n
            rows = np.arange(n)
            z -= z.max(axis=1, keepdims=True)
            picked = z[rows, y]
            np.exp(z, out=z)
            s = z.sum(axis=1, keepdims=True)
            loss = float(np.mean(np.log(s[:, 0]) - picked))
            z /= s
            z[rows, y] -= 1
            z *= 1.0 / n
            g = z
        for i in range(last, -1, -1):
            a = acts[i]
            gw = a.T @ g
            gb = g.sum(axis=0)
            if i > 0:
                g = g @ W[i].T
                g *= a > 0
            W[i] -= lr * gw
            b[i] -= lr * gb
        return loss


class MatmulBound:
    """Only the step's matrix products, into preallocated buffers."""

    def __init__(self, arch: Arch, params: dict[str, np.ndarray], dtype: str):
        dt = np.dtype(dtype)
        names = layer_names(arch)
        B = arch.batch
        self.W = [np.array(params[f"{n}.weight"], dtype=dt) for n in names]
        self.h = [np.zeros((B, w.shape[1]), dt) for w in self.W]
        self.gw = [np.zeros_like(w) for w in self.W]
        self.gx = [np.zeros((B, w.shape[0]), dt) for w in self.W]

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        W, h, gw, gx = self.W, self.h, self.gw, self.gx
        a = x
        for i in range(len(W)):
            np.matmul(a, W[i], out=h[i])
            a = h[i]
        g = h[-1]
        for i in range(len(W) - 1, -1, -1):
            np.matmul((x if i == 0 else h[i - 1]).T, g, out=gw[i])
            if i > 0:
                np.matmul(g, W[i].T, out=gx[i])
                g = gx[i]
        return 0.0
