"""``train --plot`` of a convolutional model: the first image convolution's filters and
its feature maps for one validation image; nothing of the kind for other models."""

from __future__ import annotations

import graphspec as gs
from graphspec.analysis.pictures import add_conv_pictures, image_conv
from tests.train.test_data import make_spec

CONV = dict(
    inputs="x: [batch, 1, 8, 8]\n  y: {shape: [batch], dtype: int}",
    graph="- {id: c, op: conv2d, in: x, channels: 3, kernel: 3}\n  - {id: f, op: flatten}\n"
    "  - {id: p, op: linear, units: 10}",
    loss="- {op: cross_entropy, in: [p, y]}",
    extra="  epochs: 1",
)


def test_a_conv_model_gets_filters_and_feature_maps(tmp_path):
    spec, ir = make_spec(tmp_path, "{source: digits, samples: 100}", **CONV)
    assert image_conv(ir).id == "c"
    gs.train(spec, backend="numpy", out=tmp_path / "run", progress=False)
    written = add_conv_pictures(spec, tmp_path / "run")
    assert [p.name for p in written] == ["conv_filters.png", "feature_maps.png"]
    for p in written:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_conv_pictures_without_a_convolution_on_an_image_input(tmp_path):
    spec, ir = make_spec(
        tmp_path,
        "{source: digits, samples: 100}",
        inputs="x: [batch, 64]\n  y: {shape: [batch], dtype: int}",
        graph="- {id: p, op: linear, in: x, units: 10}",
        loss=CONV["loss"],
        extra=CONV["extra"],
    )
    assert image_conv(ir) is None
    gs.train(spec, backend="numpy", out=tmp_path / "run", progress=False)
    assert add_conv_pictures(spec, tmp_path / "run") == []
    # a convolution that reads a computed tensor, not the image, is not the first layer
    _, ir = make_spec(
        tmp_path,
        "{source: digits, samples: 100}",
        graph="- {id: s, op: tanh, in: x}\n  - {id: c, op: conv2d, channels: 2, "
        "kernel: 3}\n  - {id: f, op: flatten}\n  - {id: p, op: linear, "
        "units: 10}",
        **{k: CONV[k] for k in ("inputs", "loss")},
    )
    assert image_conv(ir) is None
