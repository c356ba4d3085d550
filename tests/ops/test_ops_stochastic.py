"""Sampling ops and the REINFORCE pass, through built graphs on both backends.

The statistical tests compare the mean of many gradient estimates with the analytic
gradient of an expectation, ``∇θ E_{z ~ p(z; θ)}[f(z)]``, within a few standard errors
(fixed seeds: deterministic), and the variance of the REINFORCE and reparameterization
estimators on one Gaussian model (the gallery's point: both unbiased, one far noisier).
"""

from __future__ import annotations

import numpy as np
import pytest

import graphspec as gs
from graphspec.errors import SpecError

HEADER = "graphspec: 1\nname: {name}\nseed: 0\n"


def build(text: str, name: str = "t") -> gs.IR:
    return gs.build(gs.loads(HEADER.format(name=name) + text))


def sigmoid(t: float) -> float:
    return 1.0 / (1.0 + np.exp(-t))


def estimates(prog, params, inputs, leaf, n, seed=0):
    """``n`` gradient estimates of ``leaf``, each from fresh noise."""
    rng = np.random.default_rng(seed)
    return np.array([prog.loss_and_grads(params, inputs, rng=rng).grads[leaf] for _ in range(n)])


def assert_unbiased(est: np.ndarray, exact, k: float = 4.0) -> None:
    mean = est.mean(axis=0)
    se = est.std(axis=0, ddof=1) / np.sqrt(len(est))
    assert np.all(np.abs(mean - exact) <= k * se + 1e-12), (mean, exact, se)


# ---- Bernoulli: ∇b E[mean_i (z_i - y)^2], z_i ~ Bern(sigmoid(b)) --------------------------

BERNOULLI = """
inputs:
  x: [batch, 1]
  y: [batch, 1]
graph:
  - {{id: theta, op: linear, in: x, units: 1}}
  - {{id: z, op: bernoulli_sample, logits: true, {sample}}}
  - {{id: d, op: sub, in: [z, y]}}
  - {{id: sq, op: square}}
  - {{id: cost, op: sum, axis: -1}}
outputs: [z]
loss:
  - {{op: mse, in: [z, y]}}
"""
B, Y, BIAS = 16, 0.3, 0.4
BERN_INPUTS = {"x": np.zeros((B, 1)), "y": np.full((B, 1), Y)}
BERN_PARAMS = {"theta.weight": np.array([[0.5]]), "theta.bias": np.array([BIAS])}
BERN_EXACT = sigmoid(BIAS) * (1 - sigmoid(BIAS)) * ((1 - Y) ** 2 - Y**2)


def bernoulli(sample: str) -> gs.IR:
    return build(BERNOULLI.format(sample=sample))


def test_reinforce_adds_a_zero_valued_term_built_from_registry_ops():
    ir = bernoulli("estimator: reinforce")
    assert [lid for lid, _ in ir.losses] == ["mse", "z.reinforce"]
    new = [n for n in ir.op_nodes() if ir.op(n).generated == "reinforce"]
    ops = sorted(ir.node(n).op for n in new)
    assert ops == ["log_prob", "mul", "stop_gradient", "stop_gradient", "sub", "sum"]
    for n in new:  # located at the sample, typed, edges by argument position
        node = ir.op(n)
        assert node.src == ir.node("z").src and node.type is not None
        assert [a for a, _, k in sorted(ir.graph.in_edges(n, keys=True), key=lambda e: e[2])] \
            == list(node.inputs)
    pos = {n: i for i, n in enumerate(ir.order)}
    assert all(pos[a] < pos[b] for a, b in ir.graph.edges())
    assert set(ir.order) == set(ir.graph.nodes)
    # The cost node is read by nothing but would be by a 'cost:' surrogate: a warning here.
    assert any("'cost'" in m for m, _ in ir.warnings)

    prog = gs.compile(ir, "numpy")
    noise = {"z": np.random.default_rng(3).random((B, 1))}
    res = prog.loss_and_grads(BERN_PARAMS, BERN_INPUTS, noise=noise)
    assert res.terms["z.reinforce"] == 0.0
    plain = gs.compile(bernoulli("estimator: straight_through"), "numpy")
    assert res.loss == plain.loss_and_grads(BERN_PARAMS, BERN_INPUTS, noise=noise).loss


