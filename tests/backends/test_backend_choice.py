"""``backend="auto"``: numpy or torch and the device, by the measured rule of
graphspec.backend_choice (small steps on numpy, large ones on torch, on CUDA when present)."""

from __future__ import annotations

import pytest
from paths import XOR

import graphspec as gs
import graphspec.backend_choice as choice
from graphspec.backend_choice import choose, resolve, step_batch, step_flops
from graphspec.cli import main
from graphspec.ir.counts import flop_count


def _mlp(width: int, batch: int | str = 64):
    return gs.build(
        gs.loads(
            f"""\
graphspec: 1
name: mlp
inputs:
  x: [batch, {width}]
  y: [batch, 1]
graph:
  - {{id: h, op: linear, in: x, units: {width}}}
  - {{id: a, op: relu}}
  - {{id: logit, op: linear, units: 1}}
loss:
  - {{op: bce_with_logits, in: [logit, y]}}
train:
  data: {{source: blobs, samples: 300}}
  batch_size: {batch}
""",
            "mlp.yaml",
        )
    )


@pytest.fixture
def cuda(monkeypatch):
    """Whether the (mocked) device check finds a CUDA GPU: set ``cuda.present``."""

    class Device:
        present = False
        asked = 0

        def __call__(self) -> bool:
            self.asked += 1
            return self.present

    device = Device()
    monkeypatch.setattr(choice, "cuda_available", device)
    return device


def test_step_flops_are_three_forward_passes_at_the_spec_batch():
    ir = _mlp(8, batch=16)
    assert step_batch(ir) == 16
    assert step_flops(ir, 16) == 3 * flop_count(ir, 16)
    assert step_batch(_mlp(8, batch="full")) == 300  # the data's samples


def test_the_choice_flips_at_the_measured_thresholds(monkeypatch, cuda):
    ir = _mlp(32)
    flops = step_flops(ir, 64)
    monkeypatch.setattr(choice, "NUMPY_MAX_FLOPS_GPU", flops)
    monkeypatch.setattr(choice, "NUMPY_MAX_FLOPS_CPU", flops)
    assert choose(ir).backend == "numpy"
    assert cuda.asked == 0  # a step for numpy on any device never imports torch
    monkeypatch.setattr(choice, "NUMPY_MAX_FLOPS_GPU", flops - 1)
    assert choose(ir).backend == "numpy"  # no GPU: the CPU's threshold
    cuda.present = True
    assert (choose(ir).backend, choose(ir).device) == ("torch", "cuda")
    cuda.present = False
    monkeypatch.setattr(choice, "NUMPY_MAX_FLOPS_CPU", flops - 1)
    assert (choose(ir).backend, choose(ir).device) == ("torch", "cpu")


def test_small_models_go_to_numpy_large_ones_to_torch(cuda):
    small, large, huge = _mlp(16), _mlp(1024), _mlp(16384, batch=512)
    assert step_flops(small, 64) <= choice.NUMPY_MAX_FLOPS_GPU < step_flops(large, 64)
    assert step_flops(large, 64) <= choice.NUMPY_MAX_FLOPS_CPU < step_flops(huge, 512)
    assert choose(small).backend == "numpy"
    assert choose(large).backend == "numpy"  # on one CPU, numpy is still faster
    assert (choose(huge).backend, choose(huge).device) == ("torch", "cpu")
    cuda.present = True
    assert (choose(large).backend, choose(large).device) == ("torch", "cuda")
    assert choose(small).backend == "numpy"  # a tiny step is faster on numpy than launched
    assert choose(large, "cpu").backend == "numpy"  # a CPU asked for: the CPU's rule


def test_a_cuda_device_asked_for_gets_torch(cuda):
    picked = choose(_mlp(4), "cuda:1")
    assert (picked.backend, picked.device) == ("torch", "cuda:1")


def test_resolve_says_what_it_chose_and_why(capsys, cuda):
    assert resolve("torch", _mlp(4), "cpu") == ("torch", "cpu")  # a named backend is kept
    assert capsys.readouterr().err == ""
    assert resolve("auto", _mlp(4)) == ("numpy", "cpu")
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("note: backend auto: numpy (") and "FLOPs per training step" in err


def test_compile_with_auto(capsys, cuda):
    prog = gs.compile(_mlp(4), "auto")
    assert "import numpy as np" in prog.source()
    assert "backend auto: numpy" in capsys.readouterr().err


def test_the_commands_take_auto(tmp_path, capsys, cuda):
    assert main(["compile", str(XOR), "--backend", "auto", "-o", str(tmp_path / "xor.py")]) == 0
    err = capsys.readouterr().err
    assert "note: backend auto: numpy (" in err and "wrote" in err
    assert "import numpy as np" in (tmp_path / "xor.py").read_text(encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", str(XOR), "--backend", "auto", "--epochs", "1", "--out", str(out)]) == 0
    assert "note: backend auto: numpy (" in capsys.readouterr().err
    assert gs.load_run(out).summary["backend"] == "numpy"
    assert main(["train", str(XOR), "--backend", "auto", "--nproc", "2"]) == 2
