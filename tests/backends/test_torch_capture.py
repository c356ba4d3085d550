"""``--capture cuda_graph`` and ``--amp``: the whole torch training step as a CUDA graph
(graphspec_torch.capture) and mixed precision.  Without a GPU: capture is refused cleanly,
its refusals and its exact undoing of the warm-up steps are checked on the CPU, bf16 trains
on the CPU; with one (``-m cuda``), capture trains like the eager step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from paths import XOR
from torch_helpers import FEATURES, cuda, features_batch, features_ir, needs_cuda, xor_batch

import graphspec as gs
from graphspec.cli import main
from graphspec.errors import BackendError
from graphspec.runs.run import load_run
from graphspec_torch import capture

ADAM = ["train.optimizer={name: adam, lr: 0.05}"]


def _xor(overrides: list[str] | None = None) -> gs.IR:
    return gs.build(gs.load(XOR, overrides or []))


def test_capture_is_refused_on_the_cpu() -> None:
    with pytest.raises(BackendError, match="--capture cuda_graph needs a CUDA device") as e:
        gs.compile(_xor(), "torch", device="cpu", dtype="float32", capture="cuda_graph")
    assert "--capture none" in (e.value.hint or "")


def test_capture_on_the_cpu_is_a_clean_command_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "train",
            str(XOR),
            "--backend",
            "torch",
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--capture",
            "cuda_graph",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "error: --capture cuda_graph needs a CUDA device" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("flag", [["--amp", "bf16"], ["--capture", "cuda_graph"]])
def test_gpu_flags_need_the_torch_backend(
    flag: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(XOR), *flag, "--out", str(tmp_path / "run")]) == 2
    assert f"{' '.join(flag)} needs the torch backend, not numpy" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_capturable_step_is_accepted() -> None:
    assert capture.refusal(_xor(), _xor().spec.train, None) is None
    ir = _xor(ADAM)
    assert capture.refusal(ir, ir.spec.train, torch.bfloat16) is None
    assert capture.optimizer_options(ir.spec.train) == {"capturable": True}


def test_noise_is_refused_at_the_stochastic_node() -> None:
    ir = features_ir()
    error = capture.refusal(ir, ir.spec.train, None)
    assert error is not None
    assert "op 'float' draws new noise every step" in error.message
    assert error.location is not None and error.location.line is not None


@pytest.mark.parametrize(
    ("overrides", "amp", "reason"),
    [
        (["train.schedule={name: cosine, t_max: 10}"], None, "lr schedule 'cosine'"),
        (["train.optimizer={name: adagrad, lr: 0.1}"], None, "adagrad optimizer has no"),
        (
            ["train.optimizer={name: sgd, lr: 0.1, momentum: 0.9, dampening: 0.5}"],
            None,
            "dampening",
        ),
        (ADAM, torch.float16, "fp16's loss scaling"),
    ],
)
def test_steps_a_graph_cannot_replay_are_refused(
    overrides: list[str], amp: torch.dtype | None, reason: str
) -> None:
    ir = _xor(overrides)
    error = capture.refusal(ir, ir.spec.train, amp)
    assert error is not None and reason in error.message
    assert error.message.startswith("--capture cuda_graph cannot record this training step")


# Batch norm's running statistics (state buffers), Adam with a parameter group, clipping:
# torch_helpers' features model without its dropout.
BATCH_NORM = FEATURES.replace("op: dropout, p: 0.25", "op: relu")


def _trainer(ir: gs.IR) -> Any:
    prog = gs.compile(ir, "torch", device="cpu", dtype="float32")
    t = prog.trainer(gs.init_params(ir, seed=0), ir.spec.train, 0)
    t.set_data("train", xor_batch(64) if "y" in ir.inputs else features_batch(64))
    return t


def _batch(t: Any) -> dict[str, torch.Tensor]:
    return t._take("train", torch.arange(32))


@pytest.mark.parametrize("spec", ["xor", "batch_norm"])
def test_the_warm_up_steps_are_undone_exactly(spec: str) -> None:
    """What capture does around its warm-up (CPU tensors, no graph): steps taken between
    snapshot and restore leave no trace, so the next step is a fresh optimizer's first."""
    ir = _xor(ADAM) if spec == "xor" else gs.build(gs.loads(BATCH_NORM, "<batch-norm>"))
    assert not ir.stochastic_nodes
    warmed, fresh = _trainer(ir), _trainer(ir)
    graphed = warmed._graphed_step()
    saved = graphed._snapshot()
    for _ in range(capture.WARMUP_STEPS):
        warmed._step(_batch(warmed))
    assert warmed.optim.opt.state  # the warm-up made Adam's buffers
    graphed._restore(saved)
    for t in (warmed, fresh):
        t._step(_batch(t))
    for name, value in fresh.params().items():
        np.testing.assert_array_equal(warmed.params()[name], value)
    np.testing.assert_equal(warmed.optim.state_dict(), fresh.optim.state_dict())


def test_bf16_autocast_trains_on_the_cpu(tmp_path: Path) -> None:
    assert (
        main(
            [
                "train",
                str(XOR),
                "--backend",
                "torch",
                "--device",
                "cpu",
                "--dtype",
                "float32",
                "--amp",
                "bf16",
                "--epochs",
                "15",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    losses = [row["train_loss"] for row in load_run(tmp_path / "run").history]
    assert losses[-1] < 0.5 * losses[0]


# ---- on a CUDA GPU -----------------------------------------------------------------------


def _cuda_run(tmp_path: Path, name: str, **options: Any) -> Any:
    return gs.train(
        XOR,
        backend="torch",
        device="cuda",
        dtype="float32",
        epochs=20,
        out=tmp_path / name,
        progress=False,
        threads=1,
        **options,
    )


@cuda
@needs_cuda
def test_captured_step_trains_like_the_eager_step(tmp_path: Path) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    eager = _cuda_run(tmp_path, "eager")
    graphed = _cuda_run(tmp_path, "graphed", capture="cuda_graph")
    assert graphed.final["train_binary_accuracy"] == 1.0
    for name, value in eager.params.items():
        np.testing.assert_allclose(graphed.params[name], value, rtol=1e-4, atol=1e-5)


@cuda
@needs_cuda
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_amp_trains(amp: str, tmp_path: Path) -> None:
    run = _cuda_run(tmp_path, amp, amp=amp, **({"capture": "cuda_graph"} if amp == "bf16" else {}))
    assert run.final["train_binary_accuracy"] == 1.0
