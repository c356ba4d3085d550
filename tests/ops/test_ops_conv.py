"""conv1d, conv2d and conv_transpose2d beyond the conformance suite: located shape errors with
their arithmetic, output sizes equal to torch's (floored) over a grid of options, the fans the
scaled initializers read for convolution kernels, the VJP's skipped input gradient, and the
ONNX export of a decoder."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import graphspec as gs
from graphspec.ir.initializers import INITIALIZERS, _fans
from graphspec.ops import REGISTRY, ParamDecl, ShapeError, TensorType
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
        (
            "op: conv1d, in: s, channels: 3, kernel: 3, padding: full",
            "padding: must be 'valid', 'same', or an int (got 'full')",
        ),
        (
            "op: conv_transpose2d, in: x, channels: 4, kernel: 3, padding: valid",
            "padding: must be an int or an [h, w] pair (rows and columns cropped from each side "
            "of the output): 'same' and 'valid' have no meaning for a transposed convolution",
        ),
        (
            "op: conv_transpose2d, in: x, channels: 4, kernel: 3, stride: 2, output_padding: 2",
            "output_padding 2 along height must be smaller than the stride (2) or the dilation (1)",
        ),
        (
            "op: conv_transpose2d, in: x, channels: 4, kernel: [3, 2], padding: [1, 5]",
            "width: (8 - 1)*1 - 2*5 + 1*(2 - 1) + 0 + 1 = -1 < 1: the padding crops 10 of the 9",
        ),
        (
            "op: conv_transpose2d, in: x, channels: 4, kernel: 3, groups: 2",
            "input channels (3) must be divisible by groups (2)",
        ),
        (
            "op: conv_transpose2d, in: s, channels: 4, kernel: 3",
            "conv_transpose2d needs a 4-D input [batch, channels, height, width], got shape "
            "[batch, 3, 8]",
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
    # Input sizes that leave a remainder over the stride: with drop_remainder both floor;
    # without it, a size is refused exactly where torch would drop input (not only padding).
    for n in (7, 8):
        x = torch.zeros(1, 2, n, n + 1)
        w = torch.zeros(3, 2, kernel, kernel)
        want = F.conv2d(x, w, None, stride, padding, dilation).shape
        common = dict(channels=3, kernel=kernel, stride=stride, padding=padding, dilation=dilation)
        attrs = REGISTRY["conv2d"].attrs(**common, drop_remainder=True)
        assert attrs.infer(TensorType(tuple(x.shape))).shape == tuple(want)
        p = 0 if padding in ("same", "valid") else padding
        exact = all((m + 2 * p - dilation * (kernel - 1) - 1) % stride <= p for m in (n, n + 1))
        strict = REGISTRY["conv2d"].attrs(**common)
        if exact or padding == "same":
            assert strict.infer(TensorType(tuple(x.shape))).shape == tuple(want)
        else:
            with pytest.raises(ShapeError, match="is not an integer"):
                strict.infer(TensorType(tuple(x.shape)))


def test_a_remainder_is_refused_with_the_arithmetic() -> None:
    attrs = REGISTRY["conv2d"].attrs(channels=2, kernel=3, stride=2)
    with pytest.raises(ShapeError) as e:
        attrs.infer(TensorType((1, 1, 8, 9)))
    assert str(e.value).startswith("height: (8 + 2*0 - 3) / 2 + 1 is not an integer")
    assert "drop_remainder: true" in str(e.value)


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


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "output_padding", "dilation"),
    [  # output_padding must stay below the stride or the dilation (validation refuses more)
        case
        for case in itertools.product([1, 2, 3], [1, 2, 3], [0, 1, 2], [0, 1, 2], [1, 2])
        if case[3] < max(case[1], case[4])
    ],
)
def test_transposed_output_sizes_are_torchs(
    kernel: int, stride: int, padding: int, output_padding: int, dilation: int
) -> None:
    attrs = REGISTRY["conv_transpose2d"].attrs(
        channels=3,
        kernel=kernel,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
    )
    for n in (1, 3, 4):
        x = torch.zeros(1, 2, n, n + 1)
        w = torch.zeros(2, 3, kernel, kernel)
        try:
            want = tuple(
                F.conv_transpose2d(x, w, None, stride, padding, output_padding, 1, dilation).shape
            )
        except RuntimeError:  # torch refuses an output size below 1: so must the shape rule
            with pytest.raises(ShapeError, match="< 1"):
                attrs.infer(TensorType(tuple(x.shape)))
            continue
        assert attrs.infer(TensorType(tuple(x.shape))).shape == want


def test_a_stride_2_transposed_conv_undoes_a_stride_2_convs_size() -> None:
    # 7 -> conv (k 3, s 2, p 1) -> 4 -> transposed (k 3, s 2, p 1, output_padding 0) -> 7;
    # 8 -> 4 -> 8 needs output_padding 1: the sizes a decoder mirrors.
    for n, output_padding in ((7, 0), (8, 1)):
        ir = gs.build(
            gs.loads(
                f"graphspec: 1\nname: t\nseed: 0\ninputs:\n  x: [batch, 3, {n}, {n}]\ngraph:\n"
                "  - {id: down, op: conv2d, channels: 8, kernel: 3, stride: 2, padding: 1}\n"
                "  - {id: up, op: conv_transpose2d, channels: 3, kernel: 3, stride: 2, "
                f"padding: 1, output_padding: {output_padding}}}\noutputs: [up]\n",
                "t.yaml",
            )
        )
        assert ir.node("down").type.shape == ("batch", 8, 4, 4)
        assert ir.node("up").type.shape == ("batch", 3, n, n)


def transposed(cin: int, cout: int, kernel: str, groups: int, init: str = "") -> gs.IR:
    return gs.build(
        gs.loads(
            f"graphspec: 1\nname: t\nseed: 0\ninputs:\n  x: [batch, {cin}, 5, 5]\ngraph:\n"
            f"  - {{id: c, op: conv_transpose2d, channels: {cout}, kernel: {kernel}, "
            f"groups: {groups}{init}}}\noutputs: [c]\n",
            "t.yaml",
        )
    )


@pytest.mark.parametrize("groups", [1, 2])
def test_transposed_weights_have_torchs_layout_and_fans(groups: int) -> None:
    # 4 input channels, 6 output: torch's ConvTranspose2d weight is [4, 6 / groups, 3, 2].
    ir = transposed(4, 6, "[3, 2]", groups)
    weight = ir.param(ir.node("c").inputs[1]).decl
    module = torch.nn.ConvTranspose2d(4, 6, (3, 2), groups=groups)
    assert weight.shape == tuple(module.weight.shape)
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(module.weight)
    assert weight.fan_in == fan_in == 6 // groups * 6  # out/groups * kh * kw, as torch
    # torch's fan-out is in * kh * kw whatever the groups; graphspec's is per group, as for
    # conv2d (the same number without groups).
    assert weight.fan_out == 4 // groups * 6 and fan_out == 4 * 6


def test_he_normal_on_a_transposed_kernel_has_torchs_spread() -> None:
    # torch's kaiming_normal_ on a ConvTranspose2d weight [16, 64, 3, 3]: std sqrt(2 / (64 * 9))
    ir = transposed(16, 64, "3", 1, ", init: {weight: he_normal}")
    w = gs.init_params(ir)["c.weight"]
    assert w.shape == (16, 64, 3, 3)
    assert w.std() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.03)


def test_transposed_vjp_skips_the_gradients_nobody_reads() -> None:
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(2, 4, 3, 3)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=6)
    kw = {"stride": 2, "padding": 1, "output_padding": 1, "dilation": 1, "groups": 2}
    y = kernels.KERNELS["conv_transpose2d"](x, w, b, **kw)
    assert y.shape == (2, 6, 6, 6)
    g = rng.normal(size=y.shape)
    full = kernels.VJPS["conv_transpose2d"](g, None, x, w, b, **kw)
    part = kernels.VJPS["conv_transpose2d"](g, None, x, w, b, needs=(False, True, False), **kw)
    assert part[0] is None and part[2] is None and full[0].shape == x.shape
    np.testing.assert_array_equal(part[1], full[1])
    # the input gradient is conv2d of g with the same weight (the adjoint pair)
    want = F.conv2d(torch.from_numpy(g), torch.from_numpy(w), None, 2, 1, 1, 2).numpy()
    np.testing.assert_allclose(full[0], want, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_a_decoder_exports_to_onnx_with_a_dynamic_batch(tmp_path) -> None:
    """conv_transpose2d with every option, batch_norm over channels (and over the last axis
    of a rank-4 tensor: transposes around BatchNormalization) and layer_norm over [C, H, W],
    exported together and run by onnxruntime at two batch sizes: the numpy
    backend's outputs (the exporter's probe tries first samples only)."""
    import onnxruntime as ort  # deferred: heavy, and only this test needs it

    from graphspec_torch.export import export_onnx  # deferred: torch is heavy

    text = """graphspec: 1