def test_default_cost_is_the_weighted_loss_terms_the_sample_moves():
    text = BERNOULLI.format(sample="estimator: reinforce") + (
        "  - {id: again, op: mse, in: [d, y], weight: 0.5}\n"
        "  - {op: l2_penalty, weight: 0.1}\n"
    )
    ir = build(text)
    total = ir.node("z.reinforce.cost").inputs[0]
    assert ir.node(total).op == "add"
    scaled = ir.node(total).inputs
    assert scaled[0] == "mse" and ir.node(scaled[1]).op == "scale"
    assert ir.op(scaled[1]).attrs.factor == 0.5  # the penalty cannot depend on z: left out
    res = gs.compile(ir, "numpy").loss_and_grads(BERN_PARAMS, BERN_INPUTS)
    assert res.terms["z.reinforce"] == 0.0 and set(res.terms) == {
        "mse", "again", "l2_penalty", "z.reinforce"}


def test_a_sample_no_loss_depends_on_gets_no_term():
    text = BERNOULLI.format(sample="estimator: reinforce").replace(
        "in: [z, y]}", "in: [theta, y]}")
    ir = build(text)
    assert [lid for lid, _ in ir.losses] == ["mse"]
    assert any("no loss term depends on sample 'z'" in m for m, _ in ir.warnings)


def test_per_example_cost_revives_the_cost_node():
    ir = bernoulli("estimator: reinforce, cost: cost, baseline: mean")
    assert not any("'cost'" in m for m, _ in ir.warnings)
    ops = {ir.op(n).op for n in ir.op_nodes() if ir.op(n).generated}
    assert {"leave_one_out_mean", "mean", "log_prob"} <= ops
    assert ir.type("z.reinforce").shape == ()


@pytest.mark.parametrize("sample", [
    "estimator: reinforce",
    "estimator: reinforce, cost: cost",
    "estimator: reinforce, cost: cost, baseline: mean",
])
def test_reinforce_is_unbiased_for_bernoulli(sample):
    prog = gs.compile(bernoulli(sample), "numpy")
    est = estimates(prog, BERN_PARAMS, BERN_INPUTS, "theta.bias", 3000)
    assert_unbiased(est, [BERN_EXACT])


def test_baseline_and_per_example_cost_reduce_variance():
    var = {}
    for sample in ("estimator: reinforce", "estimator: reinforce, cost: cost",
                   "estimator: reinforce, cost: cost, baseline: mean"):
        prog = gs.compile(bernoulli(sample), "numpy")
        var[sample] = estimates(prog, BERN_PARAMS, BERN_INPUTS, "theta.bias", 1500).var()
    total, per_example, baseline = var.values()
    assert per_example < total / 4  # each example credited with its own cost, not the batch's
    assert baseline < per_example / 2


def test_straight_through_bernoulli_passes_the_cotangent():
    # d/db mean_i (z_i - y)^2 with dz/dP = 1: mean_i 2 (z_i - y) / B * P (1 - P) * B
    prog = gs.compile(bernoulli("estimator: straight_through"), "numpy")
    u = np.random.default_rng(4).random((B, 1))
    res = prog.loss_and_grads(BERN_PARAMS, BERN_INPUTS, noise={"z": u})
    p = sigmoid(BIAS)
    z = (u < p).astype(float)
    assert res.grads["theta.bias"][0] == pytest.approx(np.mean(2 * (z - Y)) * p * (1 - p))


# ---- categorical: ∇ E[mean_i r_{k_i}^2], k_i ~ softmax(bias) -------------------------------

CATEGORICAL = """
inputs:
  x: [batch, 1]
  r: [batch, 4]
  t: [batch, 4]
graph:
  - {id: logits, op: linear, in: x, units: 4}
  - {id: z, op: categorical_sample, estimator: reinforce, cost: cost, baseline: mean}
  - {id: f, op: mul, in: [z, r]}
  - {id: cost, op: sum, in: f2, axis: -1}
  - {id: f2, op: square, in: f}
loss:
  - {op: mse, in: [f, t], weight: 4.0}
"""


