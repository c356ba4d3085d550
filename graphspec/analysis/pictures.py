"""What ``graphspec train --plot`` adds to a finished run beyond the spec's own analysis.

A 2-D classifier gets its decision boundary drawn even when its spec lists no
``decision_boundary`` entry (the first picture one wants of a 2-D classifier).  A model
whose first convolution (``conv2d``) reads an image input gets that layer's filters and
the feature maps it computes for one validation image (``conv_filters.png``,
``feature_maps.png``).  A model with an ``rnn`` or ``lstm`` (one direction, ``returns:
last``) gets ``‖∂L/∂h_t‖`` over the steps (``state_grads``, drawn as ``state_grads.png``).
The run directory is all it needs: the final parameters from the checkpoint, the seed
from ``summary.json``.  The scores come from the reference backend
(:func:`graphspec.backend.reference_backend`): a picture of the function does not depend
on the backend that trained it beyond rounding.
"""

from __future__ import annotations

import json
from pathlib import Path

import graphspec as gs
from graphspec.analysis.checks import plan
from graphspec.analysis.context import CheckContext
from graphspec.analysis.plots import plot_conv_filters, plot_feature_maps, report
from graphspec.analysis.registry import REGISTRY, Entry
from graphspec.analysis.runner import read_index, run_stage
from graphspec.backend import reference_backend
from graphspec.errors import SpecError
from graphspec.ir.graph import IR
from graphspec.ir.node import InputNode, OpNode
from graphspec.ir.one_op import with_outputs
from graphspec.spec.models import Spec
from graphspec.train import checkpoint
from graphspec.train.data import load_data


def add_boundary(spec: Spec, run_dir: str | Path) -> list[Path]:
    """Compute ``boundary.npz`` for a 2-D classifier's run unless the run has a decision
    boundary already; returns the files written (none for other models)."""
    return _add_analysis(spec, run_dir, "decision_boundary")


def add_state_grads(spec: Spec, run_dir: str | Path) -> list[Path]:
    """Compute ``state_grads.json`` (``‖∂L/∂h_t‖`` over the steps) for a model with an rnn
    or lstm unless the run has it already; returns the files written."""
    return _add_analysis(spec, run_dir, "state_grads")


def _add_analysis(spec: Spec, run_dir: str | Path, procedure: str) -> list[Path]:
    """Run ``procedure`` with its defaults on a finished run's final parameters, unless the
    run has its result already or the model does not fit it (nothing then)."""
    run_dir = Path(run_dir)
    if any(e.get("procedure") == procedure for e in read_index(run_dir)):
        return []
    ir = gs.build(spec)
    cls = REGISTRY[procedure]
    try:
        attrs = cls.model_validate({}).check(CheckContext(spec, ir, -1))
    except SpecError:
        return []  # not a model this procedure measures: nothing to add
    names = {e.name for e in plan(spec, ir)}
    name = cls.stem if cls.stem not in names else f"{cls.stem}_plot"
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    seed = int(summary.get("seed", spec.seed))
    params = checkpoint.load(run_dir / checkpoint.FILENAME).param
    program = gs.compile(ir, reference_backend().name)
    entry = Entry(-1, procedure, "end", name, attrs)
    return run_stage([entry], "end", spec=spec, ir=ir, program=program, params=params,
                     splits=load_data(spec, ir, seed).splits, seed=seed, run_dir=run_dir)


def image_conv(ir: IR) -> OpNode | None:
    """The first ``conv2d`` whose data input is an input of the spec (an image), if any."""
    for nid in ir.order:
        node = ir.node(nid)
        if isinstance(node, OpNode) and node.op == "conv2d" and isinstance(
                ir.node(node.inputs[0]), InputNode):
            return node
    return None


def add_conv_pictures(spec: Spec, run_dir: str | Path) -> list[Path]:
    """``conv_filters.png`` and ``feature_maps.png`` of the first convolution on an image
    input, with the run's final parameters and the first validation (else training) image;
    nothing for other models."""
    run_dir = Path(run_dir)
    ir = gs.build(spec)
    conv = image_conv(ir)
    if conv is None:
        return []
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    params = checkpoint.load(run_dir / checkpoint.FILENAME).param
    splits = load_data(spec, ir, int(summary.get("seed", spec.seed))).splits
    rows = splits.get("val", splits["train"])
    inputs = {k: v[:1] for k, v in rows.items()}
    probe, names = with_outputs(ir, [conv.id])
    maps = gs.compile(probe, reference_backend().name).forward(params, inputs)[names[conv.id]]
    image = inputs[conv.inputs[0]][0]
    return [
        plot_conv_filters(params[conv.inputs[1]], run_dir / "conv_filters.png",
                          f"{conv.id}: {len(maps[0])} filters"),
        plot_feature_maps(image, maps[0], run_dir / "feature_maps.png",
                          f"{conv.id} on one validation image"),
    ]


def plot_run(spec: Spec, run_dir: str | Path) -> list[Path]:
    """Every picture of one run into its directory (``train --plot``)."""

    add_boundary(spec, run_dir)
    add_state_grads(spec, run_dir)
    return report([run_dir], run_dir) + add_conv_pictures(spec, run_dir)
