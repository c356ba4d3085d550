"""batch_norm's feature ``axis`` and layer_norm's trailing ``axes`` beyond the conformance
suite: both backends against torch's modules (BatchNorm2d, LayerNorm over [C, H, W]), the
parameter and state shapes a spec gets, and the located errors of bad axes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import graphspec as gs
from graphspec_numpy.kernels import KERNELS
from graphspec_torch.kernels import KERNELS as TORCH

HEAD = "graphspec: 1\nname: t\nseed: 0\ninputs:\n  x: [batch, 3, 4, 5]\ngraph:\n"


def build(node: str) -> gs.IR:
    return gs.build(gs.loads(HEAD + f"  - {{id: n, {node}}}\noutputs: [n]\n", "t.yaml"))


def shapes(ir: gs.IR) -> dict[str, tuple[int, ...]]:
    return {p: ir.type(p).shape for p in ir.params + ir.state}


def test_batch_norm_over_channels_is_batchnorm2d_on_both_backends() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 5, 2)) * 2 + 1
    gamma, beta = rng.normal(size=3) + 1, rng.normal(size=3)
    mean, var = rng.normal(size=3), rng.uniform(0.5, 2.0, size=3)
    module = torch.nn.BatchNorm2d(3, momentum=0.3, eps=1e-3).double()
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(gamma))
        module.bias.copy_(torch.from_numpy(beta))
        module.running_mean.copy_(torch.from_numpy(mean))
        module.running_var.copy_(torch.from_numpy(var))
    for training in (True, False):
        module.train(training)
        before = (module.running_mean.clone().numpy(), module.running_var.clone().numpy())
        want = module(torch.from_numpy(x)).detach().numpy()
        kw = {"momentum": 0.3, "eps": 1e-3, "axis": 1, "training": training}
        y, (new_mean, new_var) = KERNELS["batch_norm"](x, gamma, beta, *before, **kw)
        np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(new_mean, module.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(new_var, module.running_var.numpy(), rtol=1e-12)
        t = [torch.from_numpy(a) for a in (x, gamma, beta, *before)]
        ty, (tm, tv) = TORCH["batch_norm"](*t, **kw)
        np.testing.assert_allclose(ty.numpy(), want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(tv.numpy(), module.running_var.numpy(), rtol=1e-12)


def test_a_feature_axis_normalizes_as_the_last_axis_moved_there() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4, 2, 5))
    gamma, beta = rng.normal(size=4), rng.normal(size=4)
    state = (rng.normal(size=4), rng.uniform(0.5, 2, size=4))
    kw = {"momentum": 0.1, "eps": 1e-5, "training": True}
    y, new = KERNELS["batch_norm"](x, gamma, beta, *state, axis=1, **kw)
    last, new_last = KERNELS["batch_norm"](np.moveaxis(x, 1, -1), gamma, beta, *state, **kw)
    np.testing.assert_allclose(y, np.moveaxis(last, -1, 1), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(new, new_last, rtol=1e-13)
    # a negative axis names the same one
    np.testing.assert_array_equal(
        KERNELS["batch_norm"](x, gamma, beta, *state, axis=-3, **kw)[0], y
    )


def test_batch_norm_axis_sizes_parameters_and_running_statistics_per_channel() -> None:
    assert shapes(build("op: batch_norm, in: x, axis: 1")) == {
        "n.gamma": (3,),
        "n.beta": (3,),
        "n.running_mean": (3,),
        "n.running_var": (3,),
    }
    # the default is still the last axis
    assert shapes(build("op: batch_norm, in: x"))["n.running_var"] == (5,)


def test_layer_norm_over_channels_and_pixels_is_torchs_layernorm() -> None:
    ir = build("op: layer_norm, in: x, axes: [-3, -2, -1]")
    assert shapes(ir) == {"n.gamma": (3, 4, 5), "n.beta": (3, 4, 5)}
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 4, 5)) * 3 - 1
    gamma, beta = rng.normal(size=(3, 4, 5)) + 1, rng.normal(size=(3, 4, 5))
    module = torch.nn.LayerNorm((3, 4, 5), eps=1e-5).double()
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(gamma))
        module.bias.copy_(torch.from_numpy(beta))
    want = module(torch.from_numpy(x)).detach().numpy()
    params = {"n.gamma": gamma, "n.beta": beta}
    for backend in ("numpy", "torch"):
        got = gs.compile(ir, backend).forward(params, {"x": x})["n"]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=backend)


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (
            "op: layer_norm, in: x, axes: [1, 2]",
            "layer_norm normalizes trailing axes (as torch and ONNX): axes [1, 2] of a rank-4 "
            "input must be the last 2 ([2, 3]); transpose the input first",
        ),
        ("op: layer_norm, in: x, axes: [-1, -1]", "names an axis twice: [-1, -1]"),
        ("op: layer_norm, in: x, axes: [-1, 3]", "layer_norm's axes [-1, 3] name axis 3 twice"),
        ("op: layer_norm, in: x, axes: []", "name at least one axis to normalize"),
        ("op: layer_norm, in: x, axes: [-5]", "axis -5 is out of range for a rank-4 tensor"),
        ("op: batch_norm, in: x, axis: 4", "axis 4 is out of range for a rank-4 tensor"),
        (
            "op: batch_norm, in: x, axis: 0",
            "batch_norm's feature axis 0 must be a fixed size, got shape [batch, 3, 4, 5]",
        ),
    ],
)
def test_bad_axes_are_located_errors(node: str, message: str) -> None:
    with pytest.raises(gs.SpecError) as info:
        build(node)
    assert message in str(info.value)
    assert info.value.location is not None and info.value.location.line == 7