def test_reinforce_is_unbiased_for_categorical():
    ir = build(CATEGORICAL)
    prog = gs.compile(ir, "numpy")
    bias = np.array([0.3, -0.2, 0.5, 0.0])
    r = np.array([1.0, -0.5, 2.0, 0.3])
    params = {"logits.weight": np.zeros((1, 4)), "logits.bias": bias}
    inputs = {"x": np.zeros((8, 1)), "r": np.tile(r, (8, 1)), "t": np.zeros((8, 4))}
    a = np.exp(bias) / np.exp(bias).sum()
    q = r**2
    exact = a * (q - a @ q)  # ∇ sum_k a_k q_k
    est = estimates(prog, params, inputs, "logits.bias", 3000)
    assert_unbiased(est, exact)


# ---- Gaussian: ∇ E[z^2] = (2 mu, 2 sigma^2 for log sigma), both estimators ------------------

GAUSSIAN = """
inputs:
  x: [batch, 1]
  y: [batch, 1]
graph:
  - {{id: mu, op: linear, in: x, units: 1}}
  - {{id: log_sigma, op: linear, in: x, units: 1}}
  - {{id: z, op: gaussian_sample, in: [mu, log_sigma], {sample}}}
  - {{id: d, op: sub, in: [z, y]}}
  - {{id: sq, op: square}}
  - {{id: cost, op: sum, axis: -1}}
outputs: [z]
loss:
  - {{op: mse, in: [z, y]}}
"""
MU, LOG_SIGMA = 0.7, -0.3
GAUSS_PARAMS = {"mu.weight": np.zeros((1, 1)), "mu.bias": np.array([MU]),
                "log_sigma.weight": np.zeros((1, 1)), "log_sigma.bias": np.array([LOG_SIGMA])}
GAUSS_INPUTS = {"x": np.zeros((8, 1)), "y": np.zeros((8, 1))}


def test_reinforce_vs_reparameterization_on_a_gaussian():
    """Both estimators are unbiased for ∇ E[z²]; the pathwise one has lower variance, even
    against REINFORCE with per-example costs and a baseline (about 5x here; 100x without)."""
    exact = {"mu.bias": 2 * MU, "log_sigma.bias": 2 * np.exp(2 * LOG_SIGMA)}
    var = {}
    for sample in ("estimator: reparameterized",
                   "estimator: reinforce, cost: cost, baseline: mean"):
        prog = gs.compile(build(GAUSSIAN.format(sample=sample)), "numpy")
        rng = np.random.default_rng(0)
        runs = [prog.loss_and_grads(GAUSS_PARAMS, GAUSS_INPUTS, rng=rng).grads
                for _ in range(3000)]
        for leaf, want in exact.items():
            est = np.array([r[leaf] for r in runs])
            assert_unbiased(est, [want])
            var[sample.split(",")[0], leaf] = est.var()
    for leaf in exact:
        assert var["estimator: reinforce", leaf] > 3 * var["estimator: reparameterized", leaf]


@pytest.mark.parametrize("parameterization,scale", [
    ("log_sigma", LOG_SIGMA), ("log_var", 2 * LOG_SIGMA), ("sigma", np.exp(LOG_SIGMA)),
])
def test_gaussian_parameterizations_sample_the_same_value(parameterization, scale):
    ir = build(GAUSSIAN.format(sample=f"parameterization: {parameterization}"))
    prog = gs.compile(ir, "numpy")
    params = {**GAUSS_PARAMS, "log_sigma.bias": np.array([scale])}
    eps = np.random.default_rng(0).standard_normal((8, 1))
    out = prog.forward(params, GAUSS_INPUTS, noise={"z": eps})
    np.testing.assert_allclose(out["z"], MU + eps * np.exp(LOG_SIGMA), rtol=1e-14)


# ---- both backends ----------------------------------------------------------------------------

BACKEND_CASES = {
    "bernoulli reinforce": (bernoulli("estimator: reinforce"), BERN_PARAMS, BERN_INPUTS),
    "bernoulli reinforce, per-example": (
        bernoulli("estimator: reinforce, cost: cost, baseline: mean"), BERN_PARAMS, BERN_INPUTS),
    "bernoulli straight-through": (
        bernoulli("estimator: straight_through"), BERN_PARAMS, BERN_INPUTS),
    "gaussian reinforce": (
        build(GAUSSIAN.format(sample="estimator: reinforce, cost: cost")),
        GAUSS_PARAMS, GAUSS_INPUTS),
    "gaussian reparameterized": (
        build(GAUSSIAN.format(sample="parameterization: log_var")), GAUSS_PARAMS, GAUSS_INPUTS),
}


