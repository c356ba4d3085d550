"""Pictures of runs: curves, decision boundaries, gradient norms, robustness, predictive bands.

Every ``plot_*`` function takes plain data (histories, arrays, the JSON a procedure wrote)
and writes one PNG; several runs are drawn into one figure (overlaid lines, or one panel
per run) so that variants compare at a glance.  :func:`report` finds what run directories
hold (``metrics.jsonl``, and what ``analysis.json`` indexes) and draws all of it.
matplotlib runs headless (Agg).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from graphspec import regular_file
from graphspec.analysis.decision_boundary import class_labels
from graphspec.analysis.runner import read_index
from graphspec.errors import GraphspecError, Location
from graphspec.runs import table as runtable
from graphspec.runs.table import best_epochs
from graphspec.train.runlog import METRICS, SUMMARY, read_json, read_metrics, read_summary

History = list[dict[str, Any]]
DPI = 110
PANEL = (4.2, 3.4)  # inches per panel: readable at 100% in a browser or a PR


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(n: int) -> list[Any]:
    plt = _plt()
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if n <= len(cycle):
        return list(cycle[:n])
    return [plt.get_cmap("viridis")(i / max(n - 1, 1)) for i in range(n)]


def _save(fig: Any, out: str | Path) -> Path:
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(out, dpi=DPI)
    except OSError as e:  # a full disk or a read-only folder: say which file
        raise GraphspecError(f"cannot write {out}: {e.strerror or e}", Location(str(out))) from None
    finally:
        _plt().close(fig)
    return out


def _panels(n: int, title: str = "", size: tuple[float, float] = PANEL) -> tuple[Any, list[Any]]:
    """A figure of ``n`` panels, at most 4 a row."""
    plt = _plt()
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows + 0.3 * bool(
        title)), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig, flat[:n]


# ---- run directories -----------------------------------------------------------------------


def read_history(run_dir: str | Path) -> History:
    """The per-epoch records of a run's ``metrics.jsonl``, strictly checked."""

    if not (Path(run_dir) / METRICS).is_file():
        raise GraphspecError(f"{run_dir} is not a run directory (no {METRICS})",
                             Location(str(run_dir)),
                             hint="pass the --out directory of 'graphspec train'")
    return read_metrics(Path(run_dir))


def _read_json(path: Path) -> Any:

    return read_json(path)


def run_labels(dirs: Sequence[Path]) -> list[str]:
    """Short, distinct labels: the folder names, with their parents where names repeat."""
    labels = [d.name or str(d) for d in dirs]
    if len(set(labels)) < len(labels):
        labels = [f"{d.parent.name}/{d.name}" for d in dirs]
    if len(set(labels)) < len(labels):
        labels = [str(d) for d in dirs]
    return labels


# ---- curves ---------------------------------------------------------------------------------


def _metric_names(histories: dict[str, History]) -> list[str]:
    """Base names (``loss``, ``accuracy``, a loss term...) seen with a train_/val_ prefix,
    loss first, then metrics, then the terms; a term equal to the loss is left out."""
    names: dict[str, None] = {}
    for hist in histories.values():
        for row in hist:
            for k, v in row.items():
                if isinstance(v, int | float) and k.startswith(("train_", "val_")):
                    names.setdefault(k.split("_", 1)[1], None)
    # A term equal to the loss repeats its panel; one always 0 (a REINFORCE surrogate,
    # whose value is zero by construction) says nothing.
    keep = [n for n in names if n == "loss" or not (
        _same_as_loss(histories, n) or _always_zero(histories, n))]
    return sorted(keep, key=lambda n: (n != "loss", "accuracy" not in n))


def _always_zero(histories: dict[str, History], name: str) -> bool:
    return all(r.get(f"{sp}_{name}") in (None, 0, 0.0) for h in histories.values() for r in h
               for sp in ("train", "val"))


