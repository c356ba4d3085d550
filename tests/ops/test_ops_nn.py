"""Behaviour of the neural-network ops beyond the generated conformance suite: shape-rule
errors and symbolic dims, stability at logits of ±1000, erf's accuracy, batch_norm's running
statistics and train/eval switch, dropout's mask, and the target forms of the classification
losses and metrics, through kernels and through built graphs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pydantic
import pytest
import torch

import graphspec as gs
from graphspec.ops import REGISTRY, ShapeError, TensorType
from graphspec_numpy import kernels
from graphspec_numpy.kernels import KERNELS, VJPS
from graphspec_numpy.kernels._prelude import erf, erfc
from graphspec_torch.kernels import KERNELS as TORCH

MY_OPS = """
    identity step sigmoid tanh relu leaky_relu softplus elu gelu softmax log_softmax
    linear matmul param highway batch_norm layer_norm dropout
    mse bce bce_with_logits cross_entropy nll l1_penalty l2_penalty kl_normal
    accuracy binary_accuracy
""".split()


def T(*shape, dtype="float"):
    return TensorType(tuple(shape), dtype)


def attrs(name, **kw):
    return REGISTRY[name].attrs(**kw)


def build(graph: str, inputs: str, loss: str = "", outputs: str = "") -> gs.IR:
    text = f"graphspec: 1\nname: t\nseed: 0\ninputs:\n{inputs}\ngraph:\n{graph}"
    text += f"outputs: {outputs}\n" if outputs else ""
    text += f"loss:\n{loss}" if loss else ""
    return gs.build(gs.loads(text))


def np_call(name, *args, **kw):
    return KERNELS[name](*args, **kw)


def torch_call(name, *args, **kw):
    out = TORCH[name](*(torch.tensor(a) for a in args), **kw)
    return out.detach().numpy()


def vjp_and_autograd(name, args, diff, g=1.0, **kw):
    """The numpy VJP and torch autograd of op ``name`` at ``args`` (only ``diff`` indices)."""
    y, res = kernels.forward(name, args, kw, save=True)  # as generated code calls them
    mine = kernels.backward(name, np.asarray(g, dtype=float), y, args, kw, res)
    targs = [torch.tensor(a, requires_grad=i in diff) for i, a in enumerate(args)]
    ty = TORCH[name](*targs, **kw)
    theirs = torch.autograd.grad(ty, [targs[i] for i in diff], torch.tensor(g, dtype=ty.dtype))
    return [mine[i] for i in diff], [t.numpy() for t in theirs]


# ---- the registry ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", MY_OPS)
def test_op_is_documented_and_has_kernels(name):
    d = REGISTRY[name]
    assert d.summary, f"{name} has no docstring"
    assert name in KERNELS and name in TORCH
    differentiable = d.category != "metric" and any(i.differentiable for i in d.inputs)
    assert (name in VJPS) == differentiable or name == "param"  # param: no inputs, a param


def test_flags():
    assert REGISTRY["batch_norm"].uses_training and REGISTRY["batch_norm"].has_state
    assert REGISTRY["dropout"].uses_training and REGISTRY["dropout"].stochastic
    assert REGISTRY["dropout"].attrs().noise().kind == "uniform"
    assert not REGISTRY["step"].inputs[0].differentiable
    for loss in ("mse", "bce", "bce_with_logits", "cross_entropy", "nll"):
        assert REGISTRY[loss].differentiable(2, 2) == [True, False], loss
    assert REGISTRY["kl_normal"].differentiable(4, 4) == [True] * 4


# ---- attributes and shape rules -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kw",
    [
        ("gelu", {"approximate": True}),
        ("gelu", {"approximate": "sigmoid"}),
        ("highway", {"activation": "softmax"}),
        ("dropout", {"p": 1.0}),
        ("dropout", {"p": -0.1}),
        ("batch_norm", {"momentum": 1.5}),
        ("batch_norm", {"eps": 0}),
        ("layer_norm", {"eps": -1e-5}),
        ("softplus", {"beta": 0}),
        ("relu", {"slope": 0.1}),
    ],
)
def test_bad_attributes_are_refused(name, kw):
    with pytest.raises(pydantic.ValidationError):
        attrs(name, **kw)


@pytest.mark.parametrize(
    "name, kw, types, message",
    [
        ("matmul", {}, [T("batch", 3), T(4, 2)], "inner dimensions differ: [batch, 3] @ [4, 2]"),
        ("matmul", {}, [T(2, 3, 4), T(5, 4, 2)], "batch dimensions do not broadcast"),
        ("matmul", {}, [T(), T(3)], "rank >= 1"),
        ("softmax", {"axis": 2}, [T("batch", 3)], "axis 2 is out of range for a rank-2"),
        ("batch_norm", {}, [T(4)], "batch_norm needs an input with a batch and a feature axis"),
        ("highway", {}, [T()], "highway needs an input with a feature axis"),
        ("cross_entropy", {}, [T("batch", 3), T("batch")], "look like class indices but are float"),
        ("cross_entropy", {}, [T("batch", 3), T("batch", 2, dtype="int")], "fit neither"),
        ("cross_entropy", {}, [T("batch", 3), T(5, 3)], "fit neither"),
        (
            "nll",
            {},
            [T("batch", 3), T("batch")],
            "needs integer class targets of shape [batch] int",
        ),
        ("nll", {}, [T("batch", 3), T("batch", 3)], "needs integer class targets"),
        ("kl_normal", {}, [T("batch", 2), T("batch", 3)], "log_var [batch, 3] must have mu's"),
        ("kl_normal", {}, [T("batch", 2)] * 3, "got three inputs"),
        ("kl_normal", {}, [T("batch", 2)] * 3 + [T(2)], "prior_log_var [2] must have mu's"),
        ("kl_normal", {}, [T(), T()], "needs a feature (last) axis"),
        ("mse", {}, [T("batch", 3), T("batch", 2)], "do not match"),
        ("mse", {}, [T(3), T(2, 3)], "would broadcast prediction"),
        ("accuracy", {}, [T("batch", 3), T("batch", 2)], "neither as class labels"),
        ("binary_accuracy", {}, [T("batch", 1), T("batch", 2)], "differ in shape"),
        ("binary_accuracy", {}, [T("batch", 2), T("batch")], "differ in shape"),
    ],
)
def test_shape_errors(name, kw, types, message):
    with pytest.raises(ShapeError) as e:
        attrs(name, **kw).infer(*types)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "name, kw",
    [("batch_norm", {}), ("layer_norm", {}), ("highway", {})],
)
def test_parameterized_ops_need_a_fixed_feature_axis(name, kw):
    with pytest.raises(ShapeError, match="feature .*axis must be a fixed size"):
        attrs(name, **kw).params(T("batch", "width"))


@pytest.mark.parametrize(
    "name, kw, types, out",
    [
        ("matmul", {}, [T("batch", 3, 4), T(4, 2)], ("batch", 3, 2)),
        ("matmul", {}, [T("batch", 1, 3, 4), T(5, 4, 2)], ("batch", 5, 3, 2)),
        ("matmul", {}, [T(4), T("batch", 4, 2)], ("batch", 2)),
        ("matmul", {}, [T("batch", 4), T(4)], ("batch",)),
        ("matmul", {}, [T(4), T(4)], ()),
        ("batch_norm", {}, [T("batch", "time", 4)], ("batch", "time", 4)),
        ("layer_norm", {}, [T("batch", 4)], ("batch", 4)),
        ("dropout", {}, [T("batch", "time", 4)], ("batch", "time", 4)),
        ("highway", {}, [T("batch", 4)], ("batch", 4)),
        ("cross_entropy", {}, [T("batch", 3), T("batch", dtype="int")], ()),
        ("cross_entropy", {}, [T("batch", 3), T("batch", 1, dtype="int")], ()),
        ("cross_entropy", {}, [T("batch", 3), T("batch", 3)], ()),
        ("cross_entropy", {}, [T("batch", "time", 3), T("batch", "time", dtype="int")], ()),
        ("nll", {}, [T("batch", 3), T("batch", dtype="int")], ()),
        ("kl_normal", {}, [T("batch", 2)] * 4, ()),
        ("accuracy", {}, [T("batch", 3), T("batch", 1, dtype="int")], ()),
        ("binary_accuracy", {}, [T("batch", 1), T("batch", dtype="int")], ()),
    ],
)
def test_shape_rules_keep_symbolic_dims(name, kw, types, out):
    assert attrs(name, **kw).infer(*types).shape == out


def test_parameters_and_state_declared():
    bn = attrs("batch_norm")
    x = T("batch", "time", 4)
    assert {k: (v.shape, v.init) for k, v in bn.params(x).items()} == {
        "gamma": ((4,), "ones"),
        "beta": ((4,), "zeros"),
    }
    assert {k: (v.shape, v.init) for k, v in bn.state(x).items()} == {
        "running_mean": ((4,), "zeros"),
        "running_var": ((4,), "ones"),
    }
    hw = attrs("highway", gate_bias=-3.0).params(T("batch", 5))
    assert hw["gate_bias"].init == {"name": "constant", "value": -3.0}
    assert hw["weight"].penalize and not hw["bias"].penalize


# ---- numerical stability ------------------------------------------------------------------

EXTREME = np.array([[1000.0, -1000.0, 0.5], [-1000.0, -999.0, 1000.0]])
LABELS = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


def _stable_cases():
    yield "sigmoid", (EXTREME,), {}
    yield "softplus", (EXTREME,), {"beta": 1.0, "threshold": 20.0}
    yield "elu", (EXTREME,), {"alpha": 1.0}
    yield "gelu", (EXTREME,), {"approximate": "none"}
    yield "gelu", (EXTREME,), {"approximate": "tanh"}
    yield "softmax", (EXTREME,), {"axis": -1}
    yield "log_softmax", (EXTREME,), {"axis": -1}
    yield "log_softmax", (EXTREME,), {"axis": 0}
    yield "bce_with_logits", (EXTREME, LABELS), {}
    yield "cross_entropy", (EXTREME, np.array([1, 2])), {}
    yield "cross_entropy", (EXTREME, np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])), {}
    yield "bce", (np.array([0.0, 1.0, 1.0, 0.0, 0.5]), np.array([0.0, 1.0, 0.0, 1.0, 1.0])), {}


@pytest.mark.parametrize(
    "name, args, kw",
    list(_stable_cases()),
    ids=[f"{c[0]}-{i}" for i, c in enumerate(_stable_cases())],
)
def test_finite_at_extremes_without_warnings(name, args, kw):
    """Values and gradients stay finite, no overflow or log(0) warning, and torch agrees."""
    with np.errstate(over="raise", invalid="raise", divide="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        y, res = kernels.forward(name, args, kw, save=True)
        g = np.ones_like(y)
        grads = kernels.backward(name, g, y, args, kw, res)
    assert np.all(np.isfinite(y)), y
    assert np.all(np.isfinite(grads[0])), grads[0]
    np.testing.assert_allclose(y, torch_call(name, *args, **kw), rtol=1e-12, atol=1e-12)
    mine, theirs = vjp_and_autograd(name, list(args), [0], g, **kw)
    np.testing.assert_allclose(mine[0], theirs[0], rtol=1e-9, atol=1e-10)


def test_softplus_without_the_linear_branch_stays_finite():
    # torch's formula overflows to inf at beta x = 3000 when the threshold is above it; ours
    # is log-sum-exp stable on either branch.
    x = np.array([1000.0, -1000.0, 3.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = np_call("softplus", x, beta=3.0, threshold=1e9)
        (g,) = VJPS["softplus"](np.ones(3), y, x, beta=3.0, threshold=1e9)
    np.testing.assert_allclose(y, [1000.0, 0.0, 3.0 + np.log1p(np.exp(-9.0)) / 3], rtol=1e-15)
    np.testing.assert_allclose(g, [1.0, 0.0, 1 / (1 + np.exp(-9.0))], rtol=1e-15)


def test_extreme_values_are_right():
    # softplus: x where large, 0 (not log(0)) where very negative; sigmoid saturates exactly.
    assert np_call("softplus", np.array([1000.0, -1000.0]), beta=1.0, threshold=20.0).tolist() == [
        1000.0,
        0.0,
    ]
    assert np_call("sigmoid", np.array([1000.0, -1000.0])).tolist() == [1.0, 0.0]
    # A confidently wrong logit costs its size; a confidently right one costs nothing.
    loss = np_call("bce_with_logits", np.array([[1000.0], [-1000.0]]), np.array([[0.0], [0.0]]))
    assert loss == pytest.approx(500.0)
    ce = np_call(
        "cross_entropy", np.array([[1000.0, -1000.0], [1000.0, -1000.0]]), np.array([0, 1])
    )
    assert ce == pytest.approx(1000.0)
    # bce on probabilities clamps each log at -100, as torch.
    assert np_call("bce", np.array([0.0]), np.array([1.0])) == pytest.approx(100.0)


def test_softplus_threshold_matches_torch_at_the_switch():
    x = np.array([19.9, 20.0, 20.1, 25.0, 6.0, 7.0])
    for beta, thr in [(1.0, 20.0), (0.5, 3.0)]:
        np.testing.assert_allclose(
            np_call("softplus", x, beta=beta, threshold=thr),
            torch_call("softplus", x, beta=beta, threshold=thr),
            rtol=1e-15,
            atol=0,
        )
        mine, theirs = vjp_and_autograd(
            "softplus", [x], [0], np.ones_like(x), beta=beta, threshold=thr
        )
        np.testing.assert_allclose(mine[0], theirs[0], rtol=1e-14)


# ---- erf in the numpy prelude -------------------------------------------------------------


def test_erf_matches_math_erf():
    x = np.concatenate(
        [
            np.linspace(-8, 8, 20001),
            np.geomspace(1e-300, 1, 300),
            -np.geomspace(1e-300, 1, 300),
            [1.25, -1.25, np.nextafter(1.25, 0)],
        ]
    )
    ref = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(erf(x), ref, rtol=2e-15, atol=0)
    xc = np.linspace(-6, 26.5, 20001)
    refc = np.array([math.erfc(v) for v in xc])
    np.testing.assert_allclose(erfc(xc), refc, rtol=2e-14, atol=0)


def test_erf_edges_and_dtypes():
    np.testing.assert_array_equal(erf(np.array([0.0, np.inf, -np.inf])), [0.0, 1.0, -1.0])
    np.testing.assert_array_equal(erfc(np.array([np.inf, -np.inf, 40.0])), [0.0, 2.0, 0.0])
    assert np.isnan(erf(np.array([np.nan]))).all()
    assert erf(np.array(0.5)) == pytest.approx(math.erf(0.5), rel=1e-15)
    assert erf(np.ones(3, dtype=np.float32)).dtype == np.float32


def test_gelu_matches_the_definition_far_into_the_tail():
    # Phi(x) = erfc(-x / sqrt 2) / 2 keeps its relative accuracy (erf would give 1 - 1 = 0).
    x = np.array([-20.0, -8.0, -3.0])
    exact = np.array([v * 0.5 * math.erfc(-v * 0.7071067811865476) for v in x])
    np.testing.assert_allclose(np_call("gelu", x, approximate="none"), exact, rtol=1e-13)


# ---- matmul's VJP shapes ------------------------------------------------------------------


@pytest.mark.parametrize(
    "sa, sb",
    [
        ((3, 4), (4, 2)),
        ((2, 1, 3, 4), (5, 4, 2)),
        ((4,), (2, 4, 3)),
        ((2, 3, 4), (4,)),
        ((4,), (4,)),
        ((1, 3, 4), (2, 4, 2)),
    ],
)
def test_matmul_vjp_shapes_and_values(sa, sb):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    y = np_call("matmul", a, b)
    g = rng.normal(size=np.shape(y))
    mine, theirs = vjp_and_autograd("matmul", [a, b], [0, 1], g)
    for m, t, s in zip(mine, theirs, (sa, sb)):
        assert m.shape == s
        np.testing.assert_allclose(m, t, rtol=1e-12, atol=1e-12)


# ---- batch_norm through a built graph -----------------------------------------------------

BN_INPUTS = "  x: [batch, 3]\n  y: [batch, 1]\n"
BN_GRAPH = """\
  - {id: bn, op: batch_norm, in: x, momentum: 0.2}
  - {id: out, op: linear, units: 1}
