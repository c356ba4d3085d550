"""The conformance suite, generated from the op registry: every op, every sample."""

from __future__ import annotations

import numpy as np
import pytest
from conformance import (
    all_cases,
    cast_case,
    directional_fd,
    fd_tol,
    full_jacobian_fd,
    missing_pieces,
    numpy_forward,
    numpy_state,
    numpy_vjp,
    tol,
    torch_forward_and_grads,
    unbroadcast,
)

from graphspec.ops import REGISTRY, Input, OpDef
from graphspec.ops.registry import Elementwise

CASES = all_cases(lambda d: not missing_pieces(d))
IDS = [c.id for c in CASES]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_op_is_complete(name):
    """Every op has samples, a shape rule, a numpy kernel (and VJP) and a torch kernel."""
    assert missing_pieces(REGISTRY[name]) == []


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_shape_rule_matches_output(case):
    y = np.asarray(numpy_forward(case))
    inferred = case.attrs.infer(*case.types)
    assert tuple(inferred.shape) == y.shape, f"{case.id}: rule says {inferred}, got {y.shape}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_numpy_forward_matches_torch(case):
    y_np = np.asarray(numpy_forward(case))
    y_t, _, state_t = torch_forward_and_grads(case, None)
    t = tol(case, "forward")
    np.testing.assert_allclose(y_np, y_t, rtol=t.rtol, atol=t.atol, err_msg=case.id)
    for a, b in zip(numpy_state(case), state_t):
        np.testing.assert_allclose(a, b, rtol=t.rtol, atol=t.atol, err_msg=case.id)


DIFF_CASES = [c for c in CASES if any(c.diff)]


@pytest.mark.parametrize("case", DIFF_CASES, ids=[c.id for c in DIFF_CASES])
def test_numpy_vjp_matches_torch_autograd(case):
    rng = np.random.default_rng(1)
    y = np.asarray(numpy_forward(case))
    g = rng.standard_normal(y.shape)
    grads = numpy_vjp(case, g)
    _, tgrads, _ = torch_forward_and_grads(case, g)
    t = tol(case, "grad")
    for i, d in enumerate(case.diff):
        if not d:
            continue
        assert grads[i] is not None, f"{case.id}: no gradient for {case.arg_names[i]}"
        mine = unbroadcast(grads[i], case.args[i].shape)
        assert mine.shape == case.args[i].shape
        np.testing.assert_allclose(
            mine, tgrads[i], rtol=t.rtol, atol=t.atol,
            err_msg=f"{case.id}: gradient of {case.arg_names[i]}",
        )


@pytest.mark.parametrize("case", DIFF_CASES, ids=[c.id for c in DIFF_CASES])
def test_numpy_vjp_matches_finite_differences(case):
    reason = getattr(case.attrs, "fd_exempt", None)
    if reason:
        pytest.skip(f"{case.id}: {reason}")
    rng = np.random.default_rng(2)
    y = np.asarray(numpy_forward(case))
    g = rng.standard_normal(y.shape)
    analytic, numeric = directional_fd(case, g, rng)
    t = fd_tol(case, float(np.vdot(g, y)))
    np.testing.assert_allclose(analytic, numeric, rtol=t.rtol, atol=t.atol, err_msg=case.id)
    for name, analytic_j, numeric_j in full_jacobian_fd(case, g):
        np.testing.assert_allclose(analytic_j, numeric_j, rtol=t.rtol, atol=t.atol,
                                   err_msg=f"{case.id}: Jacobian of {name}")


# ---- float32: both backends in single precision, graphspec.verify's float32 tolerances ----


def _has_float(case):
    return any(np.asarray(a).dtype.kind == "f" for a in case.args)


F32_CASES = [c for c in CASES if _has_float(c)]
F32_DIFF_CASES = [c for c in DIFF_CASES if _has_float(c)]


@pytest.mark.parametrize("case", F32_CASES, ids=[c.id for c in F32_CASES])
def test_float32_forward_matches_torch(case):
    c32 = cast_case(case, "float32")
    y_np = np.asarray(numpy_forward(c32))
    y_t, _, state_t = torch_forward_and_grads(c32, None)
    if y_np.dtype.kind == "f" and case.opdef.category != "metric":  # metrics: host floats
        assert y_np.dtype == np.float32, f"{case.id}: numpy float32 inputs gave {y_np.dtype}"
    t = tol(case, "forward", "float32")
    np.testing.assert_allclose(y_np, y_t, rtol=t.rtol, atol=t.atol, err_msg=case.id)
    for a, b in zip(numpy_state(c32), state_t):
        np.testing.assert_allclose(a, b, rtol=t.rtol, atol=t.atol, err_msg=case.id)


@pytest.mark.parametrize("case", F32_DIFF_CASES, ids=[c.id for c in F32_DIFF_CASES])
def test_float32_vjp_matches_torch_autograd(case):
    c32 = cast_case(case, "float32")
    rng = np.random.default_rng(1)
    y = np.asarray(numpy_forward(c32))
    g = rng.standard_normal(y.shape).astype(np.float32)
    grads = numpy_vjp(c32, g)
    _, tgrads, _ = torch_forward_and_grads(c32, g)
    t = tol(case, "grad", "float32")
    for i, d in enumerate(case.diff):
        if not d:
            continue
        mine = unbroadcast(grads[i], case.args[i].shape)
        assert mine.dtype == np.float32, f"{case.id}: float32 gradient of {case.arg_names[i]} " \
            f"came back as {mine.dtype}"
        np.testing.assert_allclose(
            mine, tgrads[i], rtol=t.rtol, atol=t.atol,
            err_msg=f"{case.id}: float32 gradient of {case.arg_names[i]}",
        )


# ---- the declarations the suite reads --------------------------------------------------------

KINDS = {"forward", "grad", "fd"}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_tolerance_overrides_give_a_reason(name):
    """A looser tolerance sits next to its op with the reason, and names known kinds."""
    table = getattr(REGISTRY[name].attrs, "tolerances", None)
    if not table:
        return
    assert str(table.get("reason", "")).strip(), f"'{name}' loosens tolerances without a reason"
    for key, value in table.items():
        if key == "reason":
            continue
        dtype, _, kind = key.rpartition(".")
        assert kind in KINDS and dtype in ("", "float32", "float64"), f"{name}: bad key {key!r}"
        rtol, atol = value
        assert 0 <= rtol < 1 and 0 <= atol < 1, f"{name}: {key} = {value!r}"


def test_completeness_catches_an_op_without_kernels(monkeypatch):
    """An op registered with a shape rule and samples but no kernels is reported as such."""

    class Bare(Elementwise):
        """A new elementwise op nobody wrote kernels for."""

    monkeypatch.setitem(REGISTRY, "__bare", OpDef("__bare", Bare, (Input("x"),), "op",
                                                  False, False, False))
    assert missing_pieces(REGISTRY["__bare"]) == ["numpy kernel", "numpy VJP", "torch kernel"]
