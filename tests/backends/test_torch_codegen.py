"""The generated torch module: readable, standalone (only torch), same numbers as in-process."""

from __future__ import annotations

import ast
import io
import os
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_helpers import dropout_noise, features_batch, features_ir, max_rel, xor_batch, xor_ir

import graphspec as gs
from graphspec.codegen.kernels import collect
from graphspec.errors import BackendError
from graphspec_torch.codegen import RULES, write_initial_params
from graphspec_torch.kernels import KERNELS

SITE_PACKAGES = str(Path(torch.__file__).resolve().parents[1])


def test_module_imports_only_torch() -> None:
    tree = ast.parse(gs.compile(features_ir(), "torch", device="cpu").source())
    top: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            top.add(node.module or "")
    assert top == {"math", "torch", "torch.nn", "torch.nn.functional"}
    nested = {
        a.name for node in ast.walk(tree) if isinstance(node, ast.Import) and node not in tree.body
        for a in node.names
    }
    assert nested <= {"zipfile", "ast"}  # the .npz reader: standard library only


def test_readable_forward_and_exact_names() -> None:
    ir = features_ir()
    prog = gs.compile(ir, "torch", device="cpu")
    src = prog.source()
    # One line per node, parameters read as attributes, shape comment and YAML location.
    assert (
        "head = linear(float_2, self.head_weight, self.head_bias)  "
        "# linear -> [batch, 3]  (<features>:12:5)" in src
    )
    # The shared weight is one parameter read twice.
    assert "twin = linear(to_2, self.head_weight, self.twin_bias)" in src
    assert "twin_weight" not in src
    names = prog.module.SPEC_NAMES
    assert list(names) == ir.params + ir.state
    model = prog.new_model()
    assert set(model.spec_state_dict()) == set(ir.params) | set(ir.state)
    assert {n for n, _ in model.named_parameters()} == {names[p] for p in ir.params}
    assert {n for n, _ in model.named_buffers()} == {names[s] for s in ir.state}


def test_tracebacks_show_generated_lines() -> None:
    ir = xor_ir()
    prog = gs.compile(ir, "torch", device="cpu")
    prog.check_inputs = lambda *args: None  # let the bad shape reach the generated code
    bad = {"x": np.zeros((3, 5)), "y": np.zeros((3, 1))}  # 5 features, not 2
    with pytest.raises(RuntimeError) as info:
        prog.forward(gs.init_params(ir), bad)
    text = "".join(traceback.format_exception(info.value))
    assert "hidden = linear(x, self.hidden_weight, self.hidden_bias)" in text
    assert "<graphspec:xor-mlp_torch:" in text


def test_every_kernel_can_be_copied() -> None:
    lib = collect(list(KERNELS.values()), RULES)
    namespace: dict[str, object] = {}
    header = "import math\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
    exec(compile(header + lib.source, "<kernels>", "exec"), namespace)
    for fn in KERNELS.values():
        assert callable(namespace[fn.__name__])
    assert "@kernel" not in lib.source


def _helper(x):  # type: ignore[no-untyped-def]
    return x * 2


def _uses_helper(x):  # type: ignore[no-untyped-def]
    return _helper(x) + SCALE


def _uses_numpy(x):  # type: ignore[no-untyped-def]
    return np.tanh(x)


SCALE = 3.0
_helper.__module__ = _uses_helper.__module__ = "graphspec_torch.kernels.testing"


def test_copy_brings_helpers_and_constants_and_refuses_other_modules() -> None:
    lib = collect([_uses_helper], RULES)
    assert lib.names == ["SCALE", "_helper", "_uses_helper"]
    namespace: dict[str, object] = {}
    exec(lib.source, namespace)
    assert namespace["_uses_helper"](1.0) == 5.0
    with pytest.raises(BackendError, match="uses module 'numpy' as 'np'"):
        collect([_uses_numpy], RULES)


def test_compile_hook_writes_plain_tensors(tmp_path: Path) -> None:
    ir = features_ir()
    params = gs.init_params(ir)
    path = write_initial_params(ir, params, tmp_path / "model.py")
    assert path == tmp_path / "model.pt"
    loaded = torch.load(path, weights_only=True)
    assert set(loaded) == set(ir.params) | set(ir.state)
    for k, v in loaded.items():
        assert v.dtype == torch.float64
        np.testing.assert_array_equal(v.numpy(), params[k])


