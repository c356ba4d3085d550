"""The conformance suite, generated from the op registry: every op, every sample."""

from __future__ import annotations

import numpy as np
import pytest
from conformance import (
    FD_RTOL,
    FORWARD_ATOL,
    FORWARD_RTOL,
    GRAD_ATOL,
    GRAD_RTOL,
    all_cases,
    directional_fd,
    full_jacobian_fd,
    missing_pieces,
    numpy_forward,
    numpy_state,
    numpy_vjp,
    torch_forward_and_grads,
    unbroadcast,
)

from graphspec.ops import REGISTRY

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
    np.testing.assert_allclose(y_np, y_t, rtol=FORWARD_RTOL, atol=FORWARD_ATOL, err_msg=case.id)
    for a, b in zip(numpy_state(case), state_t):
        np.testing.assert_allclose(a, b, rtol=FORWARD_RTOL, atol=FORWARD_ATOL, err_msg=case.id)


DIFF_CASES = [c for c in CASES if any(c.diff)]


@pytest.mark.parametrize("case", DIFF_CASES, ids=[c.id for c in DIFF_CASES])
def test_numpy_vjp_matches_torch_autograd(case):
    rng = np.random.default_rng(1)
    y = np.asarray(numpy_forward(case))
    g = rng.standard_normal(y.shape)
    grads = numpy_vjp(case, g)
    _, tgrads, _ = torch_forward_and_grads(case, g)
    for i, d in enumerate(case.diff):
        if not d:
            continue
        assert grads[i] is not None, f"{case.id}: no gradient for {case.arg_names[i]}"
        mine = unbroadcast(grads[i], case.args[i].shape)
        assert mine.shape == case.args[i].shape
        np.testing.assert_allclose(
            mine, tgrads[i], rtol=GRAD_RTOL, atol=GRAD_ATOL,
            err_msg=f"{case.id}: gradient of {case.arg_names[i]}",
        )


@pytest.mark.parametrize("case", DIFF_CASES, ids=[c.id for c in DIFF_CASES])
def test_numpy_vjp_matches_finite_differences(case):
    rng = np.random.default_rng(2)
    y = np.asarray(numpy_forward(case))
    g = rng.standard_normal(y.shape)
    analytic, numeric = directional_fd(case, g, rng)
    assert analytic == pytest.approx(numeric, rel=FD_RTOL, abs=1e-7), case.id
    for name, err in full_jacobian_fd(case, g):
        assert err < FD_RTOL * 10, f"{case.id}: Jacobian of {name} off by {err:.2e}"