"""
BN_LOSS = "  - {op: mse, in: [out, y]}\n"


def _bn_setup():
    ir = build(BN_GRAPH, BN_INPUTS, BN_LOSS, outputs="[out, bn]")
    params = gs.init_params(ir, seed=0)
    rng = np.random.default_rng(3)
    params["bn.gamma"] = rng.uniform(0.5, 1.5, 3)
    params["bn.beta"] = rng.normal(size=3)
    data = {
        "x": rng.normal(size=(10, 3)) * [1.0, 2.0, 3.0] + [0.0, 5.0, -1.0],
        "y": rng.normal(size=(10, 1)),
    }
    return ir, params, data


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_batch_norm_running_statistics_update_in_training(backend):
    ir, params, data = _bn_setup()
    assert ir.state == ["bn.running_mean", "bn.running_var"]
    prog = gs.compile(ir, backend)
    res = prog.loss_and_grads(params, data)  # training mode
    state = {k: np.array(v, copy=True) for k, v in res.state.items()}
    x, m = data["x"], 0.2
    np.testing.assert_allclose(state["bn.running_mean"], m * x.mean(0), rtol=1e-12)
    # The running variance follows torch: the unbiased batch variance.
    np.testing.assert_allclose(state["bn.running_var"], (1 - m) + m * x.var(0, ddof=1), rtol=1e-12)
    # A second step starts from the first one's statistics.
    params2 = {**params, **state}
    res2 = prog.loss_and_grads(params2, data)
    np.testing.assert_allclose(
        res2.state["bn.running_mean"],
        (1 - m) * state["bn.running_mean"] + m * x.mean(0),
        rtol=1e-12,
    )
    # Returned arrays are the caller's: later calls do not change them behind its back.
    for k, v in state.items():
        np.testing.assert_array_equal(res.state[k], v)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_batch_norm_uses_running_statistics_in_evaluation(backend):
    ir, params, data = _bn_setup()
    params["bn.running_mean"] = np.array([0.5, 4.0, -2.0])
    params["bn.running_var"] = np.array([2.0, 3.0, 8.0])
    prog = gs.compile(ir, backend)
    res = prog.evaluate(params, data)
    x = data["x"]
    want = (x - params["bn.running_mean"]) / np.sqrt(params["bn.running_var"] + 1e-5)
    want = want * params["bn.gamma"] + params["bn.beta"]
    np.testing.assert_allclose(res.outputs["bn"], want, rtol=1e-12)
    # Evaluation leaves the statistics alone.
    for k in ("bn.running_mean", "bn.running_var"):
        np.testing.assert_array_equal(res.state.get(k, params[k]), params[k])
    # Training normalizes by the batch: every feature has mean beta and std about gamma.
    out = prog.forward(params, data, training=True)["bn"]
    np.testing.assert_allclose(out.mean(0), params["bn.beta"], atol=1e-12)
    np.testing.assert_allclose(
        out.std(0), params["bn.gamma"] / np.sqrt(1 + 1e-5 / x.var(0)), rtol=1e-12
    )


def test_batch_norm_gradients_through_the_graph_match_finite_differences():
    ir, params, data = _bn_setup()
    prog = gs.compile(ir, "numpy")
    for training in (True, False):
        res = prog.loss_and_grads(params, data, training=training)
        for name in ("bn.gamma", "bn.beta", "out.weight"):
            numeric = np.zeros_like(params[name])
            for idx in np.ndindex(params[name].shape):
                for sign in (1, -1):
                    moved = {k: v.copy() for k, v in params.items()}
                    moved[name][idx] += sign * 1e-6
                    loss = prog.loss_and_grads(moved, data, training=training).loss
                    numeric[idx] += sign * loss / 2e-6
            np.testing.assert_allclose(res.grads[name], numeric, rtol=1e-6, atol=1e-9)
        assert "bn.running_mean" not in res.grads  # state is not trained


def test_batch_norm_rank3_normalizes_over_batch_and_length():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5, 2)) * [1.0, 3.0] + [2.0, -1.0]
    y, (rm, rv) = np_call(
        "batch_norm",
        x,
        np.ones(2),
        np.zeros(2),
        np.zeros(2),
        np.ones(2),
        momentum=1.0,
        eps=0.0,
        training=True,
    )
    np.testing.assert_allclose(y.reshape(-1, 2).mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(y.reshape(-1, 2).std(0), 1, rtol=1e-12)
    np.testing.assert_allclose(rv, x.reshape(-1, 2).var(0, ddof=1), rtol=1e-12)
    with pytest.raises(ValueError, match="more than one value per feature"):
        np_call(
            "batch_norm",
            x[:1, :1],
            np.ones(2),
            np.zeros(2),
            np.zeros(2),
            np.ones(2),
            momentum=0.1,
            eps=1e-5,
            training=True,
        )


# ---- dropout ------------------------------------------------------------------------------

DROP_GRAPH = """\
  - {id: drop, op: dropout, in: x, p: 0.25}
  - {id: out, op: linear, units: 1}
