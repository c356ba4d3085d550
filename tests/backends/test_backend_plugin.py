"""A third backend plugs in through the ``graphspec.backends`` entry-point group, exactly as a
separately installed package would, and is verified against the reference."""

from __future__ import annotations

from pathlib import Path

import pytest

import graphspec as gs
from graphspec import backend as backend_mod
from graphspec.verify import verify

TESTS = Path(__file__).parents[1]
SUPPORT = TESTS / "support"


@pytest.fixture
def mini(tmp_path, monkeypatch):
    """Install the mini backend (tests/support/mini_backend.py) the way pip would: a dist-info with
    an entry_points.txt on sys.path."""
    dist = tmp_path / "graphspec_mini-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: graphspec-mini\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[graphspec.backends]\nmini = mini_backend:backend\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(SUPPORT))
    yield "mini"
    backend_mod._LOADED.pop("mini", None)


def test_the_entry_point_is_discovered(mini):
    assert "mini" in backend_mod.available_backends()
    assert gs.get_backend("mini").name == "mini"


def test_mini_computes_what_numpy_computes(mini):
    ir = gs.build(gs.load(TESTS.parent / "specs" / "xor.yaml"))
    prog = gs.compile(ir, "mini")
    params = gs.init_params(ir)
    import numpy as np

    x = {"x": np.array([[0.0, 1.0], [1.0, 1.0]]), "y": np.array([[1.0], [0.0]])}
    loss, terms, grads = prog.loss_and_grads(params, x)
    ref = gs.compile(ir, "numpy").loss_and_grads(params, x)
    assert loss == pytest.approx(ref.loss, rel=1e-12)
    assert set(grads) == set(ref.grads)


@pytest.mark.parametrize("spec", ["xor.yaml", "residual_mlp.yaml"])
def test_verify_the_mini_backend_against_the_reference(mini, spec):
    path = TESTS.parent / "specs" / spec
    if not path.exists():
        pytest.skip(f"{spec} is not in the gallery")
    report = verify(path, backends=("numpy", "mini"), steps=5)
    assert report.ok, report.render(only_failures=True)
    assert {"grad", "step param", "fd"} <= {r.check for r in report.rows}
    assert all(r.against in ("mini~numpy", "numpy~finite differences") for r in report.rows)


def test_verify_feeds_injected_noise_to_a_stochastic_spec(mini):
    ir = gs.build(gs.loads("""
graphspec: 1
name: drop
inputs: {x: [batch, 3], y: [batch, 1]}
graph:
  - {id: h, op: linear, in: x, units: 4}
  - {id: d, op: dropout, p: 0.3}
  - {id: out, op: linear, units: 1}
outputs: [out]
loss: [{op: mse, in: [out, y]}]
train:
  data: {source: linear, features: 3}
  optimizer: {name: adam, lr: 0.01}
"""))
    report = verify(ir, backends=("numpy", "mini"), steps=4)
    assert report.ok, report.render(only_failures=True)
    # A trainer without set_noise: the trajectory is not compared, and the report says so.
    stepped = any(r.check.startswith("step") for r in report.rows)
    assert stepped or any("set_noise" in n for n in report.notes)
    # mini and torch both take injected noise: dropout's masks agree step after step.
    report = verify(ir, backends=("mini", "torch"), steps=4)
    assert report.ok, report.render(only_failures=True)
    assert any(r.check == "step param" for r in report.rows)


def test_a_wrong_kernel_in_the_plugin_is_caught(mini, monkeypatch):
    import mini_backend

    real = mini_backend.VJPS["tanh"]
    patched = dict(mini_backend.VJPS, tanh=lambda g, y, x: tuple(1.01 * v for v in real(g, y, x)))
    monkeypatch.setattr(mini_backend, "VJPS", patched)
    report = verify(TESTS.parent / "specs" / "xor.yaml", backends=("numpy", "mini"), steps=0)
    assert not report.ok
    assert [r.node for r in report.failures if r.check == "vjp"] == ["act"]
