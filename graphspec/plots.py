"""Pictures of runs: curves, decision boundaries, gradient norms, robustness, predictive bands.

Every function takes plain data (histories, arrays) and writes one PNG; :func:`report`
finds what a run directory holds and draws all of it.  matplotlib runs headless (Agg).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from graphspec.errors import GraphspecError

History = list[dict[str, Any]]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_history(run_dir: str | Path) -> History:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise GraphspecError(f"{run_dir} is not a run directory (no metrics.jsonl)")
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def _metric_names(histories: dict[str, History]) -> list[str]:
    """Base metric names (``loss``, ``accuracy``...) seen with a train_ or val_ prefix."""
    names: dict[str, None] = {}
    for hist in histories.values():
        for row in hist:
            for k, v in row.items():
                if isinstance(v, int | float) and k.startswith(("train_", "val_")):
                    names.setdefault(k.split("_", 1)[1], None)
    return list(names)


def plot_curves(histories: dict[str, History], out: str | Path, title: str = "") -> Path:
    """Loss and metric curves, one panel per metric, every run overlaid
    (solid: training, dashed: validation)."""
    plt = _plt()
    names = _metric_names(histories) or ["loss"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes[0], names):
        for i, (label, hist) in enumerate(histories.items()):
            c = colors[i % len(colors)]
            epochs = [r.get("epoch", j) for j, r in enumerate(hist)]
            for split, style in (("train", "-"), ("val", "--")):
                ys = [r.get(f"{split}_{name}") for r in hist]
                if any(y is not None for y in ys):
                    ax.plot(epochs, [np.nan if y is None else y for y in ys], style, color=c,
                            label=f"{label} ({split})" if len(histories) > 1 else split)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        if "loss" in name and _all_positive(histories, name):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, out)


def _all_positive(histories: dict[str, History], name: str) -> bool:
    vals = [r[k] for h in histories.values() for r in h for k in (f"train_{name}", f"val_{name}")
            if isinstance(r.get(k), int | float)]
    return bool(vals) and min(vals) > 0


def plot_decision_boundary(
    predict: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    out: str | Path,
    title: str = "",
    resolution: int = 200,
) -> Path:
    """The classifier's decision regions over a 2-D plane with the data on top (as in the
    lecture's figures). ``predict`` maps [n, 2] points to class scores [n, k] or logits [n, 1]."""
    plt = _plt()
    if x.ndim != 2 or x.shape[1] != 2:
        raise GraphspecError(f"a decision boundary needs 2-D inputs, got shape {x.shape}")
    pad = 0.1 * (x.max(0) - x.min(0)) + 1e-9
    lo, hi = x.min(0) - pad, x.max(0) + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    scores = np.asarray(predict(grid))
    if scores.ndim == 1 or scores.shape[-1] == 1:
        z = (scores.reshape(-1) > 0).astype(float)
        prob = 1.0 / (1.0 + np.exp(-np.clip(scores.reshape(-1), -50, 50)))
    else:
        z = scores.argmax(-1).astype(float)
        prob = None
    labels = np.asarray(y)
    if labels.ndim > 1 and labels.shape[-1] > 1:
        labels = labels.argmax(-1)
    labels = labels.reshape(-1)
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    if prob is not None:
        ax.contourf(gx, gy, prob.reshape(gx.shape), levels=20, cmap="RdBu_r", alpha=0.55)
        ax.contour(gx, gy, prob.reshape(gx.shape), levels=[0.5], colors="k", linewidths=1.2)
    else:
        ax.contourf(gx, gy, z.reshape(gx.shape), alpha=0.35, cmap="tab10",
                    levels=np.arange(z.max() + 2) - 0.5)
    ax.scatter(x[:, 0], x[:, 1], c=labels, cmap="RdBu_r" if prob is not None else "tab10",
               edgecolors="k", linewidths=0.4, s=14)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(title or "decision boundary")
    return _save(fig, out)


def plot_grad_norms(norms: dict[str, dict[str, float]], out: str | Path, title: str = "") -> Path:
    """Gradient norm per layer (parameters in graph order), one line per run: vanishing
    gradients show as a slope towards the input layers."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for label, per_param in norms.items():
        names = [k for k in per_param if k.endswith("weight")] or list(per_param)
        ax.semilogy(range(len(names)), [max(per_param[k], 1e-30) for k in names], "o-",
                    label=label, markersize=3)
    ax.set_xlabel("layer (input → output)")
    ax.set_ylabel("‖∂L/∂W‖")
    ax.set_title(title or "gradient norm per layer")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _save(fig, out)


def plot_robustness(curves: dict[str, tuple[Sequence[float], Sequence[float]]], out: str | Path,
                    title: str = "") -> Path:
    """Accuracy against the adversarial budget ε, one line per model."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    for label, (eps, acc) in curves.items():
        ax.plot(eps, acc, "o-", label=label)
    ax.set_xlabel("ε")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(title or "accuracy under FGSM")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out)


def plot_predictive_band(
    x_train: np.ndarray, y_train: np.ndarray, x: np.ndarray, mean: np.ndarray, std: np.ndarray,
    out: str | Path, title: str = "",
) -> Path:
    """1-D regression: data, predictive mean and ±2σ band (Monte-Carlo over the model's noise)."""
    plt = _plt()
    order = np.argsort(x.reshape(-1))
    xs, m, s = x.reshape(-1)[order], mean.reshape(-1)[order], std.reshape(-1)[order]
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    ax.fill_between(xs, m - 2 * s, m + 2 * s, alpha=0.25, label="±2σ")
    ax.plot(xs, m, lw=1.5, label="predictive mean")
    ax.scatter(x_train.reshape(-1), y_train.reshape(-1), s=8, c="k", label="data")
    ax.set_title(title or "predictive uncertainty")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def _save(fig: Any, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    _plt().close(fig)
    return out


def report(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> list[Path]:
    """Draw everything the run directories hold; returns the PNGs written.

    Curves of all runs are overlaid in one figure; per-run artefacts (grad_norms.json,
    robustness.json, boundary.npz, predictive.npz) get a figure each.
    """
    if not run_dirs:
        raise GraphspecError("report needs at least one run directory")
    dirs = [Path(d) for d in run_dirs]
    out_dir = Path(out) if out is not None else dirs[0]
    histories = {d.name if len(dirs) > 1 else "run": read_history(d) for d in dirs}
    written = [plot_curves(histories, out_dir / "curves.png")]
    norms = {d.name: json.loads((d / "grad_norms.json").read_text())
             for d in dirs if (d / "grad_norms.json").is_file()}
    if norms:
        written.append(plot_grad_norms(norms, out_dir / "grad_norms.png"))
    robust = {}
    for d in dirs:
        if (d / "robustness.json").is_file():
            r = json.loads((d / "robustness.json").read_text())
            robust[d.name] = (r["epsilons"], r["accuracy"])
    if robust:
        written.append(plot_robustness(robust, out_dir / "robustness.png"))
    return written