"""


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_dropout_mask_and_scaling_in_training(backend):
    ir = build(DROP_GRAPH, BN_INPUTS, BN_LOSS, outputs="[drop]")
    prog = gs.compile(ir, backend)
    params = gs.init_params(ir, seed=0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 3)) + 3
    noise = rng.random((6, 3))
    out = prog.forward(params, {"x": x}, training=True, noise={"drop": noise})["drop"]
    keep = noise >= 0.25
    np.testing.assert_allclose(out, np.where(keep, x / 0.75, 0.0), rtol=1e-15)
    # The gradient goes through the kept elements only, with the same scale.
    res = prog.loss_and_grads(params, {"x": x, "y": np.zeros((6, 1))}, noise={"drop": noise})
    assert np.all(res.grads["x"][~keep] == 0) and np.all(res.grads["x"][keep] != 0)


def test_dropout_is_off_in_evaluation_and_draws_its_own_noise_in_training():
    ir = build(DROP_GRAPH, BN_INPUTS, BN_LOSS, outputs="[drop]")
    prog = gs.compile(ir, "numpy")
    params = gs.init_params(ir, seed=0)
    x = np.random.default_rng(2).normal(size=(2000, 3)) + 3  # no zeros in x
    np.testing.assert_array_equal(prog.forward(params, {"x": x})["drop"], x)
    out = prog.forward(params, {"x": x}, training=True, rng=np.random.default_rng(0))["drop"]
    kept = out != 0
    assert 0.70 < kept.mean() < 0.80
    np.testing.assert_allclose(out[kept], x[kept] / 0.75, rtol=1e-15)


def test_dropout_vjp_uses_the_noise():
    x = np.arange(1.0, 7.0).reshape(2, 3)
    noise = np.array([[0.1, 0.9, 0.5], [0.6, 0.2, 0.7]])
    g = np.ones_like(x)
    (gx,) = VJPS["dropout"](g, None, x, p=0.5, training=True, noise=noise)
    np.testing.assert_array_equal(gx, (noise >= 0.5) * 2.0)
    (gx,) = VJPS["dropout"](g, None, x, p=0.5, training=False, noise=noise)
    np.testing.assert_array_equal(gx, g)


# ---- classification losses and metrics: the forms of the targets -------------------------


def test_cross_entropy_integer_and_one_hot_targets_agree():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 4)) * 3
    labels = rng.integers(0, 4, size=6)
    forms = [labels, labels[:, None], np.eye(4)[labels], np.eye(4, dtype=np.int64)[labels]]
    losses = [np_call("cross_entropy", z, t) for t in forms]
    grads = [VJPS["cross_entropy"](1.0, y, z, t)[0] for y, t in zip(losses, forms)]
    for loss, g in zip(losses[1:], grads[1:]):
        assert loss == pytest.approx(losses[0], rel=1e-14)
        np.testing.assert_allclose(g, grads[0], rtol=1e-14)
    for t in forms:
        assert torch_call("cross_entropy", z, t) == pytest.approx(losses[0], rel=1e-12)
    # The definition: mean over rows of logsumexp(z) - z[label].
    ref = np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(6), labels])
    assert losses[0] == pytest.approx(ref, rel=1e-13)


def test_cross_entropy_equals_nll_of_log_softmax():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(2, 3, 5))
    t = rng.integers(0, 5, size=(2, 3))
    lp = np_call("log_softmax", z, axis=-1)
    assert np_call("nll", lp, t) == pytest.approx(np_call("cross_entropy", z, t), rel=1e-14)


def test_cross_entropy_through_a_graph_with_int_targets():
    ir = build(
        "  - {id: logits, op: linear, in: x, units: 3}\n",
        "  x: [batch, 2]\n  y: {shape: [batch], dtype: int}\n",
        "  - {op: cross_entropy, in: [logits, y]}\n",
    )
    params = gs.init_params(ir, seed=0)
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(5, 2)), "y": rng.integers(0, 3, size=5)}
    res = {b: gs.compile(ir, b).loss_and_grads(params, data) for b in ("numpy", "torch")}
    assert res["numpy"].loss == pytest.approx(res["torch"].loss, rel=1e-12)
    for k, g in res["numpy"].grads.items():
        np.testing.assert_allclose(g, res["torch"].grads[k], rtol=1e-9, atol=1e-12)


def test_kl_normal_with_a_standard_prior_equals_the_default():
    rng = np.random.default_rng(0)
    mu, lv = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    zero = np.zeros_like(mu)
    assert np_call("kl_normal", mu, lv) == pytest.approx(
        np_call("kl_normal", mu, lv, zero, zero), rel=1e-14
    )
    # KL of a distribution to itself is zero; the divergence is summed over features.
    assert np_call("kl_normal", mu, lv, mu, lv) == pytest.approx(0.0, abs=1e-15)
    one_row = np_call("kl_normal", mu[:1], lv[:1])
    assert one_row == pytest.approx(0.5 * np.sum(mu[0] ** 2 + np.exp(lv[0]) - 1 - lv[0]))


def test_l1_penalty_subgradient_is_zero_at_zero():
    p = np.array([[-2.0, 0.0], [0.0, 3.0]])
    assert np_call("l1_penalty", p, np.array([-1.0])) == 6.0
    (gp, gq) = VJPS["l1_penalty"](2.0, None, p, np.array([-1.0]))
    np.testing.assert_array_equal(gp, [[-2.0, 0.0], [0.0, 2.0]])
    np.testing.assert_array_equal(gq, [-2.0])
    mine, theirs = vjp_and_autograd("l1_penalty", [p], [0])
    np.testing.assert_array_equal(mine[0], theirs[0])


def test_accuracy_target_forms():
    z = np.array([[2.0, 0.1, -1.0], [0.0, 0.3, 0.2], [0.1, -1.0, 0.9], [1.0, 2.0, 3.0]])
    labels = np.array([0, 1, 0, 2])  # three right
    for t in (labels, labels[:, None], np.eye(3)[labels], np.eye(3, dtype=np.int64)[labels]):
        assert np_call("accuracy", z, t) == 0.75
        assert torch_call("accuracy", z, t) == 0.75
    # One logit per row is a binary classifier: logit > 0 against target > 0.5.
    z1 = np.array([[1.5], [-0.2], [0.3], [-2.0]])
    t1 = np.array([[1], [1], [0], [0]])
    for t in (t1, t1[:, 0], t1.astype(float)):
        assert np_call("accuracy", z1, t) == 0.5 == torch_call("accuracy", z1, t)
        assert np_call("binary_accuracy", z1, t, threshold=0.0) == 0.5
        assert torch_call("binary_accuracy", z1, t, threshold=0.0) == 0.5


def test_accuracy_follows_the_class_axis_and_skips_ignored_labels():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(2, 4, 3, 5))  # [batch, classes, H, W]
    labels = rng.integers(0, 4, size=(2, 3, 5))
    right = z.argmax(axis=1) == labels
    for t in (labels, labels[:, None]):
        assert np_call("accuracy", z, t, axis=1) == right.mean()
        assert torch_call("accuracy", z, t, axis=1) == pytest.approx(right.mean(), abs=1e-15)
    ignored = labels.copy()
    ignored[0] = 255  # half the positions are not counted
    want = right[1].mean()
    assert np_call("accuracy", z, ignored, axis=1, ignore_index=255) == want
    assert torch_call("accuracy", z, ignored, axis=1, ignore_index=255) == pytest.approx(want)
    # Classes on the last axis of [batch, time, classes] (per-time-step), one-hot targets.
    zt = np.moveaxis(z, 1, -1)
    onehot = np.eye(4)[labels]
    assert np_call("accuracy", zt, onehot) == right.mean() == torch_call("accuracy", zt, onehot)


def test_a_bare_accuracy_metric_reads_classes_as_its_loss_does():
    ir = build(
        "  - {id: logits, op: conv2d, in: x, channels: 3, kernel: 1}\n",
        "  x: [batch, 1, 4, 4]\n  y: {shape: [batch, 4, 4], dtype: int}\n",
        "  - {op: cross_entropy, in: [logits, y], axis: 1, ignore_index: 255}\n"
        "train:\n  data: {source: blobs}\n  metrics: [accuracy]\n",
    )
    attrs = ir.op("accuracy").attrs
    assert (attrs.axis, attrs.ignore_index) == (1, 255)


# ---- the other ops through graphs: highway, layer_norm, gelu ------------------------------


def test_highway_carries_its_input_at_initialization():
    ir = build(
        "  - {id: hw, op: highway, in: x, activation: tanh, gate_bias: -20}\n",
        "  x: [batch, 4]\n",
        outputs="[hw]",
    )
    params = gs.init_params(ir, seed=0)
    np.testing.assert_array_equal(params["hw.gate_bias"], -20.0)
    x = np.random.default_rng(0).normal(size=(3, 4)) * 0.1
    out = gs.compile(ir, "numpy").forward(params, {"x": x})["hw"]
    np.testing.assert_allclose(out, x, atol=1e-7)


def test_graph_gradients_agree_across_backends():
    graph = """\
  - {id: ln, op: layer_norm, in: x}
  - {id: h, op: linear, units: 4}
  - {id: act, op: gelu}
  - {id: hw, op: highway, activation: relu}
  - {id: sp, op: softplus, beta: 2.0}
  - {id: logits, op: linear, units: 3}
  - {id: lsm, op: log_softmax}
