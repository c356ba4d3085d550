"""Attention ops through built graphs: formulas, masks, estimators, both backends agreeing."""

from __future__ import annotations

import numpy as np
import pytest

import graphspec as gs
from graphspec.errors import SpecError

HEADER = "graphspec: 1\nname: t\nseed: 0\n"


def build(text: str) -> gs.IR:
    return gs.build(gs.loads(HEADER + text))


def softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def both(ir: gs.IR, params, inputs, noise=None, training=True):
    """Outputs, loss and gradients from numpy and torch, checked to agree (float64)."""
    res = {}
    for backend in ("numpy", "torch"):
        prog = gs.compile(ir, backend)
        out = prog.forward(params, inputs, training=training, noise=noise)
        lg = prog.loss_and_grads(params, inputs, noise=noise, training=training) \
            if ir.losses else None
        res[backend] = (out, lg)
    (o1, l1), (o2, l2) = res["numpy"], res["torch"]
    for k in o1:
        np.testing.assert_allclose(o1[k], o2[k], rtol=1e-12, atol=1e-12, err_msg=k)
    if l1 is not None:
        assert l1.loss == pytest.approx(l2.loss, rel=1e-12)
        for k in l1.grads:
            np.testing.assert_allclose(l1.grads[k], l2.grads[k], rtol=1e-9, atol=1e-12, err_msg=k)
    return o1, l1


# ---- soft attention ----------------------------------------------------------------------

SOFT = """
inputs:
  x: {shape}
  y: {target}
graph:
  - {{id: att, op: soft_attention, in: x{extra}}}
outputs: [att]
loss:
  - {{op: mse, in: [att, y]}}
"""


def soft(shape, target, extra=""):
    return build(SOFT.format(shape=shape, target=target, extra=extra))


def test_soft_attention_reweights_features():
    ir = soft("[batch, 5]", "[batch, 5]")
    assert ir.type("att.weight").shape == (5, 5) and ir.type("att.bias").shape == (5,)
    rng = np.random.default_rng(0)
    params = gs.init_params(ir, seed=0)
    params["att.bias"] = rng.normal(size=5)
    x = rng.normal(size=(4, 5))
    out, lg = both(ir, params, {"x": x, "y": rng.normal(size=(4, 5))})
    a = softmax(x @ params["att.weight"] + params["att.bias"])
    np.testing.assert_allclose(out["att"], a * x, rtol=1e-13)
    assert np.all(lg.grads["att.weight"] != 0)


@pytest.mark.parametrize("shape,target,extra,out_shape", [
    ("[batch, 5]", "[batch, 1]", ", output: sum", ("batch", 1)),
    ("[batch, 4, 3]", "[batch, 4, 3]", "", ("batch", 4, 3)),
    ("[batch, 4, 3]", "[batch, 3]", ", output: sum", ("batch", 3)),
])
def test_soft_attention_shapes_and_summary(shape, target, extra, out_shape):
    ir = soft(shape, target, extra)
    assert ir.type("att").shape == out_shape
    rng = np.random.default_rng(1)
    params = gs.init_params(ir, seed=0)
    x = rng.normal(size=(2,) + tuple(int(d) for d in shape.strip("[]").split(", ")[1:]))
    y = rng.normal(size=(2,) + out_shape[1:])
    out, _ = both(ir, params, {"x": x, "y": y})
    if x.ndim == 3:
        assert ir.type("att.weight").shape == (3,) and "att.bias" not in params
        a = softmax(x @ params["att.weight"])[..., None]
        want = a * x if extra == "" else (a * x).sum(axis=1)
        np.testing.assert_allclose(out["att"], want, rtol=1e-13)
    else:
        a = softmax(x @ params["att.weight"] + params["att.bias"])
        np.testing.assert_allclose(out["att"], (a * x).sum(axis=1, keepdims=True), rtol=1e-13)


def test_soft_attention_rejects_a_vector():
    with pytest.raises(SpecError, match=r"needs x of shape \[batch, n\] or \[batch, n, d\]"):
        soft("[batch]", "[batch]")


# ---- scaled dot-product attention ----------------------------------------------------------

SDPA = """
inputs:
  q: [batch, 4, 3]
  k: [batch, {tk}, 3]
  v: [batch, {tk}, 2]
  y: [batch, 4, 2]
graph:
  - {{id: att, op: scaled_dot_product_attention, in: [q, k, v]{extra}}}
outputs: [att]
loss:
  - {{op: mse, in: [att, y]}}
"""


@pytest.mark.parametrize("causal", [False, True])
def test_scaled_dot_product_attention(causal):
    ir = build(SDPA.format(tk=4, extra=", causal: true" if causal else ""))
    rng = np.random.default_rng(2)
    x = {n: rng.normal(size=s) for n, s in
         (("q", (2, 4, 3)), ("k", (2, 4, 3)), ("v", (2, 4, 2)), ("y", (2, 4, 2)))}
    out, lg = both(ir, {}, x)
    s = x["q"] @ x["k"].transpose(0, 2, 1) / np.sqrt(3)
    if causal:
        s = np.where(np.triu(np.ones((4, 4), bool), 1), -np.inf, s)
    np.testing.assert_allclose(out["att"], softmax(s) @ x["v"], rtol=1e-13)
    assert set(lg.grads) == {"q", "k", "v"}
    if causal:  # query i never sees keys after i: changing the last key moves only the last row
        x2 = dict(x)
        x2["k"] = x["k"].copy()
        x2["k"][:, -1] += 1.0
        out2 = gs.compile(ir, "numpy").forward({}, x2)
        np.testing.assert_array_equal(out2["att"][:, :-1], out["att"][:, :-1])
        assert not np.allclose(out2["att"][:, -1], out["att"][:, -1])


