"""``state_grads``: ‖∂L/∂h_t‖ over the steps of an rnn or lstm, against torch autograd on an
unrolled cell loop, and what ``train --plot`` draws of it."""

from __future__ import annotations

import json

import numpy as np
import pytest

import graphspec as gs
from graphspec.analysis.pictures import add_state_grads
from graphspec.analysis.plots import report
from graphspec.analysis.state_grads import recurrent_node, state_gradients
from graphspec.errors import SpecError
from tests.train.test_data import make_spec

T, B, F, U = 5, 3, 2, 4


def _spec(tmp_path, rec: str, before: str = "", analysis: str = ""):
    return make_spec(
        tmp_path,
        "{source: adding, samples: 64, val_split: 0.25}",
        inputs=f"x: [batch, {T}, {F}]\n  y: [batch, 1]",
        graph=before + rec + "\n  - {id: p, op: linear, units: 1}",
        loss="- {op: mse, in: [p, y]}",
        extra="  epochs: 1\n  batch_size: 16" + analysis,
    )


@pytest.mark.parametrize(
    ("op", "before"),
    [("lstm", ""), ("rnn", ""), ("lstm", "- {id: s, op: tanh, in: x}\n  ")],
    ids=["lstm", "rnn", "lstm-on-computed-input"],
)
def test_state_gradients_equal_autograd_through_an_unrolled_cell_loop(tmp_path, op, before):
    torch = pytest.importorskip("torch")
    rec = f"- {{id: r, op: {op}, units: {U}, returns: last}}"
    if not before:
        rec = rec.replace("units", "in: x, units")
    _, ir = _spec(tmp_path, rec, before)
    node = recurrent_node(ir)
    rng = np.random.default_rng(0)
    params = {k: rng.normal(scale=0.6, size=v.shape) for k, v in gs.init_params(ir, 0).items()}
    x, y = rng.normal(size=(B, T, F)), rng.normal(size=(B, 1))
    ours = state_gradients(ir, node, params, {"x": x, "y": y})
    assert ours.shape == (T, B, U)

    w_ih, w_hh, b_ih, b_hh = (torch.tensor(params[k]) for k in node.inputs[node.n_inputs :])
    cell = (torch.nn.LSTMCell if op == "lstm" else torch.nn.RNNCell)(F, U, dtype=torch.float64)
    with torch.no_grad():
        for name, v in zip(
            ("weight_ih", "weight_hh", "bias_ih", "bias_hh"), (w_ih, w_hh, b_ih, b_hh)
        ):
            getattr(cell, name).copy_(v)
    xs = torch.tensor(x)
    xs = torch.tanh(xs) if before else xs
    h = torch.zeros(B, U, dtype=torch.float64, requires_grad=True)
    c = torch.zeros(B, U, dtype=torch.float64)
    states = [h]
    for t in range(T):
        if op == "lstm":
            h, c = cell(xs[:, t], (h, c))
        else:
            h = cell(xs[:, t], h)
        h.retain_grad()
        states.append(h)
    pred = h @ torch.tensor(params["p.weight"]) + torch.tensor(params["p.bias"])
    torch.mean((pred - torch.tensor(y)) ** 2).backward()
    want = np.stack([s.grad.numpy() for s in states[:T]])  # h_0 .. h_{T-1}
    np.testing.assert_allclose(ours, want, rtol=1e-10, atol=1e-14)
    assert np.abs(want).min() > 0  # every step's gradient is really compared


def test_train_plot_draws_state_gradients_and_overlays_variants(tmp_path):
    runs = []
    for op in ("lstm", "rnn"):
        spec, _ = _spec(tmp_path, f"- {{id: r, op: {op}, in: x, units: {U}, returns: last}}")
        out = tmp_path / op
        gs.train(spec, backend="numpy", out=out, progress=False)
        written = add_state_grads(spec, out)
        assert [p.name for p in written] == ["state_grads.json"]
        result = json.loads((out / "state_grads.json").read_text())
        assert result["op"] == op and result["steps"] == T and len(result["norms"]) == T
        assert all(v > 0 for v in result["norms"])
        assert add_state_grads(spec, out) == []  # already there
        runs.append(out)
    pictures = report(runs, tmp_path / "both")
    assert "state_grads.png" in [p.name for p in pictures]


def test_no_state_gradients_for_models_they_do_not_fit(tmp_path):
    for i, rec in enumerate(
        (
            f"- {{id: r, op: gru, in: x, units: {U}, returns: last}}",
            f"- {{id: r, op: lstm, in: x, units: {U}}}\n  - {{id: q, op: flatten}}",
            "- {id: r, op: flatten, in: x}",
        )
    ):
        spec, _ = _spec(tmp_path, rec)
        gs.train(spec, backend="numpy", out=tmp_path / f"run{i}", progress=False)
        assert add_state_grads(spec, tmp_path / f"run{i}") == []


def test_a_listed_entry_that_cannot_be_measured_is_a_located_error(tmp_path):
    rec = f"- {{id: r, op: lstm, in: x, units: {U}, bidirectional: true, returns: last}}"
    with pytest.raises(SpecError, match="state_grads cannot measure 'r': it is bidirectional"):
        spec, ir = _spec(tmp_path, rec, analysis="\nanalysis:\n  - {procedure: state_grads}")
        gs.train(spec, backend="numpy", out=tmp_path / "run", progress=False)