"""
    inputs = "  x: [batch, 3]\n  y: {shape: [batch], dtype: int}\n"
    ir = build(graph, inputs, "  - {op: nll, in: [lsm, y]}\n  - {op: l1_penalty, weight: 0.01}\n")
    params = gs.init_params(ir, seed=0)
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(5, 3)), "y": rng.integers(0, 3, size=5)}
    a = gs.compile(ir, "numpy").loss_and_grads(params, data)
    b = gs.compile(ir, "torch").loss_and_grads(params, data)
    assert a.loss == pytest.approx(b.loss, rel=1e-12)
    for k in a.grads:
        np.testing.assert_allclose(a.grads[k], b.grads[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_generated_module_with_erf_is_standalone():
    ir = build("  - {id: act, op: gelu, in: x}\n", "  x: [batch, 3]\n", outputs="[act]")
    src = gs.compile(ir, "numpy").source()
    assert "def erfc(" in src
    imports = [ln.strip() for ln in src.splitlines() if ln.strip().startswith(("import ", "from "))]
    # numpy, and the standard library's argparse and sys for running it as a script
    assert imports == ["import numpy as np", "import argparse", "import sys"], imports
    namespace: dict = {}
    exec(compile(src, "<model>", "exec"), namespace)  # noqa: S102 - our own generated code
    x = np.array([[-3.0, 0.5, 2.0]])
    want = [v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in x[0]]
    np.testing.assert_allclose(namespace["forward"]({}, {"x": x})["act"][0], want, rtol=1e-14)
