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
    an entry_points.txt on sys.path.  It also installs ``bare``, the same backend declaring no
    capabilities."""
    dist = tmp_path / "graphspec_mini-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: graphspec-mini\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[graphspec.backends]\nmini = mini_backend:backend\nbare = mini_backend:bare\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(SUPPORT))
    yield "mini"
    backend_mod._LOADED.pop("mini", None)
    backend_mod._LOADED.pop("bare", None)


DROPOUT = """
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
"""


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
    ir = gs.build(gs.loads(DROPOUT))
    # mini declares noise injection: its steps take numpy's draws and agree.
    report = verify(ir, backends=("numpy", "mini"), steps=4)
    assert report.ok, report.render(only_failures=True)
    assert report.steps == 4 and any(r.check == "step param" for r in report.rows)
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


# ---- declared capabilities ----------------------------------------------------------------


def test_a_backend_that_declares_nothing_gets_the_defaults(mini):
    assert backend_mod.capabilities(gs.get_backend("bare")) == backend_mod.Capabilities()
    # Its trainer has a set_noise method, but nothing declares it: verify does not call it,
    # compares no steps of a stochastic spec, and says why.
    report = verify(gs.build(gs.loads(DROPOUT)), backends=("numpy", "bare"), steps=4)
    assert report.ok, report.render(only_failures=True)
    assert report.steps == 0 and not any(r.check.startswith("step") for r in report.rows)
    assert any("the trainer of bare takes no injected noise (Trainer.set_noise" in n
               for n in report.notes)
    # The same spec without noise: its steps are compared.
    report = verify(TESTS.parent / "specs" / "xor.yaml", backends=("numpy", "bare"), steps=2)
    assert report.ok and report.steps == 2


def test_a_malformed_declaration_is_refused_when_the_backend_loads(mini, monkeypatch):
    import mini_backend

    monkeypatch.setattr(mini_backend.MiniBackend, "capabilities", {"noise_injection": True})
    with pytest.raises(gs.BackendError, match="backend 'mini' declares capabilities of type "
                       "dict, not graphspec.backend.Capabilities"):
        gs.get_backend("mini")
    with pytest.raises(ValueError, match="a reference backend locates non-finite values"):
        backend_mod.Capabilities(reference=True)


def test_the_reference_backend_is_the_first_installed_one_declaring_it(mini):
    # 'bare' and 'mini' come first by name and declare no reference; numpy does.
    assert {"bare", "mini", "numpy"} <= set(backend_mod.available_backends())
    assert backend_mod.reference_backend() is gs.get_backend("numpy")
    assert backend_mod.capabilities(gs.get_backend("numpy")).locate_nonfinite


def test_compile_writes_initial_params_only_where_declared(mini, tmp_path, capsys):
    from graphspec.cli import main

    xor = str(TESTS.parent / "specs" / "xor.yaml")
    out = tmp_path / "out"
    assert main(["compile", xor, "--backend", "mini", "-o", str(out / "m.py")]) == 0
    assert ("note: no initial parameters written: the mini backend declares no "
            "Capabilities.write_initial_params") in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["m.py"]
    assert main(["compile", xor, "--backend", "numpy", "-o", str(out / "n.py")]) == 0
    assert f"wrote {out / 'n.npz'}" in capsys.readouterr().err
    # The backend's writer fails: a located error naming the file, not a traceback.
    (out / "d.npz").mkdir()
    assert main(["compile", xor, "--backend", "numpy", "-o", str(out / "d.py")]) == 1
    assert f"error: cannot write {out / 'd.npz'}: Is a directory" in capsys.readouterr().err


def test_data_parallel_training_is_refused_where_not_declared(mini):
    from graphspec.errors import UsageError
    from graphspec.train.parallel import require_distributed

    with pytest.raises(UsageError) as e:
        require_distributed("mini", "--nproc")
    assert e.value.message == ("--nproc: the mini backend trains in one process; "
                               "data-parallel training runs on --backend torch")
    with pytest.raises(UsageError, match="--nproc: the numpy backend is graphspec's "
                       "single-process reference"):
        require_distributed("numpy", "--nproc")
    assert callable(require_distributed("torch", "--nproc"))  # not called: torch stays unloaded