def _same_as_loss(histories: dict[str, History], name: str) -> bool:
    for hist in histories.values():
        for row in hist:
            for split in ("train", "val"):
                a, b = row.get(f"{split}_{name}"), row.get(f"{split}_loss")
                if a is not None and (b is None or not math.isclose(a, b, rel_tol=1e-9,
                                                                    abs_tol=1e-12)):
                    return False
    return True


def plot_curves(histories: dict[str, History], out: str | Path, title: str = "",
                best: dict[str, int | None] | None = None) -> Path:
    """Loss and metric curves, one panel per quantity, every run overlaid (a color per run;
    solid: training, dashed: validation); ``best`` (by run) marks the best epoch, the one
    restore-best restores, with a dotted line."""
    from matplotlib.lines import Line2D

    names = _metric_names(histories) or ["loss"]
    fig, axes = _panels(len(names), title)
    colors = _colors(len(histories))
    for ax, name in zip(axes, names):
        for c, (label, hist) in zip(colors, histories.items()):
            epochs = [r.get("epoch", j + 1) for j, r in enumerate(hist)]
            for split, style in (("train", "-"), ("val", "--")):
                ys = [r.get(f"{split}_{name}") for r in hist]
                if any(y is not None for y in ys):
                    ax.plot(epochs, [np.nan if y is None else y for y in ys], style, color=c,
                            lw=1.4, marker="o" if len(epochs) == 1 else None, ms=3)
            mark = (best or {}).get(label)
            if mark is not None:
                ax.axvline(mark, color=c, ls=":", lw=1.0)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(name)
        if "loss" in name and _spans_decades(histories, name):
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    handles = [Line2D([], [], color="0.3", ls="-", label="train"),
               Line2D([], [], color="0.3", ls="--", label="validation")]
    if any(v is not None for v in (best or {}).values()):
        handles.append(Line2D([], [], color="0.3", ls=":", label="best epoch"))
    if len(histories) > 1:
        handles = [Line2D([], [], color=c, lw=2, label=label)
                   for c, label in zip(colors, histories)] + handles
    axes[0].legend(handles=handles, fontsize=7)
    return _save(fig, out)


def _spans_decades(histories: dict[str, History], name: str) -> bool:
    vals = [r[k] for h in histories.values() for r in h for k in (f"train_{name}", f"val_{name}")
            if isinstance(r.get(k), int | float) and math.isfinite(r[k])]
    return bool(vals) and min(vals) > 0 and max(vals) / min(vals) > 20


def plot_grad_norm_history(histories: dict[str, History], out: str | Path,
                           title: str = "") -> Path | None:
    """Per-parameter gradient norms over training (``train.log_grad_norms``), a panel per
    run, weights coloured from the input layer (dark) to the output layer (light)."""
    runs = {k: h for k, h in histories.items()
            if h and any(key.startswith("grad_norm/") for key in h[-1])}
    if not runs:
        return None
    plt = _plt()
    fig, axes = _panels(len(runs), title or "gradient norm per parameter during training")
    for ax, (label, hist) in zip(axes, runs.items()):
        keys = [k for k in hist[-1] if k.startswith("grad_norm/")]
        shown = [k for k in keys if not k.endswith("bias")] or keys
        cmap = plt.get_cmap("viridis")
        for i, k in enumerate(shown):
            ys = [max(float(r.get(k, np.nan)), 1e-30) for r in hist]
            ax.semilogy([r.get("epoch", j + 1) for j, r in enumerate(hist)], ys, lw=1,
                        color=cmap(0.85 * i / max(len(shown) - 1, 1)),  # no pale yellow
                        label=k.split("/", 1)[1] if len(shown) <= 8 else None)
        ax.set_title(label if len(runs) > 1 else "")
        ax.set_xlabel("epoch")
        ax.set_ylabel("‖∂L/∂θ‖ (last step)")
        ax.grid(alpha=0.3, which="both")
        if len(shown) <= 8:
            ax.legend(fontsize=6)
    return _save(fig, out)


