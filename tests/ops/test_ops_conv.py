"""conv1d and conv2d beyond the conformance suite: located shape errors with their arithmetic,
output sizes equal to torch's (floored) over a grid of options, the fans the scaled
initializers read for convolution kernels, and the VJP's skipped input gradient."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import graphspec as gs
from graphspec.ir.initializers import INITIALIZERS, _fans
from graphspec.ops import REGISTRY, ParamDecl, TensorType
from graphspec_numpy import kernels

HEAD = (
    "graphspec: 1\nname: t\nseed: 0\ninputs:\n  x: [batch, 3, 8, 8]\n  s: [batch, 3, 8]\ngraph:\n"
)


def build(node: str) -> gs.IR:
    return gs.build(gs.loads(HEAD + f"  - {{id: c, {node}}}\noutputs: [c]\n", "t.yaml"))


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (
            "op: conv2d, in: s, channels: 4, kernel: 3",
            "conv2d needs a 4-D input [batch, channels, height, width], got shape [batch, 3, 8]",
        ),
        (
            "op: conv2d, in: x, channels: 4, kernel: [9, 3]",
            "height: (8 + 2*0 - 1*(9 - 1) - 1) / 1 + 1 = 0 < 1: the kernel spans 9 but the "
            "padded input has 8",
        ),
        (
            "op: conv1d, in: s, channels: 4, kernel: 5, stride: 2, dilation: 2",
            "length: (8 + 2*0 - 2*(5 - 1) - 1) / 2 + 1 = 0 < 1",
        ),
        (
            "op: conv2d, in: x, channels: 4, kernel: 3, groups: 2",
            "input channels (3) must be divisible by groups (2)",
        ),
        (
            "op: conv2d, in: x, channels: 3, kernel: 3, groups: 3, bias: false, stride: 2, "
            "padding: same",
            "padding 'same' needs stride 1 (as torch)",
        ),
        (
            "op: conv2d, in: x, channels: 3, kernel: 3, groups: 2",
            "channels (3) must be divisible by groups (2)",
        ),
    ],
)
def test_bad_convolutions_are_located_errors_that_say_why(node: str, message: str) -> None:
    with pytest.raises(gs.SpecError) as info:
        build(node)
    assert message in str(info.value)
    assert info.value.location is not None and info.value.location.line == 8


def test_a_dilated_kernel_that_just_fits_builds() -> None:
    # width: (8 + 2*1 - 4*(3 - 1) - 1) / 1 + 1 = 2
    ir = build("op: conv2d, in: x, channels: 4, kernel: 3, dilation: [1, 4], padding: [0, 1]")
    assert ir.node("c").type.shape == ("batch", 4, 6, 2)


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation"),
    [  # 'same' with a stride is refused at validation (tested above), as torch refuses it
        case
        for case in itertools.product([1, 2, 3], [1, 2, 3], [0, 1, "same", "valid"], [1, 2])
        if case[2] != "same" or case[1] == 1
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on even kernels
def test_output_sizes_are_torchs(kernel: int, stride: int, padding, dilation: int) -> None:
    # Input sizes that leave a remainder over the stride: both floor.
    for n in (7, 8):
        x = torch.zeros(1, 2, n, n + 1)
        w = torch.zeros(3, 2, kernel, kernel)
        want = F.conv2d(x, w, None, stride, padding, dilation).shape
        attrs = REGISTRY["conv2d"].attrs(
            channels=3, kernel=kernel, stride=stride, padding=padding, dilation=dilation
        )
        assert attrs.infer(TensorType(tuple(x.shape))).shape == tuple(want)


def test_conv_weights_declare_the_fans_of_a_kernel() -> None:
    # 6 channels in 3 groups over 3 input channels: each output sees 1 * 3 * 3 inputs, each
    # input feeds 2 * 3 * 3 outputs.
    ir = build("op: conv2d, in: x, channels: 6, kernel: 3, groups: 3")
    weight = ir.param(ir.node("c").inputs[1]).decl
    assert weight.shape == (6, 1, 3, 3)
    assert (weight.fan_in, weight.fan_out) == (9, 18)
    ir = build("op: conv1d, in: s, channels: 4, kernel: 5")
    weight = ir.param(ir.node("c").inputs[1]).decl
    assert weight.shape == (4, 3, 5) and (weight.fan_in, weight.fan_out) == (15, 20)


def test_initializers_read_a_rank4_shape_as_a_conv_kernel() -> None:
    assert _fans(ParamDecl((8, 3, 5, 5))) == (75, 200)  # [out, in, kh, kw]
    assert _fans(ParamDecl((4, 2, 3))) == (6, 12)
    assert _fans(ParamDecl((3, 5))) == (3, 5)  # a matrix stays [in, out]
    assert _fans(ParamDecl((8, 3, 5, 5), fan_in=7, fan_out=9)) == (7, 9)  # declared wins
    # he_normal's spread follows the kernel's fan-in (75), not its first axis (8).
    w = INITIALIZERS["he_normal"](np.random.default_rng(0), ParamDecl((64, 16, 3, 3)))
    assert w.std() == pytest.approx(math.sqrt(2 / (16 * 9)), rel=0.03)


def test_a_4d_param_node_initializes_as_a_conv_kernel() -> None:
    ir = gs.build(
        gs.loads(
            "graphspec: 1\nname: t\nseed: 0\ninputs:\n  x: [batch, 16, 6, 6]\ngraph:\n"
            "  - {id: w, op: param, shape: [64, 16, 3, 3], init: he_normal}\n"
            "outputs: [w]\n",
            "t.yaml",
        )
    )
    w = gs.init_params(ir)["w.value"]
    assert w.std() == pytest.approx(math.sqrt(2 / (16 * 9)), rel=0.03)


def test_vjp_skips_the_input_gradient_nobody_reads() -> None:
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(2, 4, 6, 6)), rng.normal(size=(6, 2, 3, 3)), rng.normal(size=6)
    kw = {"stride": 1, "padding": 1, "dilation": 1, "groups": 2}
    y, res = kernels.KERNELS["conv2d"](x, w, b, save=True, **kw)
    g = rng.normal(size=y.shape)
    full = kernels.VJPS["conv2d"](g, None, None, w, b, res=res, **kw)
    part = kernels.VJPS["conv2d"](g, None, None, w, b, res=res, needs=(False, True, True), **kw)
    assert part[0] is None and full[0].shape == x.shape
    np.testing.assert_array_equal(part[1], full[1])
    np.testing.assert_array_equal(part[2], full[2])
