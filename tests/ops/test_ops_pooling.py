"""Pooling beyond the conformance suite: the output-size rule against torch over a grid of
sizes and options, and the located errors of bad kernels, paddings and ranks."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest
import torch
import torch.nn.functional as F

import graphspec as gs
from graphspec.errors import SpecError
from graphspec.ops import REGISTRY, ShapeError, TensorType
from graphspec.ops.pooling import pool_out_size
from graphspec_numpy import kernels
from graphspec_numpy.kernels import KERNELS, VJPS
from graphspec_torch.kernels import KERNELS as TORCH


def T(*shape, dtype="float"):
    return TensorType(tuple(shape), dtype)


def test_output_size_is_torchs_over_a_grid():
    """Every length 1..9, kernel 1..4, stride 1..3, legal padding, with and without ceil_mode
    (which includes the rule that drops a last window starting in the right padding)."""
    checked = 0
    for size in range(1, 10):
        x = torch.zeros(1, 1, size)
        for k in range(1, 5):
            for s in range(1, 4):
                for p in range(k // 2 + 1):
                    if k > size + 2 * p:
                        continue
                    for ceil in (False, True):
                        want = F.max_pool1d(x, k, s, p, ceil_mode=ceil).shape[-1]
                        assert pool_out_size(size, k, s, p, ceil) == want, (size, k, s, p, ceil)
                        checked += 1
    assert checked > 300


def test_2d_shape_rule_per_axis():
    a = REGISTRY["avg_pool2d"].attrs(kernel=[2, 3], stride=2, padding=1, ceil_mode=True)
    # height 5: ceil would add a window starting in the right padding, which is dropped;
    # width 6: ceil adds a window.
    assert a.infer(T("batch", 4, 5, 6)).shape == ("batch", 4, 3, 4)
    assert a.kernel_attrs() == {
        "kernel": (2, 3),
        "stride": (2, 2),
        "padding": (1, 1),
        "ceil_mode": True,
        "count_include_pad": True,
    }
    assert REGISTRY["max_pool1d"].attrs(kernel=3).kernel_attrs()["stride"] == (3,)


@pytest.mark.parametrize(
    "name, kw, x, message",
    [
        (
            "max_pool2d",
            {"kernel": 5},
            T("b", 3, 4, 8),
            "kernel 5 is larger than the padded height 4 + 2*0 = 4",
        ),
        (
            "avg_pool1d",
            {"kernel": 4, "padding": 1},
            T("b", 3, 1),
            "kernel 4 is larger than the padded length 1 + 2*1 = 3",
        ),
        ("max_pool1d", {"kernel": 2}, T("b", 3, 4, 4), "must have rank 3"),
        ("avg_pool2d", {"kernel": 2}, T("b", 3, 4), "must have rank 4"),
        ("max_pool2d", {"kernel": 2}, T("b", 3, 4, "w"), "width axis must be a fixed size"),
        ("max_pool2d", {"kernel": 2}, T("b", 3, 4, 4, dtype="int"), "takes a float tensor"),
        ("global_avg_pool", {}, T("b", 3), "at least one spatial axis"),
        ("global_max_pool", {}, T("b", 3, 4, dtype="int"), "takes a float tensor"),
    ],
)
def test_shape_errors_say_the_arithmetic(name, kw, x, message):
    with pytest.raises(ShapeError) as e:
        REGISTRY[name].attrs(**kw).infer(x)
    assert message in str(e.value)


def test_global_pools_give_batch_and_channels():
    for name in ("global_avg_pool", "global_max_pool"):
        assert REGISTRY[name].attrs().infer(T("b", 3, 4, 5)).shape == ("b", 3)
        assert REGISTRY[name].attrs().infer(T("b", 3, 7)).shape == ("b", 3)


@pytest.mark.parametrize(
    "kw, message",
    [
        (
            {"kernel": [3, 2], "padding": [1, 2]},
            "padding 2 along width is more than half the kernel 2 (2*2 > 2; torch refuses it)",
        ),
        ({"kernel": 2, "padding": -1}, "padding along height must be >= 0, got -1"),
        ({"kernel": 0}, "greater than 0"),
    ],
)
def test_bad_attributes_are_refused(kw, message):
    with pytest.raises(pydantic.ValidationError) as e:
        REGISTRY["avg_pool2d"].attrs(**kw)
    assert message in str(e.value)


def test_a_kernel_too_large_is_located_in_the_spec():
    text = (
        "graphspec: 1\nname: p\ninputs: {x: [batch, 3, 4, 4]}\ngraph:\n"
        "  - {id: p, op: max_pool2d, kernel: [2, 5], in: x}\noutputs: [p]\n"
    )
    with pytest.raises(SpecError) as e:
        gs.build(gs.loads(text, "<pool>"))
    assert "kernel 5 is larger than the padded width 4 + 2*0 = 4" in str(e.value)
    assert e.value.location is not None and e.value.location.line == 5


@pytest.mark.parametrize(
    "name, kw",
    [
        ("max_pool2d", {"kernel": 2, "stride": 1}),
        ("max_pool2d", {"kernel": 2}),  # disjoint windows: the VJP writes, not adds
        ("max_pool2d", {"kernel": 3, "ceil_mode": True}),  # disjoint, an overhanging window
        ("max_pool1d", {"kernel": 3, "stride": 2, "padding": 1}),
        ("global_max_pool", {}),
    ],
)
def test_max_gradients_on_ties_are_torchs(name, kw):
    """Windowed max pools route g to the first maximum of a window, global_max_pool shares
    it among the tied maxima (torch's amax): both as torch does, on inputs full of ties."""
    shape = (2, 3, 4, 4) if name == "max_pool2d" else (2, 3, 7)
    x = np.random.default_rng(0).integers(0, 2, size=shape).astype(float)
    ka = REGISTRY[name].attrs(**kw).kernel_attrs()
    xt = torch.tensor(x, requires_grad=True)
    yt = TORCH[name](xt, **ka)
    g = np.random.default_rng(1).normal(size=yt.shape)
    yt.backward(torch.tensor(g))
    if name in kernels.RESIDUALS:
        y, res = KERNELS[name](x, **ka, save=True)
        (gx,) = VJPS[name](g, None, None, **ka, res=res)
    else:
        y = KERNELS[name](x, **ka)
        (gx,) = VJPS[name](g, y, x, **ka)
    np.testing.assert_allclose(y, yt.detach().numpy())
    np.testing.assert_allclose(gx, xt.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize(
    "name, kw",
    [
        ("max_pool2d", {"kernel": 2, "stride": 1}),
        ("max_pool2d", {"kernel": 2}),
        ("max_pool1d", {"kernel": 3, "stride": 2, "padding": 1}),
    ],
)
def test_max_gradients_with_nan_go_where_torchs_do(name, kw):
    """A window holding NaN: the maximum is NaN and g goes to the window's last NaN, as in
    torch (which takes a NaN as the maximum and a later NaN over an earlier one)."""
    shape = (2, 3, 4, 4) if name == "max_pool2d" else (2, 3, 7)
    rng = np.random.default_rng(2)
    x = rng.normal(size=shape)
    x[rng.random(shape) < 0.3] = np.nan  # windows with none, one and several NaNs
    ka = REGISTRY[name].attrs(**kw).kernel_attrs()
    xt = torch.tensor(x, requires_grad=True)
    yt = TORCH[name](xt, **ka)
    g = rng.normal(size=yt.shape)
    yt.backward(torch.tensor(g))
    y, res = KERNELS[name](x, **ka, save=True)
    (gx,) = VJPS[name](g, None, None, **ka, res=res)
    assert np.isnan(y).any() and not np.isnan(y).all()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(yt.detach().numpy()))
    np.testing.assert_allclose(gx, xt.grad.numpy(), atol=1e-12)
