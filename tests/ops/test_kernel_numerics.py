"""Numerical edge cases where the numpy kernels must match torch: large logits in float32,
``log`` with ``eps: 0`` below zero, and scalar (0-d) inputs on the torch backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conformance import all_cases, numpy_vjp

import graphspec as gs
from graphspec_numpy import kernels
from graphspec_numpy.kernels import RESIDUALS, SPECS
from graphspec_numpy.kernels.activations import log_softmax
from graphspec_numpy.kernels.arithmetic import log, log_vjp
from graphspec_numpy.kernels.losses import cross_entropy
from graphspec_numpy.kernels.stochastic import log_prob

# ONNX's test_logsoftmax_large_number: the second row would lose 2.4e-4 to rounding if the
# max were added back before subtracting the log-sum (float32 spacing at 1e4 is 1e-3).
LARGE = np.array([[0.0, 1.0, 2.0, 3.0], [10000.0, 10001.0, 10002.0, 10003.0]], np.float32)
EXPECTED = np.array([-3.4401897, -2.4401897, -1.4401897, -0.44018975], np.float32)
TOL = 1e-6  # torch's error here is 2.4e-7


def test_log_softmax_at_large_logits_in_float32() -> None:
    got = log_softmax(LARGE, axis=-1)
    assert got.dtype == np.float32
    want = F.log_softmax(torch.from_numpy(LARGE), dim=-1).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    np.testing.assert_allclose(got, [EXPECTED, EXPECTED], rtol=0, atol=TOL)


def test_log_softmax_of_a_row_of_minus_infinity_stays_defined() -> None:
    x = np.array([[-np.inf, -np.inf], [0.0, -np.inf]])
    with np.errstate(invalid="ignore", divide="ignore"):
        got = log_softmax(x, axis=-1)
    want = F.log_softmax(torch.from_numpy(x), dim=-1).numpy()
    np.testing.assert_array_equal(got[1], want[1])
    assert np.isnan(got[0]).all() == np.isnan(want[0]).all()


@pytest.mark.parametrize("shift", [0.0, 1e4, -1e4, 3e4])
def test_cross_entropy_at_large_logits_in_float32(shift: float) -> None:
    z = (LARGE[:1] + np.float32(shift)).repeat(3, axis=0)
    labels = np.array([0, 2, 3])
    got = cross_entropy(z, labels)
    want = F.cross_entropy(torch.from_numpy(z), torch.from_numpy(labels)).item()
    assert abs(float(got) - want) <= TOL
    onehot = np.eye(4, dtype=np.float32)[labels]
    assert abs(float(cross_entropy(z, onehot)) - want) <= TOL


def test_categorical_log_prob_at_large_logits_in_float32() -> None:
    z = np.eye(4, dtype=np.float32)[[0, 3]]
    got = log_prob(z, LARGE, dist="categorical", parameterization="sigma", logits=True)
    # (torch.distributions.Categorical normalizes with logsumexp added back: 2.4e-4 off here)
    want = F.log_softmax(torch.from_numpy(LARGE), dim=-1)[[0, 1], [0, 3]].numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    np.testing.assert_allclose(got, EXPECTED[[0, 3]], rtol=0, atol=TOL)


def test_large_logits_through_a_float32_program(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "graphspec: 1\nname: t\ninputs: {z: [batch, 4], y: {shape: [batch], dtype: int}}\n"
        "graph:\n  - {id: lp, op: log_softmax, in: z}\noutputs: [lp]\n"
        "loss:\n  - {op: cross_entropy, in: [z, y]}\n"
    )
    ir = gs.build(gs.load(path))
    y = np.array([0, 3])
    want = F.cross_entropy(torch.from_numpy(LARGE), torch.from_numpy(y)).item()
    for backend in ("numpy", "torch"):
        prog = gs.compile(ir, backend=backend, dtype="float32")
        np.testing.assert_allclose(
            prog.forward({}, {"z": LARGE})["lp"], [EXPECTED, EXPECTED], rtol=0, atol=TOL
        )
        assert abs(prog.evaluate({}, {"z": LARGE, "y": y}).loss - want) <= TOL


# ---- log with eps: 0 -------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, 1e-12, 0.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_gradient_matches_torch_below_and_at_eps(eps: float, dtype: type) -> None:
    """Below eps the clamp is flat: gradient 0 (torch's clamp selects it; multiplying by a
    0/1 mask gave NaN where g / 0 is infinite).  At x = eps = 0 both give g / 0."""
    x = np.array([-2.0, -1e-30, 0.0, 1e-30, 0.25, 0.5, 3.0], dtype)
    for g_value in (1.0, 0.0, -2.0):
        g = np.full_like(x, g_value)
        xt = torch.from_numpy(x).requires_grad_(True)
        yt = torch.log(torch.clamp(xt, min=eps))
        yt.backward(torch.from_numpy(g))
        assert xt.grad is not None
        with np.errstate(divide="ignore", invalid="ignore"):
            y = log(x, eps=eps)
            (gx,) = log_vjp(g, y, x, eps=eps)
        rtol = 1e-6 if dtype is np.float32 else 1e-14  # two libms may differ in the last bit
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=rtol)
        np.testing.assert_array_equal(gx, xt.grad.numpy())  # g / x exactly; NaN where both are
        assert gx.dtype == dtype
        assert (gx[x < eps] == 0).all()


def test_log_eps_zero_gradients_agree_across_backends(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "graphspec: 1\nname: t\ninputs: {x: [batch, 3]}\n"
        "graph:\n  - {id: l, op: log, in: x, eps: 0}\n  - {id: c, op: clip, min: -5}\n"
        "outputs: [c]\nloss:\n  - {op: l2_penalty, in: [c]}\n"
    )
    ir = gs.build(gs.load(path))
    x = np.array([[-1.0, 2.0, 0.5], [-3.0, 1.0, 4.0]])
    grads = {}
    for backend in ("numpy", "torch"):
        with np.errstate(divide="ignore", invalid="ignore"):
            res = gs.compile(ir, backend=backend, dtype="float64").loss_and_grads({}, {"x": x})
        grads[backend] = res.grads["x"]
    np.testing.assert_allclose(grads["numpy"], grads["torch"], rtol=1e-12)
    assert (grads["numpy"][x < 0] == 0).all() and np.isfinite(grads["numpy"]).all()


# ---- 0-d inputs on the torch backend ------------------------------------------------------------


def test_scalar_inputs_keep_their_shape_on_both_backends(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "graphspec: 1\nname: t\ninputs: {s: [], x: [batch, 2], y: [batch, 2]}\n"
        "graph:\n  - {id: m, op: mul, in: [x, s]}\n  - {id: e, op: square, in: s}\n"
        "outputs: [m, e]\nloss:\n  - {op: mse, in: [m, y]}\n"
    )
    ir = gs.build(gs.load(path))
    x = np.array([[1.0, 2.0], [3.0, 4.0]])[:, ::-1]  # not C-contiguous (negative stride)
    inputs = {"s": np.array(2.0), "x": x, "y": np.zeros((2, 2))}
    results = {}
    for backend in ("numpy", "torch"):
        prog = gs.compile(ir, backend=backend, dtype="float64")
        out = prog.forward({}, {"s": np.float64(2.0), "x": x})
        assert out["e"].shape == () and out["m"].shape == (2, 2)
        ev = prog.evaluate({}, inputs)
        assert ev.outputs["e"].shape == ()  # type: ignore[attr-defined]
        res = prog.loss_and_grads({}, inputs)
        assert res.grads["s"].shape == () and res.grads["x"].shape == (2, 2)
        results[backend] = (out, res)
    (out_np, res_np), (out_t, res_t) = results["numpy"], results["torch"]
    np.testing.assert_allclose(out_t["m"], out_np["m"], rtol=1e-12)
    np.testing.assert_allclose(res_t.grads["s"], res_np.grads["s"], rtol=1e-12)
    np.testing.assert_allclose(res_t.grads["x"], res_np.grads["x"], rtol=1e-12)
    assert float(res_np.grads["s"]) == pytest.approx(2 * np.sum(x * x * 2.0) / 4)


# ---- the declarations generated code relies on ------------------------------------------------

SHAPED = all_cases(lambda d: d.name in SPECS and SPECS[d.name].input_shaped)


@pytest.mark.parametrize("case", SHAPED, ids=[c.id for c in SHAPED])
def test_input_shaped_vjps_return_each_gradient_in_its_arguments_shape(case) -> None:
    """Generated code leaves out ``unbroadcast`` for these VJPs: the promise must hold."""
    out = kernels.forward(case.opdef.name, case.args, case.kwargs)
    grads = numpy_vjp(case, np.ones(np.shape(out[0] if case.opdef.has_state else out)))
    for i, d in enumerate(case.diff):
        if d and grads[i] is not None:
            assert np.shape(grads[i]) == np.shape(case.args[i]), (case.id, case.arg_names[i])


SAVING = all_cases(lambda d: d.name in RESIDUALS)


@pytest.mark.parametrize("case", SAVING, ids=[c.id for c in SAVING])
def test_saving_residuals_changes_no_output(case) -> None:
    """``save=True`` returns ``(out, res)`` with ``out`` what the kernel returns otherwise."""
    plain = kernels.forward(case.opdef.name, case.args, case.kwargs)
    out, res = kernels.forward(case.opdef.name, case.args, case.kwargs, save=True)
    assert res is not None
    flat = (lambda v: [v[0], *v[1]]) if case.opdef.has_state else (lambda v: [v])
    for a, b in zip(flat(plain), flat(out), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=case.id)


IN_PLACE = all_cases(
    lambda d: d.name in kernels.IN_PLACE or (d.name in SPECS and SPECS[d.name].in_place)
)


@pytest.mark.parametrize("case", IN_PLACE, ids=[c.id for c in IN_PLACE])
def test_owning_the_buffer_changes_no_result(case) -> None:
    """``own=True`` (generated code passes it where the first argument is a fresh array at
    its last use) gives the same bits as a new array, in that array."""
    op = case.opdef.name
    plain = kernels.forward(op, case.args, case.kwargs)
    if op in kernels.IN_PLACE:
        x = np.array(case.args[0])
        out = kernels.forward(op, [x, *case.args[1:]], {**case.kwargs, "own": True})
        assert out is x and out.tobytes() == plain.tobytes(), case.id
    if op in SPECS and SPECS[op].in_place:
        rng = np.random.default_rng(case.index)
        g = rng.normal(size=np.shape(plain)).astype(plain.dtype)
        g[..., 0] = -0.0  # the sign of a masked zero survives too
        want = kernels.backward(op, g.copy(), plain, case.args, case.kwargs)
        mine = g.copy()
        got = kernels.VJPS[op](mine, plain, *case.args, **case.kwargs, own=True)
        assert got[0] is mine, case.id
        for a, b in zip(want, got, strict=True):
            assert (a is None) == (b is None) and (a is None or a.tobytes() == b.tobytes())


def test_in_place_and_fresh_declarations() -> None:
    """The MLPs' buffers: relu and tanh may overwrite their input and cotangent (sigmoid its
    cotangent); linear's output and gradients are new arrays; identity (which returns its
    argument) is not fresh."""
    assert {"relu", "tanh"} <= kernels.IN_PLACE
    assert all(SPECS[op].in_place for op in ("relu", "tanh", "sigmoid"))
    assert {"linear", "relu", "tanh"} <= kernels.FRESH and SPECS["linear"].fresh
    assert "identity" not in kernels.FRESH and not SPECS["identity"].fresh


def test_every_residual_op_hands_its_vjp_the_residuals() -> None:
    assert {"batch_norm", "layer_norm", "highway", "scaled_dot_product_attention"} <= RESIDUALS
    assert all(SPECS[op].reads_residuals for op in RESIDUALS)
    # softmax and log_softmax need only their output: no input, nothing recomputed.
    assert SPECS["softmax"].reads == {"y"} and SPECS["log_softmax"].reads == {"y"}