# ---- analysis results ---------------------------------------------------------------------


def _when(results: Any) -> str:
    """The title's suffix, ' at initialization' or ' after training', when every result
    says the same ``at``."""
    at = {str(r.get("at")) for r in results if isinstance(r, dict) and "at" in r}
    return {"init": " at initialization", "end": " after training"}.get(
        next(iter(at)) if len(at) == 1 else "", "")


def plot_grad_norms(norms: dict[str, Any], out: str | Path, title: str = "") -> Path:
    """Gradient norm per layer (weights in graph order, input to output), one line per run:
    vanishing gradients show as a slope down towards the input layers.

    ``norms`` maps a run label to a ``grad_norms`` result (``{"norms": ..., "weights":
    ...}``) or to a plain ``{param: norm}`` mapping."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for (label, result), c in zip(norms.items(), _colors(len(norms))):
        per_param = result.get("norms", result)
        names = list(result.get("weights") or []) or [
            k for k in per_param if k.endswith("weight")] or list(per_param)
        ys = [max(float(per_param[k]), 1e-30) for k in names]
        # The ratio output/input layer is the headline of a vanishing-gradient picture.
        ratio = f" (last/first ×{ys[-1] / ys[0]:.2g})" if len(ys) > 1 else ""
        ax.semilogy(range(1, len(names) + 1), ys, "o-", color=c, label=label + ratio, ms=3.5)
    ax.set_xlabel("layer (input → output)")
    ax.set_ylabel("‖∂L/∂W‖")
    when = _when(norms.values())
    ax.set_title(title or f"gradient norm per layer{when}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _save(fig, out)


def plot_state_grads(results: dict[str, Any], out: str | Path, title: str = "") -> Path:
    """``‖∂L/∂h_t‖`` over the steps of a recurrent op (``state_grads`` results), one line
    per run, log scale: a gradient that vanishes back through time falls towards t = 0."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for (label, result), c in zip(results.items(), _colors(len(results))):
        ys = [max(float(v), 1e-300) for v in result["norms"]]
        op = str(result.get("op", ""))
        op = f" ({op})" if len(results) > 1 and op and op not in label else ""
        ax.semilogy(range(len(ys)), ys, "-", color=c, lw=1.6, label=label + op)
    ax.set_xlabel("step t (the state step t + 1 reads; t = 0: the initial state)")
    ax.set_ylabel("‖∂L/∂h_t‖ (mean over sequences)")
    when = _when(results.values())
    ax.set_title(title or f"gradient carried back through time{when}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _save(fig, out)


def plot_robustness(curves: dict[str, Any], out: str | Path, title: str = "") -> Path:
    """Accuracy against the FGSM budget ε, one line per model.  ``curves`` maps a label to
    a ``fgsm`` result or to ``(epsilons, accuracy)``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.0, 3.8))
    metric = "accuracy"
    for label, value in curves.items():
        if isinstance(value, dict):
            eps, acc = value["epsilons"], value["accuracy"]
            metric = value.get("metric", metric)
        else:
            eps, acc = value
        ax.plot(eps, acc, "o-", label=label, ms=4)
    ax.set_xlabel("ε (L∞ budget of the perturbation)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_ylim(0, 1.02)
    ax.set_title(title or "accuracy under FGSM")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out)


def plot_estimator_variance(results: dict[str, dict[str, Any]], out: str | Path,
                            title: str = "") -> Path:
    """The gradient estimate's variance per parameter (log scale), a bar per run."""
    plt = _plt()
    params = list(dict.fromkeys(p for r in results.values() for p in r.get("params", {})))
    fig, ax = plt.subplots(figsize=(max(4.8, 1.1 * len(params) * max(len(results), 1) + 2),
                                    3.8))
    width = 0.8 / max(len(results), 1)
    for i, ((label, r), c) in enumerate(zip(results.items(), _colors(len(results)))):
        ys = [max(r["params"].get(p, {}).get("variance", np.nan), 1e-30) for p in params]
        xs = np.arange(len(params)) + (i - (len(results) - 1) / 2) * width
        ax.bar(xs, ys, width, color=c,
               label=f"{label} (total {r.get('total_variance', float('nan')):.3g})")
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi * (hi / lo) ** 0.25)  # headroom for the legend above the bars
    ax.set_xticks(range(len(params)), params, rotation=30 if len(params) > 3 else 0,
                  ha="right" if len(params) > 3 else "center", fontsize=8)
    ax.set_ylabel("Var[∂L/∂θ] per element")
    ax.set_title(title or "variance of the gradient estimate")
    ax.grid(alpha=0.3, axis="y", which="both")
    ax.legend(fontsize=7)
    return _save(fig, out)


