"""The class-axis options of cross_entropy and nll beyond the conformance suite (which checks
each option against torch's F.cross_entropy / F.nll_loss): the two losses agree, ignored
positions are nothing, the defaults leave the generated code as it was, and the data checks
follow the class axis and ignore_index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from graphspec.cli import main
from graphspec.ops import REGISTRY, ShapeError, TensorType
from graphspec_numpy.kernels import KERNELS, VJPS
from graphspec_torch.kernels import KERNELS as TORCH

OPTIONS = [
    {},
    {"class_weights": [0.5, 2.0, 1.0, 0.25]},
    {"ignore_index": 1},
    {"label_smoothing": 0.3},
    {"reduction": "sum"},
    {
        "class_weights": [0.5, 2.0, 1.0, 0.25],
        "ignore_index": 3,
        "label_smoothing": 0.2,
        "reduction": "sum",
    },
    {
        "class_weights": [0.5, 2.0, 1.0, 0.25],
        "ignore_index": -100,
        "label_smoothing": 0.1,
        "axis": 1,
    },
]


def _log_softmax(z, axis):
    m = z.max(axis, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis, keepdims=True))


@pytest.mark.parametrize("options", OPTIONS, ids=[str(o) for o in OPTIONS])
def test_nll_of_log_softmax_is_cross_entropy(options):
    """On both backends, for every option: torch's nll has no label_smoothing, so its
    written-out smoothing is checked against F.cross_entropy's here."""
    rng = np.random.default_rng(0)
    axis = options.get("axis", -1)
    z = rng.normal(size=(3, 4, 5)) if axis == 1 else rng.normal(size=(6, 4))
    t = rng.integers(0, 4, size=(3, 5) if axis == 1 else 6)
    t.reshape(-1)[:2] = options.get("ignore_index", 0)
    ka = REGISTRY["cross_entropy"].attrs(**options).kernel_attrs()
    lp = _log_softmax(z, axis)
    np.testing.assert_allclose(
        KERNELS["nll"](lp, t, **ka), KERNELS["cross_entropy"](z, t, **ka), rtol=1e-12
    )
    ce = TORCH["cross_entropy"](torch.tensor(z), torch.tensor(t), **ka)
    nll = TORCH["nll"](torch.tensor(lp), torch.tensor(t), **ka)
    np.testing.assert_allclose(nll.numpy(), ce.numpy(), rtol=1e-12)
    # and the gradients: dL/dz = J_log_softmax^T dL/dlog_p
    g = 0.7
    g_lp = VJPS["nll"](g, None, lp, t, **ka)[0]
    g_z = VJPS["cross_entropy"](g, None, z, t, **ka)[0]
    p = np.exp(lp)
    np.testing.assert_allclose(g_lp - p * g_lp.sum(axis, keepdims=True), g_z, atol=1e-14)


def test_ignored_positions_contribute_nothing():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(5, 3))
    t = np.array([2, -1, 0, -1, 1])
    w = [1.0, 3.0, 0.5]
    kw = {"class_weights": w, "ignore_index": -1}
    loss = KERNELS["cross_entropy"](z, t, **kw)
    kept = t != -1
    lp = _log_softmax(z[kept], -1)
    wt = np.asarray(w)[t[kept]]
    # the mean divides by the weights of the kept targets only (torch's)
    assert loss == pytest.approx(-(wt * lp[np.arange(3), t[kept]]).sum() / wt.sum(), rel=1e-14)
    (g, _) = VJPS["cross_entropy"](1.0, None, z, t, **kw)
    assert np.all(g[~kept] == 0)


def test_options_at_their_defaults_are_no_kernel_keywords():
    """So the code generated for a spec that sets none is what it was before they existed."""
    for name in ("cross_entropy", "nll"):
        attrs = REGISTRY[name].attrs
        assert attrs().kernel_attrs() == {}
        assert attrs(reduction="mean", axis=-1, label_smoothing=0).kernel_attrs() == {}
        assert attrs(axis=1, ignore_index=-100).kernel_attrs() == {"axis": 1, "ignore_index": -100}


PIXELS = """\
graphspec: 1
name: pixels
inputs:
  x: [batch, 1, 4, 4]
  y: {shape: [batch, 4, 4], dtype: int}
graph:
  - {id: logits, op: conv2d, in: x, channels: 3, kernel: 1}
loss:
  - {op: cross_entropy, in: [logits, y], axis: 1, ignore_index: 255}
train:
  epochs: 1
  data: {path: pixels.npz}
"""


@pytest.mark.parametrize(
    "label, error",
    [
        (255, None),  # ignored: no error
        (2, None),
        (
            3,
            "pixels.npz: row index 5: label 3 of 'y' is out of range: the prediction has 3 "
            "classes (labels 0..2)",
        ),
        (-100, "label -100 of 'y' is out of range"),
    ],
)
def test_data_labels_follow_the_class_axis_and_ignore_index(tmp_path: Path, capsys, label, error):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=(8, 4, 4))
    y[5, 1, 2] = label
    np.savez(tmp_path / "pixels.npz", x=rng.normal(size=(8, 1, 4, 4)), y=y)
    spec = tmp_path / "pixels.yaml"
    spec.write_text(PIXELS)
    rc = main(["validate", "--train", str(spec)])
    err = capsys.readouterr().err
    if error is None:
        assert rc == 0, err
    else:
        assert rc == 1 and error in err


def T(*shape, dtype="float"):
    return TensorType(tuple(shape), dtype)


@pytest.mark.parametrize(
    "name, kw, pred, target, message",
    [
        (
            "nll",
            {"axis": 3},
            T("b", 4, 5),
            T("b", 5, dtype="int"),
            "nll's class axis 3 is out of range for its rank-3 input [b, 4, 5]",
        ),
        (
            "nll",
            {},
            T("b", 4, 5),
            T("b", 5, dtype="int"),
            "nll needs integer class targets of shape [b, 4] int for logits [b, 4, 5], got [b, 5] "
            "int: with the classes on axis 1, set axis: 1",
        ),
        (
            "cross_entropy",
            {"axis": 1},
            T("b", 4, 5),
            T("b", 4, dtype="int"),
            "(classes on axis 1): with the classes on axis 2, set axis: 2",
        ),
        (
            "nll",
            {"class_weights": [1.0, 2.0]},
            T("b", 5, 3),
            T("b", 5, dtype="int"),
            "nll's class_weights has 2 entries, but the logits [b, 5, 3] have 3 classes (axis -1)",
        ),
    ],
)
def test_shape_errors_name_the_class_axis(name, kw, pred, target, message):
    with pytest.raises(ShapeError) as e:
        REGISTRY[name].attrs(**kw).infer(pred, target)
    assert message in str(e.value)


def test_per_pixel_targets_may_keep_a_class_axis_of_one():
    ce = REGISTRY["cross_entropy"].attrs(axis=1)
    assert ce.infer(T("b", 3, 4, 4), T("b", 1, 4, 4, dtype="int")).shape == ()
    assert ce.infer(T("b", 3, 4, 4), T("b", 4, 4, dtype="int")).shape == ()