def test_npz_reader_handles_numpy_layouts() -> None:
    module = gs.compile(xor_ir(), "torch", device="cpu").module
    cases = {
        "c": np.arange(12.0).reshape(3, 4),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "f32": np.arange(5, dtype=np.float32),
        "scalar": np.array(2.5),
        "empty": np.zeros((0, 3)),
        "ints": np.arange(6).reshape(2, 3),
        "bools": np.array([True, False]),
    }
    for name, a in cases.items():
        for version in [(1, 0), (2, 0), (3, 0)]:
            buf = io.BytesIO()
            np.lib.format.write_array(buf, a, version=version)
            t = module._parse_npy(buf.getvalue(), name)
            assert tuple(t.shape) == a.shape, name
            np.testing.assert_array_equal(t.numpy(), a)


# ---- the written file in a fresh interpreter ----------------------------------------------

_RUNNER = """
import os
import sys
# -I leaves the script's folder off sys.path; -S skips site-packages and their .pth hooks (the
# editable graphspec install). Put back only this folder and torch's site-packages.
sys.path[:0] = [os.getcwd()]
sys.path.append({site!r})
try:
    import graphspec
except ImportError:
    pass
else:
    sys.exit("graphspec is importable here: " + graphspec.__file__)
import torch
import model

inputs = torch.load("inputs.pt", weights_only=True)
noise = torch.load("noise.pt", weights_only=True)
m = model.Model(dtype=torch.float64)
m.load_params({weights!r})
out = {{}}
m.eval()
for k, v in m(inputs).items():
    out["out/" + k] = v.detach()
m.train()
x = dict(inputs, x=inputs["x"].clone().requires_grad_(True))
loss, terms = m.losses(x, noise)
loss.backward()
out["loss"] = loss.detach()
for name, attr in model.SPEC_NAMES.items():
    t = getattr(m, attr)
    out["grad/" + name] = t.grad if t.grad is not None else torch.zeros_like(t)
    out["value/" + name] = t.detach()
out["grad/x"] = x["x"].grad
torch.save(out, "results.pt")
"""


def _run_standalone(tmp_path: Path, ir: gs.IR, params: dict, inputs: dict, noise: dict,
                    weights: str) -> dict[str, torch.Tensor]:
    prog = gs.compile(ir, "torch", device="cpu", dtype="float64")
    prog.write(tmp_path / "model.py", params)
    tensors = prog.to_tensors(inputs, inputs=True)
    torch.save(tensors, tmp_path / "inputs.pt")
    torch.save(prog.to_tensors(noise), tmp_path / "noise.pt")
    (tmp_path / "run.py").write_text(
        textwrap.dedent(_RUNNER.format(site=SITE_PACKAGES, weights=weights))
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "run.py"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return torch.load(tmp_path / "results.pt", weights_only=True)


@pytest.mark.parametrize("which", ["xor", "features"])
def test_written_module_runs_without_graphspec_and_matches(tmp_path: Path, which: str) -> None:
    ir = xor_ir() if which == "xor" else features_ir()
    inputs = xor_batch() if which == "xor" else features_batch()
    noise = {} if which == "xor" else dropout_noise()
    params = gs.init_params(ir)
    res = _run_standalone(tmp_path, ir, params, inputs, noise, "model.pt")
    prog = gs.compile(ir, "torch", device="cpu", dtype="float64")
    fwd = prog.forward(params, inputs)
    for k, v in fwd.items():
        assert max_rel(res[f"out/{k}"].numpy(), v) <= 1e-12
    lg = prog.loss_and_grads(params, inputs, noise=noise)
    assert abs(float(res["loss"]) - lg.loss) <= 1e-12 * max(1.0, abs(lg.loss))
    for k, g in lg.grads.items():
        assert max_rel(res[f"grad/{k}"].numpy(), g) <= 1e-12, k
    for k, v in params.items():  # the initial values arrived exactly
        if k in ir.params:
            np.testing.assert_array_equal(res[f"value/{k}"].numpy(), v)


def test_written_module_loads_graphspec_checkpoints(tmp_path: Path) -> None:
    ir = features_ir()
    params = gs.init_params(ir, seed=11)
    arrays = {f"param/{k}": v for k, v in params.items()}
    arrays["optim/step"] = np.array(3)  # other checkpoint content is ignored
    np.savez(tmp_path / "ckpt.npz", **arrays)
    res = _run_standalone(tmp_path, ir, gs.init_params(ir), features_batch(), dropout_noise(),
                          "ckpt.npz")
    for k in ir.params:
        np.testing.assert_array_equal(res[f"value/{k}"].numpy(), params[k])