# Class 0 blue, class 1 red, saturated: the ends of the background's pale RdBu_r.
_BINARY_COLORS = ("#2166ac", "#c0392b")


def _boundary_panel(ax: Any, gx: np.ndarray, gy: np.ndarray, scores: np.ndarray, kind: str,
                    data: list[tuple[np.ndarray, np.ndarray | None, str]]) -> None:
    cmap: Any
    mx, my = np.meshgrid(gx, gy)
    if kind == "classes":
        e = np.exp(scores - scores.max(-1, keepdims=True))
        prob = e / e.sum(-1, keepdims=True)
        z = prob.argmax(-1)
        k = scores.shape[-1]
        ax.contourf(mx, my, z, levels=np.arange(k + 1) - 0.5, cmap="tab10", vmin=-0.5,
                    vmax=9.5, alpha=0.25)
        ax.contour(mx, my, z, levels=np.arange(k) + 0.5, colors="k", linewidths=1.0)
        cmap, vmin, vmax = "tab10", -0.5, 9.5
    else:
        s = scores[..., 0]
        p = 1 / (1 + np.exp(-np.clip(s, -50, 50))) if kind == "logit" else np.clip(s, 0, 1)
        # A pale background of P(class 1), so that the points stay the loudest thing.
        ax.contourf(mx, my, p, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.35)
        ax.contour(mx, my, p, levels=[0.5], colors="k", linewidths=1.4)
        from matplotlib.colors import ListedColormap

        cmap, vmin, vmax = ListedColormap(_BINARY_COLORS), -0.5, 1.5
    for x, y, marker in data:
        ax.scatter(x[:, 0], x[:, 1], c="0.5" if y is None else y, cmap=cmap, vmin=vmin,
                   vmax=vmax, marker=marker, edgecolors="white", linewidths=0.5, s=18)
    ax.set_xlim(gx[0], gx[-1])
    ax.set_ylim(gy[0], gy[-1])
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")


def plot_boundaries(panels: dict[str, Any], out: str | Path, title: str = "") -> Path:
    """Decision regions of 2-D classifiers with their data, one panel per run.  Each value
    is a ``decision_boundary`` result (boundary.npz as a mapping); training points are
    circles, validation points triangles."""
    fig, axes = _panels(len(panels), title, size=(4.2, 4.0))
    for ax, (label, b) in zip(axes, panels.items()):
        data = [(np.asarray(b[f"x_{sp}"]), np.asarray(b[f"y_{sp}"]) if f"y_{sp}" in b else None,
                 m) for sp, m in (("train", "o"), ("val", "^")) if f"x_{sp}" in b]
        _boundary_panel(ax, np.asarray(b["gx"]), np.asarray(b["gy"]), np.asarray(b["scores"]),
                        str(b["kind"]), data)
        ax.set_title(label if len(panels) > 1 else (title or "decision boundary"))
    return _save(fig, out)


