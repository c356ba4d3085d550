"""Behaviour of the arithmetic and tensor ops beyond the generated conformance suite:
shape-rule errors, symbolic dims, edge values (log at 0, ties, clip bounds), and gradients
through built graphs (broadcast reduction, stop_gradient, constants, split/concat, gather)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import graphspec as gs
from graphspec.ops import REGISTRY, ShapeError, TensorType
from graphspec_numpy.kernels import KERNELS, VJPS
from graphspec_torch.kernels import KERNELS as TORCH

MY_OPS = (
    "add sub mul div neg exp log square sqrt pow abs maximum minimum clip scale constant "
    "stop_gradient sum mean concat slice split reshape flatten transpose gather "
    "polynomial_features"
).split()


def T(*shape, dtype="float"):
    return TensorType(tuple(shape), dtype)


def attrs(name, **kw):
    return REGISTRY[name].attrs(**kw)


def spec(graph: str, inputs: str = "x: [batch, 3]\n  y: [batch, 1]", loss: str = "") -> str:
    text = f"graphspec: 1\nname: t\nseed: 0\ninputs:\n  {inputs}\ngraph:\n{graph}"
    return text + (f"loss:\n{loss}" if loss else "")


def build(text: str):
    return gs.build(gs.loads(text))


def fd_check(prog, params, inputs, grads, names, eps=1e-6, rtol=1e-6):
    """Every element of each named gradient against central differences of the loss."""
    for name in names:
        src = params if name in params else inputs
        numeric = np.zeros_like(src[name])
        for idx in np.ndindex(src[name].shape):
            for sign in (1, -1):
                moved = {k: v.copy() for k, v in src.items()}
                moved[name][idx] += sign * eps
                p, x = (moved, inputs) if src is params else (params, moved)
                numeric[idx] += sign * prog.loss_and_grads(p, x).loss / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, rtol=rtol, atol=1e-8, err_msg=name)


# ---- the registry ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", MY_OPS)
def test_op_is_documented_and_has_kernels(name):
    d = REGISTRY[name]
    assert d.summary and d.summary[0].isupper() or d.summary.startswith(("`", "'"))
    assert name in KERNELS and name in TORCH
    assert d.family in ("arithmetic", "tensor")


def test_non_differentiable_ops_have_no_vjp():
    assert "stop_gradient" not in VJPS and "constant" not in VJPS
    assert REGISTRY["gather"].differentiable(2, 2) == [True, False]


# ---- shape rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kw, types, message",
    [
        ("add", {}, [T("batch", 3), T("batch", 4)], "do not broadcast"),
        ("mul", {}, [T("batch", 3), T("time", 3)], "do not broadcast"),
        ("sub", {}, [T(3), T(3, dtype="int")], "float tensors"),
        ("sum", {"axis": 2}, [T("batch", 3)], "axis 2 is out of range for a rank-2"),
        ("sum", {"axis": [1, -1]}, [T("batch", 3)], "names an axis twice"),
        ("mean", {}, [T(3, dtype="int")], "float tensor"),
        ("concat", {}, [T("batch", 3), T("batch", 2, 1)], "one rank"),
        ("concat", {"axis": 0}, [T("batch", 3), T("batch", 3)], "symbolic 'batch'"),
        ("concat", {}, [T(2, 3), T(4, 3)], "axis 0 differs"),
        ("slice", {"start": 1}, [T(3, "batch")], "symbolic dim 'batch'"),
        ("slice", {"start": 3, "stop": 1}, [T(2, 5)], "is empty"),
        ("split", {"sections": 2, "index": 0}, [T("batch", 5)], "2 equal parts"),
        ("split", {"sections": [1, 2], "index": 0}, [T("batch", 4)], "sum to 3"),
        ("split", {"sections": 2, "index": 0, "axis": 0}, [T("batch", 4)], "symbolic 'batch'"),
        ("reshape", {"shape": [-1, 28, 28]}, [T("batch", 784)], "symbolic dim 'batch'"),
        ("reshape", {"shape": [1, "batch", 784]}, [T("batch", 784)], "must stay at axis 1"),
        ("reshape", {"shape": ["batch", 5, -1]}, [T("batch", 12)], "do not divide"),
        ("reshape", {"shape": ["batch", 5, 2]}, [T("batch", 12)], "(12 elements"),
        ("flatten", {"start_axis": 0}, [T("batch", 2, 3)], "cannot merge symbolic dim 'batch'"),
        ("flatten", {"start_axis": 2, "end_axis": 1}, [T(2, 3, 4)], "comes after"),
        ("transpose", {"axes": [0, 0, 1]}, [T(2, 3, 4)], "not a permutation"),
        ("transpose", {"axes": [1, 0]}, [T(2, 3, 4)], "all 3 axes"),
        ("gather", {}, [T(5, 3), T("batch")], "must be integers"),
        ("gather", {"axis": 2}, [T(5, 3), T(2, dtype="int")], "out of range"),
        ("polynomial_features", {}, [T("batch", "feat")], "symbolic 'feat'"),
        ("polynomial_features", {"degree": 10}, [T("batch", 784)], "limit"),
        ("polynomial_features", {"degree": 1, "include_linear": False}, [T(3, 2)], "no features"),
    ],
)
def test_shape_rule_errors(name, kw, types, message):
    with pytest.raises(ShapeError) as e:
        attrs(name, **kw).infer(*types)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "name, kw",
    [
        ("clip", {}),
        ("clip", {"min": 1.0, "max": 0.0}),
        ("sum", {"axis": []}),
        ("sum", {"axis": True}),
        ("log", {"eps": -1.0}),
        ("slice", {"step": 0}),
        ("split", {"sections": 3, "index": 3}),
        ("split", {"sections": [2, 0], "index": 0}),
        ("reshape", {"shape": [2, -1, -1]}),
        ("reshape", {"shape": [0, 3]}),
        ("reshape", {"shape": ["not a name"]}),
        ("constant", {"value": [[1.0], [1.0, 2.0]]}),
        ("constant", {"value": "one"}),
        ("polynomial_features", {"degree": 0}),
        ("scale", {}),
        ("add", {"axis": 1}),
    ],
)
def test_attribute_validation(name, kw):
    with pytest.raises(ValueError):
        attrs(name, **kw)


def test_symbolic_dims_flow_through():
    assert attrs("add").infer(T("batch", 3), T(3), T()).shape == ("batch", 3)
    assert attrs("maximum").infer(T("batch", 1), T(1, 4)).shape == ("batch", 4)
    assert attrs("sum", axis=-1, keepdims=True).infer(T("batch", 3)).shape == ("batch", 1)
    assert attrs("mean", axis=0).infer(T("batch", 3)).shape == (3,)
    assert attrs("concat").infer(T("batch", 2), T("batch", 5)).shape == ("batch", 7)
    assert attrs("slice", start=1).infer(T("batch", 5)).shape == ("batch", 4)
    assert attrs("slice", axis=0).infer(T("batch", 5)).shape == ("batch", 5)
    assert attrs("split", sections=[2, 3], index=-1).infer(T("batch", 5)).shape == ("batch", 3)
    assert attrs("flatten").infer(T("batch", 4, 7)).shape == ("batch", 28)
    assert attrs("flatten", start_axis=0, end_axis=0).infer(T("batch", 4)).shape == ("batch", 4)
    assert attrs("transpose").infer(T("batch", 2, 3)).shape == (3, 2, "batch")
    got = attrs("gather", axis=0).infer(T(10, 4), T("batch", 6, dtype="int"))
    assert got.shape == ("batch", 6, 4)
    assert attrs("polynomial_features").infer(T("batch", 2)).shape == ("batch", 5)
    assert attrs("reshape", shape=["batch", 1, 3]).infer(T("batch", 3, 1)).shape == ("batch", 1, 3)
    assert attrs("reshape", shape=["batch", "seq", -1]).infer(T("batch", "seq", 2, 3)).shape == (
        "batch",
        "seq",
        6,
    )
    int_x = T("batch", 4, dtype="int")
    assert attrs("reshape", shape=["batch", 2, 2]).infer(int_x).dtype == "int"


def test_reshape_symbolic_batch_through_a_spec():
    text = (
        spec(
            "  - {id: img, op: reshape, in: x, shape: [batch, 28, 28]}\n"
            "  - {id: back, op: reshape, shape: [batch, -1]}\n"
            "  - {id: flat, op: flatten, in: img}\n",
            inputs="x: [batch, 784]",
        )
        + "outputs: [img, back, flat]\n"
    )
    ir = build(text)
    assert ir.type("img").shape == ("batch", 28, 28)
    assert ir.type("back").shape == ("batch", 784)
    assert ir.type("flat").shape == ("batch", 784)
    x = np.random.default_rng(0).normal(size=(5, 784))
    out = gs.compile(ir, "numpy").forward({}, {"x": x})
    assert out["img"].shape == (5, 28, 28)
    np.testing.assert_array_equal(out["img"], x.reshape(5, 28, 28))
    np.testing.assert_array_equal(out["back"], x)
    np.testing.assert_array_equal(out["flat"], x)


def test_shape_errors_in_a_spec_are_located():
    text = spec("  - {id: bad, op: add, in: [x, y]}\n", inputs="x: [batch, 3]\n  y: [batch, 4]")
    with pytest.raises(gs.SpecError) as e:
        build(text + "outputs: [bad]\n")
    assert "shape mismatch in 'bad' (add)" in e.value.message
    assert e.value.location is not None and e.value.location.line == 8


def test_flops():
    assert attrs("add").flops(T(2, 3), T(3), T(), out=T(2, 3)) == 12
    assert attrs("sum").flops(T(4, 5), out=T()) == 20
    assert attrs("reshape", shape=[20]).flops(T(4, 5), out=T(20)) == 0
    assert attrs("polynomial_features").flops(T(4, 2), out=T(4, 5)) == 20


# ---- edge values ----------------------------------------------------------------------------


def test_log_is_stable_at_zero():
    x = np.array([0.0, 1e-300, -3.0, 2.0])
    y = KERNELS["log"](x, eps=1e-12)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y[:3], np.log(1e-12))
    (gx,) = VJPS["log"](np.ones(4), y, x, eps=1e-12)
    np.testing.assert_array_equal(gx, [0.0, 0.0, 0.0, 0.5])
    # A zero cotangent at a clamped point stays zero (no 0 * inf).
    (gx,) = VJPS["log"](np.zeros(4), y, x, eps=1e-12)
    assert not np.isnan(gx).any()
    t = torch.tensor(x, requires_grad=True)
    TORCH["log"](t, eps=1e-12).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [0.0, 0.0, 0.0, 0.5])


def test_plain_log_gives_minus_inf_not_nan():
    with np.errstate(divide="ignore"):
        y = KERNELS["log"](np.array([0.0, -1.0, np.e]), eps=0.0)
    assert y[0] == -np.inf and y[1] == -np.inf and y[2] == pytest.approx(1.0)


def test_bce_by_hand_stays_finite_when_the_probability_saturates():
    """-(t log p + (1 - t) log(1 - p)) built from ops: p == 1.0 must not give NaN."""
    text = (
        spec(
            "  - {id: p, op: sigmoid, in: x}\n"
            "  - {id: lp, op: log, in: p}\n"
            "  - {id: q, op: sub, in: [one, p]}\n"
            "  - {id: one, op: constant, value: 1.0}\n"
            "  - {id: lq, op: log, in: q}\n"
            "  - {id: a, op: mul, in: [y, lp]}\n"
            "  - {id: u, op: sub, in: [one, y]}\n"
            "  - {id: b, op: mul, in: [u, lq]}\n"
            "  - {id: s, op: add, in: [a, b]}\n"
            "  - {id: nll, op: neg, in: s}\n",
            inputs="x: [batch, 1]\n  y: [batch, 1]",
        )
        + "outputs: [nll]\n"
    )
    ir = build(text)
    if "sigmoid" not in KERNELS:
        pytest.skip("sigmoid has no numpy kernel yet")
    out = gs.compile(ir, "numpy").forward(
        gs.init_params(ir),
        {"x": np.array([[40.0], [-800.0], [0.0]]), "y": np.array([[0.0], [1.0], [1.0]])},
    )
    assert np.isfinite(out["nll"]).all()
    assert out["nll"][0, 0] == pytest.approx(-np.log(1e-12))


@pytest.mark.parametrize("name, wa", [("maximum", [1.0, 0.5, 0.0]), ("minimum", [0.0, 0.5, 1.0])])
def test_ties_split_the_gradient_like_torch(name, wa):
    a, b = np.array([3.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0])
    g = np.array([1.0, 2.0, 4.0])
    ga, gb = VJPS[name](g, KERNELS[name](a, b), a, b)
    np.testing.assert_array_equal(ga, g * wa)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    TORCH[name](ta, tb).backward(torch.tensor(g))
    np.testing.assert_array_equal(ga, ta.grad.numpy())
    np.testing.assert_array_equal(gb, tb.grad.numpy())


def test_clip_gradient_at_the_bounds_matches_torch_clamp():
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    (gx,) = VJPS["clip"](np.ones(5), None, x, min=0.0, max=1.0)
    np.testing.assert_array_equal(gx, [0, 1, 1, 1, 0])
    t = torch.tensor(x, requires_grad=True)
    TORCH["clip"](t, min=0.0, max=1.0).sum().backward()
    np.testing.assert_array_equal(gx, t.grad.numpy())


def test_abs_and_pow_at_zero_match_torch():
    x = np.array([0.0, -2.0, 3.0])
    for name, kw in [("abs", {}), ("pow", {"exponent": 0.0}), ("pow", {"exponent": 2.0})]:
        y = KERNELS[name](x, **kw)
        (gx,) = VJPS[name](np.ones(3), y, x, **kw)
        t = torch.tensor(x, requires_grad=True)
        TORCH[name](t, **kw).sum().backward()
        np.testing.assert_array_equal(gx, t.grad.numpy(), err_msg=f"{name} {kw}")


def test_polynomial_features_order():
    x = np.array([[2.0, 3.0]])
    f = KERNELS["polynomial_features"]
    np.testing.assert_array_equal(
        f(x, degree=2, include_linear=True, include_bias=False), [[2, 3, 4, 6, 9]]
    )
    np.testing.assert_array_equal(
        f(x, degree=2, include_linear=False, include_bias=True), [[1, 4, 6, 9]]
    )
    np.testing.assert_array_equal(
        f(x, degree=3, include_linear=True, include_bias=False), [[2, 3, 4, 6, 9, 8, 12, 18, 27]]
    )
    assert attrs("polynomial_features", degree=3).count(2) == 9


def test_polynomial_features_make_xor_linearly_separable():
    """x1 * x2 alone separates XOR: one linear read-out of the degree-2 features does it."""
    x = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    labels = np.array([0, 1, 1, 0])
    feats = KERNELS["polynomial_features"](x, degree=2, include_linear=True, include_bias=False)
    w = np.array([0, 0, 0, -1.0, 0])  # the x1*x2 column
    assert ((feats @ w > 0).astype(int) == labels).all()


def test_float32_stays_float32():
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    g = np.ones_like(x)
    for name, kw in [
        ("log", {"eps": 1e-12}),
        ("clip", {"min": 0.0, "max": None}),
        ("scale", {"factor": 2.0}),
        ("pow", {"exponent": 2.0}),
    ]:
        y = KERNELS[name](x, **kw)
        assert y.dtype == np.float32 and VJPS[name](g, y, x, **kw)[0].dtype == np.float32, name
    ga, gb = VJPS["maximum"](g, None, x, x.T[:1].T)
    assert ga.dtype == gb.dtype == np.float32
    y = KERNELS["polynomial_features"](x, degree=2, include_linear=True, include_bias=True)
    assert y.dtype == np.float32


# ---- gradients through built graphs ---------------------------------------------------------

BROADCAST = (
    spec(
        "  - {id: w, op: param, shape: [3]}\n"
        "  - {id: c, op: param, shape: [1, 1], init: {value: {name: normal, std: 1.0}}}\n"
        "  - {id: k, op: constant, value: [[1.0, -2.0, 0.5]]}\n"
        "  - {id: h, op: mul, in: [x, w]}\n"
        "  - {id: r, op: div, in: [h, k]}\n"
        "  - {id: h2, op: add, in: [r, c, x, k]}\n"
        "  - {id: s, op: sum, in: h2, axis: -1, keepdims: true}\n"
        "  - {id: m, op: maximum, in: [s, c]}\n"
        "  - {id: p, op: pow, in: m, exponent: 2.0}\n"
        "  - {id: a, op: abs, in: p}\n",
        loss="  - {op: mse, in: [a, y]}\n  - {op: l2_penalty, weight: 0.01}\n",
    )
    + "outputs: [a]\n"
)


def test_broadcast_gradients_are_reduced_through_a_built_graph():
    """Scalar-like params broadcast against [batch, 3]; sum and l2_penalty share a module."""
    ir = build(BROADCAST)
    assert "k.value" in ir.state and "k.value" not in ir.params
    params = gs.init_params(ir, seed=1)
    np.testing.assert_array_equal(params["k.value"], [[1.0, -2.0, 0.5]])
    rng = np.random.default_rng(0)
    inputs = {"x": rng.normal(size=(5, 3)), "y": rng.normal(size=(5, 1))}
    prog = gs.compile(ir, "numpy")
    res = prog.loss_and_grads(params, inputs)
    assert set(res.grads) == {"w.value", "c.value", "x"}
    assert res.grads["c.value"].shape == (1, 1) and res.grads["w.value"].shape == (3,)
    trainable = {k: v for k, v in params.items() if k != "k.value"}
    fd_check(prog, params, inputs, res.grads, list(trainable) + ["x"])
    # The generated module calls the renamed kernels (no builtin shadowed).
    src = prog.source()
    assert "def sum_(" in src and "= sum_(" in src and "def sum(" not in src


STOP = (
    spec(
        "  - {id: w, op: param, shape: [1]}\n"
        "  - {id: h, op: mul, in: [x, w]}\n"
        "  - {id: frozen, op: stop_gradient, in: h}\n"
        "  - {id: out, op: add, in: [h, frozen]}\n",
        inputs="x: [batch, 1]\n  y: [batch, 1]",
        loss="  - {op: mse, in: [out, y]}\n",
    )
    + "outputs: [out]\n"
)

SPLIT = (
    spec(
        "  - {id: w, op: param, shape: [1, 5]}\n"
        "  - {id: h, op: mul, in: [x, w]}\n"
        "  - {id: left, op: split, in: h, sections: [2, 3], index: 0}\n"
        "  - {id: right, op: split, in: h, sections: [2, 3], index: 1}\n"
        "  - {id: back, op: concat, in: [right, left]}\n"
        "  - {id: rev, op: slice, in: back, step: -1}\n"
        "  - {id: t, op: transpose, in: rev}\n"
        "  - {id: tt, op: transpose, in: t}\n"
        "  - {id: r, op: mean, in: tt, axis: -1, keepdims: true}\n"
        "  - {id: e, op: exp, in: r}\n"
        "  - {id: l, op: log, in: e}\n",
        inputs="x: [batch, 5]\n  y: [batch, 1]",
        loss="  - {op: mse, in: [l, y]}\n",
    )
    + "outputs: [back, tt]\n"
)

EMBED = (
    spec(
        "  - {id: table, op: param, shape: [6, 2]}\n"
        "  - {id: emb, op: gather, in: [table, ids]}\n"
        "  - {id: flat, op: flatten}\n"
        "  - {id: feats, op: polynomial_features}\n"
        "  - {id: score, op: sum, axis: -1, keepdims: true}\n",
        inputs="ids: {shape: [batch, 3], dtype: int}\n  y: [batch, 1]",
        loss="  - {op: mse, in: [score, y]}\n",
    )
    + "outputs: [score]\n"
)


def test_stop_gradient_blocks_only_its_branch():
    ir = build(STOP)
    params = {"w.value": np.array([0.7])}
    x, y = np.array([[1.0], [2.0], [-1.0]]), np.array([[0.5], [1.0], [2.0]])
    res = gs.compile(ir, "numpy").loss_and_grads(params, {"x": x, "y": y})
    h = x * 0.7
    expected = np.sum(2 * (2 * h - y) / 3 * x)  # only the live branch: d(out)/dw = x
    np.testing.assert_allclose(res.grads["w.value"], [expected], rtol=1e-12)
    np.testing.assert_allclose(res.grads["x"], 2 * (2 * h - y) / 3 * 0.7, rtol=1e-12)


def test_split_and_concat_round_trip_with_gradients():
    ir = build(SPLIT)
    assert ir.type("back").shape == ("batch", 5)
    rng = np.random.default_rng(3)
    params = {"w.value": rng.normal(size=(1, 5))}
    inputs = {"x": rng.normal(size=(4, 5)), "y": rng.normal(size=(4, 1))}
    prog = gs.compile(ir, "numpy")
    h = inputs["x"] * params["w.value"]
    out = prog.forward(params, inputs)
    np.testing.assert_array_equal(out["back"], np.concatenate([h[:, 2:], h[:, :2]], axis=1))
    np.testing.assert_array_equal(out["tt"], out["back"][:, ::-1])
    res = prog.loss_and_grads(params, inputs)
    fd_check(prog, params, inputs, res.grads, ["w.value", "x"])


def test_embedding_lookup_with_int_indices():
    ir = build(EMBED)
    assert ir.type("emb").shape == ("batch", 3, 2)
    assert ir.type("feats").shape == ("batch", 27)
    rng = np.random.default_rng(4)
    params = {"table.value": rng.normal(size=(6, 2))}
    inputs = {"ids": np.array([[0, 5, 5], [2, -1, 3]]), "y": rng.normal(size=(2, 1))}
    prog = gs.compile(ir, "numpy")
    res = prog.loss_and_grads(params, inputs)
    assert set(res.grads) == {"table.value"}
    assert not res.grads["table.value"][1].any() and not res.grads["table.value"][4].any()
    fd_check(prog, params, inputs, res.grads, ["table.value"])


def test_constant_follows_the_program_dtype():
    text = (
        spec(
            "  - {id: k, op: constant, value: [2.0, -1.0, 0.5]}\n"
            "  - {id: out, op: mul, in: [x, k]}\n",
            inputs="x: [batch, 3]",
        )
        + "outputs: [out]\n"
    )
    ir = build(text)
    params = gs.init_params(ir)
    assert set(params) == {"k.value"}
    x = np.ones((2, 3))
    for backend in ("numpy", "torch"):
        prog = gs.compile(ir, backend, dtype="float32", device="cpu")
        out = prog.forward(params, {"x": x})["out"]
        assert out.dtype == np.float32, backend
        np.testing.assert_array_equal(out, [[2.0, -1.0, 0.5]] * 2)


def _random_inputs(ir, rng):
    out = {}
    for name in ir.inputs:
        shape = tuple(4 if isinstance(d, str) else d for d in ir.type(name).shape)
        if ir.type(name).dtype == "int":
            out[name] = rng.integers(-2, 6, size=shape)
        else:
            out[name] = rng.normal(size=shape)
    return out


@pytest.mark.parametrize("name", ["BROADCAST", "STOP", "SPLIT", "EMBED"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numpy_and_torch_programs_agree(name, dtype):
    """The whole-graph programs (generated modules) of both backends, per DESIGN tolerances."""
    ir = build(globals()[name])
    params = gs.init_params(ir, seed=2)
    inputs = _random_inputs(ir, np.random.default_rng(5))
    fwd, grad = {
        "float64": ((1e-12, 1e-12), (1e-9, 1e-10)),
        "float32": ((1.3e-6, 1e-5), (2e-3, 1e-4)),
    }[dtype]
    a = gs.compile(ir, "numpy", dtype=dtype).loss_and_grads(params, inputs)
    b = gs.compile(ir, "torch", dtype=dtype, device="cpu").loss_and_grads(params, inputs)
    assert a.loss == pytest.approx(b.loss, rel=fwd[0], abs=fwd[1])
    assert set(a.grads) == set(b.grads)
    for k in a.grads:
        np.testing.assert_allclose(a.grads[k], b.grads[k], rtol=grad[0], atol=grad[1], err_msg=k)