def test_scaled_dot_product_attention_shape_errors():
    with pytest.raises(SpecError, match="same number of keys"):
        build(SDPA.format(tk=5, extra="").replace("v: [batch, 5, 2]", "v: [batch, 6, 2]"))
    with pytest.raises(SpecError, match="same feature size d"):
        build(SDPA.format(tk=4, extra="").replace("k: [batch, 4, 3]", "k: [batch, 4, 2]"))


# ---- hard attention ------------------------------------------------------------------------

HARD = """
inputs:
  x: [batch, 6]
  y: [batch, 6]
graph:
  - {{id: att, op: hard_attention, in: x, {attrs}}}
outputs: [att]
loss:
  - {{op: mse, in: [att, y]}}
"""


def hard(attrs: str) -> gs.IR:
    return build(HARD.format(attrs=attrs))


def hard_params(seed=0):
    rng = np.random.default_rng(seed)
    return {"att.weight": rng.normal(size=(6, 6)), "att.bias": rng.normal(size=6) * 2}


@pytest.mark.parametrize("k", [1, 2])
def test_hard_attention_keeps_the_top_k(k):
    ir = hard(f"estimator: none, k: {k}")
    params = hard_params()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 6))
    out, lg = both(ir, params, {"x": x, "y": rng.normal(size=(5, 6))})
    s = x @ params["att.weight"] + params["att.bias"]
    mask = np.zeros_like(s)
    np.put_along_axis(mask, np.argsort(-s, axis=1)[:, :k], 1.0, axis=1)
    np.testing.assert_array_equal(out["att"], x * mask)
    # estimator none: the scores learn nothing; x learns through the kept entries only
    assert not np.any(lg.grads["att.weight"]) and not np.any(lg.grads["att.bias"])
    assert np.all((lg.grads["x"] != 0) == (mask != 0))


def test_hard_attention_straight_through_trains_the_scores():
    ir = hard("estimator: straight_through")
    params = hard_params()
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))
    _, lg = both(ir, params, {"x": x, "y": y})
    s = x @ params["att.weight"] + params["att.bias"]
    a = softmax(s)
    mask = (s == s.max(axis=1, keepdims=True)).astype(float)
    g = 2 * (x * mask - y) / y.size  # dL/datt of the mse
    gm = g * x
    gs_ = a * (gm - (gm * a).sum(axis=1, keepdims=True))  # through softmax, as if mask = a
    np.testing.assert_allclose(lg.grads["att.bias"], gs_.sum(axis=0), rtol=1e-10)
    np.testing.assert_allclose(lg.grads["x"], g * mask + gs_ @ params["att.weight"].T,
                               rtol=1e-10)


def test_hard_attention_sampling_draws_from_softmax():
    """Gumbel-max: the drawn position is distributed as softmax(scores); eval takes argmax."""
    ir = hard("estimator: none, sample: true")
    params = {"att.weight": np.zeros((6, 6)), "att.bias": np.array([0.5, -1, 1.2, 0, 0.3, -0.4])}
    prog = gs.compile(ir, "numpy")
    n = 20000
    x = np.ones((n, 6))
    out = prog.forward(params, {"x": x}, training=True, rng=np.random.default_rng(5))["att"]
    freq = out.mean(axis=0)
    p = softmax(params["att.bias"])
    assert np.all(np.abs(freq - p) < 4 * np.sqrt(p * (1 - p) / n))
    ev = prog.forward(params, {"x": x[:3]}, training=False)["att"]
    np.testing.assert_array_equal(ev, np.eye(6)[[2, 2, 2]])
    # and torch draws the same positions from the same noise
    u = np.random.default_rng(6).random((8, 6))
    both(ir, params, {"x": np.ones((8, 6)), "y": np.zeros((8, 6))}, noise={"att": u})


def test_hard_attention_over_positions_with_features():
    text = HARD.replace("x: [batch, 6]", "x: [batch, 4, 3]").replace(
        "y: [batch, 6]", "y: [batch, 4, 3]")
    ir = build(text.format(attrs="estimator: straight_through, k: 2, sample: true"))
    assert ir.type("att.weight").shape == (3,)
    rng = np.random.default_rng(7)
    params = {"att.weight": rng.normal(size=3)}
    x, y = rng.normal(size=(3, 4, 3)), rng.normal(size=(3, 4, 3))
    out, _ = both(ir, params, {"x": x, "y": y}, noise={"att": rng.random((3, 4, 3))})
    kept = np.any(out["att"] != 0, axis=-1)
    assert np.all(kept.sum(axis=1) == 2)
    np.testing.assert_array_equal(out["att"][kept], x[kept])


@pytest.mark.parametrize("attrs,message", [
    ("k: 1", "estimator"),
    ("estimator: reinforce", "estimator"),
    ("estimator: none, k: 7", "selects k=7 of only 6 positions"),
])
def test_hard_attention_errors(attrs, message):
    with pytest.raises(SpecError, match=message):
        hard(attrs)


def test_hard_attention_declares_its_surrogate_for_verification():
    assert hard("estimator: straight_through").node("att").attrs.fd_exempt
    assert hard("estimator: none").node("att").attrs.fd_exempt is None