def plot_decision_boundary(
    predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray,
    out: str | Path, title: str = "", resolution: int = 200,
) -> Path:
    """The decision regions of ``predict`` (``[n, 2]`` points to a logit ``[n, 1]`` or class
    scores ``[n, k]``) over the plane of ``x``, with the data coloured by ``y``."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != 2:
        raise GraphspecError(f"a decision boundary needs 2-D inputs, got shape {x.shape}")
    pad = 0.1 * (x.max(0) - x.min(0)) + 1e-9
    gx = np.linspace(x[:, 0].min() - pad[0], x[:, 0].max() + pad[0], resolution)
    gy = np.linspace(x[:, 1].min() - pad[1], x[:, 1].max() + pad[1], resolution)
    mx, my = np.meshgrid(gx, gy)
    scores = np.asarray(predict(np.column_stack([mx.ravel(), my.ravel()])), dtype=float)
    scores = scores.reshape(resolution, resolution, -1)

    panel = {"gx": gx, "gy": gy, "scores": scores, "kind": "logit" if scores.shape[-1] == 1
             else "classes", "x_train": x, "y_train": class_labels(y)}
    return plot_boundaries({title or "decision boundary": panel}, out, title)


def plot_predictive_band(
    x_train: np.ndarray, y_train: np.ndarray, x: np.ndarray, mean: np.ndarray, std: np.ndarray,
    out: str | Path, title: str = "",
) -> Path:
    """1-D regression: data, predictive mean and ±2σ band (Monte-Carlo over the model's noise)."""
    panel = {"x": x, "mean": mean, "std": std, "x_train": x_train, "y_train": y_train,
             "one_d": True}
    return plot_predictive({title or "predictive uncertainty": panel}, out, title)


def plot_predictive(panels: dict[str, Any], out: str | Path, title: str = "") -> Path:
    """Monte-Carlo predictions, one panel per run: for a 1-D input the mean, the ±2σ band,
    a few sampled functions and the data; otherwise a histogram of the predictive σ."""
    fig, axes = _panels(len(panels), title, size=(5.0, 3.6))
    for ax, (label, p) in zip(axes, panels.items()):
        std = np.asarray(p["std"], dtype=float)
        if bool(np.asarray(p.get("one_d", False))):
            x = np.asarray(p["x"], dtype=float).reshape(-1)
            m = np.asarray(p["mean"], dtype=float).reshape(len(x), -1)[:, 0]
            s = std.reshape(len(x), -1)[:, 0]
            ax.fill_between(x, m - 2 * s, m + 2 * s, alpha=0.25, color="C0", label="±2σ")
            draws = np.asarray(p["draws"], dtype=float) if "draws" in p else np.zeros((0,))
            if len(draws) and _rough(draws.reshape(len(draws), len(x), -1)[..., 0], m):
                # Noise drawn per row (dropout masks) makes each pass jagged: its draws are
                # not sample functions, and would only hide the band.
                draws = draws[:0]
            for j, d in enumerate(draws[:10]):
                ax.plot(x, d.reshape(len(x), -1)[:, 0], color="C0", lw=0.5, alpha=0.35,
                        label="samples" if j == 0 else None)
            ax.plot(x, m, color="C0", lw=1.8, label="predictive mean")
            for sp, c in (("train", "k"), ("val", "C3")):
                if f"x_{sp}" in p and f"y_{sp}" in p:
                    ys = np.asarray(p[f"y_{sp}"], dtype=float)
                    ax.scatter(np.asarray(p[f"x_{sp}"]).reshape(-1),
                               ys.reshape(len(ys), -1)[:, 0], s=7, c=c, label=sp, zorder=3)
            ax.set_xlabel("x")
            ax.set_ylabel("prediction")
            ax.legend(fontsize=7)
        else:
            ax.hist(std.reshape(-1), bins=40, color="C0")
            ax.set_xlabel("predictive σ")
            ax.set_ylabel("count")
        ax.set_title(label if len(panels) > 1 else (title or "predictive uncertainty"))
        ax.grid(alpha=0.3)
    return _save(fig, out)


def _rough(draws: np.ndarray, mean: np.ndarray) -> bool:
    """Whether single passes vary along x much more than their mean does."""
    tv = np.abs(np.diff(draws, axis=-1)).sum(-1).mean()
    return bool(tv > 3 * np.abs(np.diff(mean)).sum() + 1e-12)


# ---- report --------------------------------------------------------------------------------


def _load_result(run_dir: Path, entry: dict[str, Any]) -> Any:
    files = [f for f in entry.get("files", []) if (run_dir / f).is_file()]
    if not files:
        return None
    path = run_dir / files[0]
    if path.suffix == ".npz":
        try:
            too_large = regular_file.npz_too_large(path)
            if too_large is not None:
                raise ValueError(f"it unpacks to {too_large:,} bytes, over the "
                                 f"{regular_file.MAX_NPZ_BYTES:,}-byte limit")
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except Exception as e:  # noqa: BLE001 - zip, header and pickle errors alike
            raise GraphspecError(f"cannot read {path}: {e}", Location(str(path)),
                                 hint="the file was damaged; rerun the analysis") from None
    return _read_json(path)


_DRAW: dict[str, Callable[..., Path]] = {
    "grad_norms": plot_grad_norms,
    "fgsm": plot_robustness,
    "decision_boundary": plot_boundaries,
    "mc_predict": plot_predictive,
    "estimator_variance": plot_estimator_variance,
    "state_grads": plot_state_grads,
}


def report(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> list[Path]:
    """Draw everything the run directories hold into ``out`` (default: the first run
    directory); returns the PNGs written.

    Curves of all runs are overlaid in ``curves.png``; each analysis result (indexed by a
    run's ``analysis.json``) becomes ``<name>.png``, with the runs that have it overlaid
    or side by side."""

    if not run_dirs:
        raise GraphspecError("report needs at least one run directory")
    dirs = [Path(d) for d in run_dirs]
    out_dir = Path(out) if out is not None else dirs[0]
    labels = run_labels(dirs) if len(dirs) > 1 else ["run"]
    histories = {label: read_history(d) for label, d in zip(labels, dirs)}
    title = _title(dirs)

    best = dict(zip(labels, best_epochs(dirs)))
    written = [plot_curves(histories, out_dir / "curves.png", title, best)]
    gn = plot_grad_norm_history(histories, out_dir / "grad_norm_history.png")
    if gn is not None:
        written.append(gn)
    # Group each analysis result by its name across runs: one figure per name.
    groups: dict[str, tuple[str, dict[str, Any]]] = {}
    sources: dict[str, list[str]] = {}  # the files each figure is drawn from, for errors
    for label, d in zip(labels, dirs):
        for entry in read_index(d):
            result = _load_result(d, entry)
            proc = str(entry.get("procedure"))
            if result is None or proc not in _DRAW:
                continue
            groups.setdefault(entry["name"], (proc, {}))[1][label] = result
            sources.setdefault(entry["name"], []).append(str(d / entry["files"][0]))
    for name, (proc, results) in groups.items():
        if len(dirs) == 1:
            results = {title or "run": next(iter(results.values()))}
        try:
            written.append(_DRAW[proc](results, out_dir / f"{name}.png"))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            # A result file that parses but is not what the procedure writes (damaged, or
            # edited): an error naming it, not a crash inside matplotlib.
            raise GraphspecError(
                f"cannot draw '{name}': {', '.join(sources[name])} does not hold a {proc} "
                f"result ({type(e).__name__}: {e})", Location(sources[name][0]),
                hint="the file was damaged; rerun the training to write it again") from None
    return written


def _title(dirs: list[Path]) -> str:

    names = {str(read_summary(d).get("name", "")) for d in dirs if (d / SUMMARY).is_file()}
    return names.pop() if len(names) == 1 else ""


def plot_confusion(matrices: dict[str, Any], out: str | Path, title: str = "") -> Path:
    """Each confusion matrix (rows: true class, columns: predicted) as a heat map with counts."""
    fig, axes = _panels(len(matrices), title)
    for ax, (name, m) in zip(axes, matrices.items()):
        m = np.asarray(m)
        ax.imshow(m, cmap="Blues")
        for (i, j), c in np.ndenumerate(m):
            ax.text(j, i, str(int(c)), ha="center", va="center",
                    color="white" if c > m.max() / 2 else "black", fontsize=8)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_xticks(range(len(m)))
        ax.set_yticks(range(len(m)))
        ax.set_title(name)
    return _save(fig, out)


def _tiles(n: int, title: str, extra: int = 0) -> tuple[Any, list[Any]]:
    """A figure of ``n + extra`` small square tiles, at most 8 a row, without axes."""
    plt = _plt()
    cols = min(n + extra, 8)
    rows = math.ceil((n + extra) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.45 * rows + 0.4), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat:
        ax.set_axis_off()
    fig.suptitle(title)
    return fig, flat[: n + extra]


def plot_conv_filters(weight: np.ndarray, out: str | Path, title: str = "") -> Path:
    """A convolution's filters ``[out, in, kh, kw]``, one tile each (summed over the input
    channels), on one diverging scale centred on 0 so that tiles compare."""
    w = np.asarray(weight, dtype=np.float64).sum(axis=1)
    scale = float(np.abs(w).max()) or 1.0
    fig, axes = _tiles(len(w), title or "first-layer filters")
    for k, (ax, f) in enumerate(zip(axes, w)):
        ax.imshow(f, cmap="RdBu_r", vmin=-scale, vmax=scale)
        ax.set_title(str(k), fontsize=8)
    return _save(fig, out)


def plot_feature_maps(image: np.ndarray, maps: np.ndarray, out: str | Path,
                      title: str = "") -> Path:
    """One input image ``[channels, h, w]`` (its channels' mean), then each feature map
    ``[out, h', w']`` a layer computes from it, each map on its own scale."""
    fig, axes = _tiles(len(maps), title or "feature maps", extra=1)
    axes[0].imshow(np.asarray(image, dtype=np.float64).mean(axis=0), cmap="gray_r")
    axes[0].set_title("input", fontsize=8)
    for k, (ax, m) in enumerate(zip(axes[1:], maps)):
        ax.imshow(m, cmap="viridis")
        ax.set_title(str(k), fontsize=8)
    return _save(fig, out)


def plot_sweep(rows: list[dict[str, Any]], path: str, out: Path) -> Path | None:
    """Final metrics and epochs against the first swept path (mean over the other axes'
    members, each member a dot): a picture like Zhang et al. (2017), Figure 1."""

    xs = [r.get(path) for r in rows]
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs):
        return None
    metrics = [
        c
        for c in runtable.columns(rows)
        if c.split("_", 1)[0] in ("train", "val", "test") and c != path
    ]
    accuracy = [c for c in metrics if "accuracy" in c] or [c for c in metrics if "loss" in c]
    # Epochs to fit (Zhang et al.'s "time to overfit") when there is an accuracy, else the
    # best epoch; the planned epochs say nothing.
    epochs = [c for c in ("fit_epoch", "best_epoch")
              if any(isinstance(r.get(c), int) for r in rows)][:1]
    panels = [("final " + (accuracy[0].split("_", 1)[1] if accuracy else "metric"), accuracy),
              ("epochs to fit" if epochs == ["fit_epoch"] else "best epoch", epochs)]
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    fig, axes = _panels(len(panels))
    for ax, (title, cols) in zip(axes, panels):
        for col in cols:
            pts = sorted(
                (float(r[path]), float(r[col]))
                for r in rows
                if isinstance(r.get(col), int | float) and math.isfinite(float(r[col]))
            )
            if not pts:
                continue
            means: dict[float, list[float]] = {}
            for x, y in pts:
                means.setdefault(x, []).append(y)
            line = ax.plot(
                sorted(means), [sum(v) / len(v) for _, v in sorted(means.items())], "-", label=col
            )[0]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", ms=3, color=line.get_color())
        ax.set_xlabel(path)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, out)
