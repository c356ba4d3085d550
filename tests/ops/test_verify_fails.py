"""A check that can fail: one numpy VJP made wrong by 1% is caught by ``verify`` (which names
the op's node and the tensors) and by the conformance suite (which names the op)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conformance import cases

from graphspec.ops import REGISTRY
from graphspec.verify import verify


def tanh_vjp(g, y, x, *, own=False):
    # dL/dx = 1.01 * g * (1 - y^2): deliberately 1% wrong (the generator copies this source;
    # tanh's VJP is declared in_place, so generated code passes own, which this one ignores)
    return (1.01 * g * (1 - y * y),)


@pytest.fixture
def wrong_tanh_vjp(monkeypatch):
    """The numpy VJP of tanh, 1% off; programs compiled inside the test use it."""
    from graphspec_numpy.kernels import VJPS

    monkeypatch.setitem(VJPS, "tanh", tanh_vjp)


def test_verify_names_the_node_and_the_tensors(wrong_tanh_vjp):
    report = verify("specs/xor.yaml", steps=2)
    assert not report.ok
    bad = {(r.check, r.tensor) for r in report.failures}
    # Everything upstream of the tanh node 'act' is wrong, nothing downstream.
    for leaf in ("hidden.weight", "hidden.bias", "x"):
        assert ("grad", leaf) in bad and ("fd", leaf) in bad
    assert ("grad", "logit.weight") not in bad and ("loss", "total") not in bad
    assert ("step param", "hidden.weight") in bad
    blamed = [r for r in report.failures if r.check == "vjp"]
    assert [r.node for r in blamed] == ["act"]
    assert blamed[0].where == "specs/xor.yaml:12:5"
    verdict = report.render().splitlines()[-1]
    assert verdict.startswith("FAIL") and "grad hidden" in verdict and "'act'" in verdict
    assert report.to_dict()["ok"] is False


def test_verify_alone_blames_the_node_by_finite_differences(wrong_tanh_vjp):
    report = verify("specs/xor.yaml", backends=("numpy",), steps=0)
    assert not report.ok
    assert [r.node for r in report.failures if r.check == "vjp"] == ["act"]


def test_the_conformance_checks_fail_for_that_op(wrong_tanh_vjp):
    import test_conformance as suite

    tanh_cases = list(cases(REGISTRY["tanh"]))
    assert tanh_cases
    for case in tanh_cases:
        name = re.escape(case.id)
        with pytest.raises(AssertionError, match=name + ".*gradient of x"):
            suite.test_numpy_vjp_matches_torch_autograd(case)
        with pytest.raises(AssertionError, match=name):
            suite.test_numpy_vjp_matches_finite_differences(case)
        with pytest.raises(AssertionError, match=name + ".*float32 gradient of x"):
            suite.test_float32_vjp_matches_torch_autograd(case)
    # The forward pass is untouched, and the other ops' checks still pass.
    suite.test_numpy_forward_matches_torch(tanh_cases[0])
    (sigmoid,) = list(cases(REGISTRY["sigmoid"]))[:1]
    suite.test_numpy_vjp_matches_torch_autograd(sigmoid)


def test_without_the_fixture_all_is_well():
    report = verify("specs/xor.yaml", steps=2)
    assert report.ok, report.render(only_failures=True)


def tanh(x, *, own=False):
    return np.tanh(x) * 1.001  # deliberately wrong forward (own: see tanh_vjp)


def test_a_wrong_forward_is_traced_to_its_node(monkeypatch):
    from graphspec_numpy.kernels import KERNELS

    monkeypatch.setitem(KERNELS, "tanh", tanh)
    report = verify("specs/xor.yaml", steps=0)
    assert not report.ok
    assert ("output", "logit") in {(r.check, r.tensor) for r in report.failures}
    values = [r for r in report.failures if r.check == "value"]
    assert [r.node for r in values] == ["act"]  # not 'logit', which only inherits the error
    assert "suspect node 'act'" in report.verdict()