@pytest.mark.parametrize("name", sorted(BACKEND_CASES))
def test_numpy_and_torch_agree_given_the_same_noise(name):
    ir, params, inputs = BACKEND_CASES[name]
    from graphspec.verify.inputs import draw_noise

    noise = draw_noise(ir, inputs, np.random.default_rng(7))
    a = gs.compile(ir, "numpy").loss_and_grads(params, inputs, noise=noise)
    b = gs.compile(ir, "torch").loss_and_grads(params, inputs, noise=noise)
    assert a.loss == pytest.approx(b.loss, rel=1e-12, abs=1e-12)
    assert a.terms.keys() == b.terms.keys()
    for k, v in a.grads.items():
        np.testing.assert_allclose(v, b.grads[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_categorical_backends_agree():
    ir = build(CATEGORICAL)
    params = {"logits.weight": np.ones((1, 4)), "logits.bias": np.array([0.3, -0.2, 0.5, 0.0])}
    rng = np.random.default_rng(0)
    inputs = {"x": rng.normal(size=(6, 1)), "r": rng.normal(size=(6, 4)), "t": np.zeros((6, 4))}
    noise = {"z": rng.random((6, 4))}
    a = gs.compile(ir, "numpy").loss_and_grads(params, inputs, noise=noise)
    b = gs.compile(ir, "torch").loss_and_grads(params, inputs, noise=noise)
    for k, v in a.grads.items():
        np.testing.assert_allclose(v, b.grads[k], rtol=1e-9, atol=1e-12, err_msg=k)
    assert np.any(a.grads["logits.bias"] != 0)


# ---- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("sample,message", [
    ("estimator: reinforce, baseline: mean", "baseline: mean needs a per-example cost"),
    ("estimator: reinforce, cost: cots", "cost 'cots' names no node"),
    ("estimator: reinforce, cost: d", "must be a float [batch] tensor"),
    ("estimator: straight_through, cost: cost", "applies to estimator: reinforce only"),
    ("baseline: none", "estimator"),
    ("estimator: pathwise", "estimator"),
])
def test_bad_estimator_declarations(sample, message):
    with pytest.raises(SpecError) as e:
        bernoulli(sample)
    assert message in str(e.value)
    assert e.value.location is not None and e.value.location.line is not None


def test_unknown_cost_suggests_a_name():
    with pytest.raises(SpecError) as e:
        bernoulli("estimator: reinforce, cost: cots")
    assert "cost" in (e.value.hint or "")


def test_reinforce_without_a_loss_is_refused():
    text = """
inputs:
  x: [batch, 1]
graph:
  - {id: z, op: bernoulli_sample, in: x, estimator: reinforce}
"""
    with pytest.raises(SpecError, match="no loss"):
        build(text)


def test_cost_inside_a_block_resolves_to_the_instance():
    text = """
inputs:
  x: [batch, 1]
  y: [batch, 1]
blocks:
  policy:
    graph:
      - {id: theta, op: linear, units: 1}
      - {id: z, op: bernoulli_sample, logits: true, estimator: reinforce, cost: c}
      - {id: d, op: sub, in: [z, y]}
      - {id: sq, op: square}
      - {id: c, op: sum, axis: -1}
graph:
  - {id: pol, block: policy, in: x}
loss:
  - {op: mse, in: [pol.z, y]}
"""
    ir = build(text)
    assert ir.node("pol.z.reinforce.cost").inputs == ("pol.c",)
    assert ir.node("pol.z.reinforce").cluster == ir.node("pol.z").cluster


def test_log_prob_checks_its_inputs():
    text = """
inputs:
  z: [batch, 3]
  p: [batch, 3]
graph:
  - {{op: log_prob, in: [z, p], {attrs}}}
"""
    assert build(text.format(attrs="dist: bernoulli")).type("log_prob_0").shape == ("batch",)
    with pytest.raises(SpecError, match=r"takes the inputs \(z, mu, scale\)"):
        build(text.format(attrs="dist: normal"))
    with pytest.raises(SpecError, match="applies to dist: normal only"):
        build(text.format(attrs="dist: bernoulli, parameterization: sigma"))
