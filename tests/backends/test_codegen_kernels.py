"""Kernel copying through the generated text: an op whose numpy kernel calls a helper of its
own family (a function defined next to it, in no prelude) works in the module ``graphspec
compile`` writes, and a kernel calling a name that exists nowhere fails at generation.

The op is registered for the test only (tests/support/registries.py): its definition, a
numpy family module with a helper and a constant, and a torch kernel.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from registries import temporary_op

import graphspec as gs
from graphspec.cli import main
from graphspec.errors import BackendError
from graphspec.verify import verify

DEFINITION = '''
from graphspec.ops.registry import Elementwise, op


@op("shifted_square")
class ShiftedSquare(Elementwise):
    """``y = (x + shift)^2``."""

    shift: float = 0.5
'''

NUMPY_FAMILY = '''
import numpy as np

from graphspec_numpy.kernels import kernel, vjp

SHIFT_SCALE = 1.0  # a family constant


def _shifted(x, shift):
    """A family helper: defined beside its kernels, in no prelude."""
    return x + SHIFT_SCALE * shift


@kernel("shifted_square")
def shifted_square(x, *, shift):
    return np.square(_shifted(x, shift))


@vjp("shifted_square", reads=("x",))
def shifted_square_vjp(g, y, x, *, shift):
    # dL/dx = 2 g (x + shift)
    return (2 * g * _shifted(x, shift),)
'''

TORCH = """
from graphspec_torch.kernels import kernel


@kernel("shifted_square")
def shifted_square(x, *, shift):
    return (x + shift) ** 2
"""

SPEC = """
graphspec: 1
name: family
seed: 0
inputs:
  x: [batch, 3]
  y: [batch, 1]
graph:
  - {id: h, op: linear, in: x, units: 4}
  - {id: s, op: shifted_square, shift: 0.25}
  - {id: out, op: linear, units: 1}
outputs: [out]
loss:
  - {op: mse, in: [out, y]}
"""


def _import(path: Path) -> ModuleType:
    """The written file as its own module: only what the file defines is there."""
    spec = importlib.util.spec_from_file_location(f"written_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_family_helper_travels_with_its_kernel_into_the_written_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("family.yaml").write_text(SPEC, encoding="utf-8")
    with temporary_op("shifted_square", DEFINITION, NUMPY_FAMILY, TORCH, tmp_path):
        assert main(["compile", "family.yaml", "--backend", "numpy", "-o", "model.py"]) == 0
        written = _import(tmp_path / "model.py")
        source = (tmp_path / "model.py").read_text(encoding="utf-8")
        assert "def _shifted(x, shift):" in source and "SHIFT_SCALE = 1.0" in source
        ir = gs.build(gs.load("family.yaml"))
        prog = gs.compile(ir, "numpy")
        assert prog.source() == source
        params = gs.init_params(ir)
        rng = np.random.default_rng(0)
        inputs = {"x": rng.normal(size=(5, 3)), "y": rng.normal(size=(5, 1))}
        # The written module against the kernels called in-process, and against the Program.
        h = inputs["x"] @ params["h.weight"] + params["h.bias"]
        expected = (h + 0.25) ** 2 @ params["out.weight"] + params["out.bias"]
        np.testing.assert_allclose(written.forward(params, inputs)["out"], expected, rtol=1e-12)
        loss, _, grads, _ = written.loss_and_grads(params, inputs)
        res = prog.loss_and_grads(params, inputs)
        assert loss == res.loss and set(grads) == set(res.grads) == {*ir.params, "x"}
        for k in grads:
            np.testing.assert_array_equal(grads[k], res.grads[k])
        # The generated torch module computes the same numbers, gradients included.
        report = verify(ir, backends=("numpy", "torch"), steps=0)
        assert report.ok, report.render(only_failures=True)


def test_a_kernel_calling_a_missing_helper_fails_at_generation(tmp_path: Path) -> None:
    broken = NUMPY_FAMILY.replace(
        "return np.square(_shifted(x, shift))", "return np.square(_nowhere(x, shift))"
    )
    with temporary_op("shifted_square", DEFINITION, broken, TORCH, tmp_path):
        ir = gs.build(gs.loads(SPEC, "<family>"))
        with pytest.raises(BackendError) as info:
            gs.compile(ir, "numpy")
    assert str(info.value) == (
        "numpy kernel 'shifted_square' uses '_nowhere', which is neither defined in "
        "graphspec_numpy.kernels.shifted_square nor a builtin; the generated module would "
        "fail with a NameError"
    )


def test_a_temporary_op_leaves_no_trace(tmp_path: Path) -> None:
    from graphspec.ops import REGISTRY
    from graphspec_numpy.kernels import KERNELS, SPECS, VJPS
    from graphspec_torch.kernels import KERNELS as TORCH_KERNELS

    with temporary_op("shifted_square", DEFINITION, NUMPY_FAMILY, TORCH, tmp_path):
        assert "shifted_square" in REGISTRY and "shifted_square" in SPECS
    for table in (REGISTRY, KERNELS, VJPS, SPECS, TORCH_KERNELS):
        assert "shifted_square" not in table