name: dec
seed: 0
inputs:
  x: [batch, 4, 3, 4]
graph:
  - {id: up, op: conv_transpose2d, in: x, channels: 6, kernel: [3, 2], stride: [2, 3],
     padding: [1, 0], output_padding: [1, 2], dilation: [1, 2], groups: 2}
  - {id: bn, op: batch_norm, axis: 1}
  - {id: ln, op: layer_norm, axes: [-3, -2, -1]}
  - {id: y, op: conv_transpose2d, channels: 2, kernel: 3, bias: false}
  - {id: last, op: batch_norm, in: ln}
outputs: [y, bn, last]
"""
    ir = gs.build(gs.loads(text))
    params = gs.init_params(ir)
    rng = np.random.default_rng(1)
    # statistics and affine parameters away from their initial 0 and 1: the export must
    # use them
    stats = [f"{n}.{p}" for n in ("bn", "last") for p in ("running_mean", "running_var")]
    affine = [f"{n}.{p}" for n in ("bn", "last", "ln") for p in ("gamma", "beta")]
    for node in stats + affine:
        params[node] = params[node] + rng.uniform(0.5, 1.5, size=params[node].shape)
    path = export_onnx(ir, params, tmp_path / "dec.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = gs.compile(ir, "numpy")
    for batch in (1, 5):
        x = {"x": rng.normal(size=(batch, 4, 3, 4)).astype(np.float32)}
        want = ref.forward(params, {"x": x["x"].astype(np.float64)}, training=False)
        for name, got in zip(ir.outputs, session.run(None, x)):
            np.testing.assert_allclose(got, want[name], rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.parametrize(
    ("stride", "padding", "output_padding", "dilation", "groups"),
    [
        (1, 0, 0, 1, 1),
        (2, 0, 1, 1, 1),
        (3, 1, 2, 1, 1),
        ((2, 1), (1, 0), (1, 0), 1, 2),
        (1, 1, 1, 2, 1),
        ((1, 3), (2, 1), (1, 2), (3, 1), 2),
        (2, 2, 0, 2, 4),
    ],
)
def test_transposed_kernel_and_vjp_are_torchs(stride, padding, output_padding, dilation, groups):
    # numpy forward and VJP against F.conv_transpose2d and its autograd, beyond the samples
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4, 3, 4))
    w = rng.normal(size=(4, 8 // groups, 3, 2))
    b = rng.normal(size=8)
    kw = {
        "stride": stride,
        "padding": padding,
        "output_padding": output_padding,
        "dilation": dilation,
        "groups": groups,
    }
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = F.conv_transpose2d(tx, tw, tb, stride, padding, output_padding, groups, dilation)
    y = kernels.KERNELS["conv_transpose2d"](x, w, b, **kw)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = rng.normal(size=y.shape)
    ty.backward(torch.from_numpy(g))
    grads = kernels.VJPS["conv_transpose2d"](g, None, x, w, b, **kw)
    for got, want in zip(grads, (tx, tw, tb)):
        np.testing.assert_allclose(got, want.grad.numpy(), rtol=1e-11, atol=1e-11)
