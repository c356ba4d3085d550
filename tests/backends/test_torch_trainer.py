"""TorchTrainer through the Trainer protocol: training, agreement with numpy, resume, errors."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch
from paths import XOR
from torch_helpers import (
    cuda,
    dropout_noise,
    features_batch,
    features_ir,
    max_rel,
    needs_cuda,
)

import graphspec as gs
from graphspec.errors import DataError, NonFiniteLoss
from graphspec.train.data import load_data
from graphspec_torch.device import deterministic


def _xor() -> tuple[Any, gs.IR, dict[str, dict[str, np.ndarray]]]:
    spec = gs.load(XOR)
    ir = gs.build(spec)
    return spec, ir, load_data(spec, ir, spec.seed).splits


def _epoch_batches(n: int, size: int, seed: int, epoch: int) -> list[np.ndarray]:
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return [perm[i:i + size] for i in range(0, n, size)]


def _train(trainer: Any, n: int, epochs: range, size: int = 32) -> dict[str, float]:
    out: dict[str, float] = {}
    for epoch in epochs:
        out = trainer.train_epoch(_epoch_batches(n, size, 0, epoch), epoch)
    return out


@pytest.mark.parametrize("amp", ["none", "bf16", "fp16"])
def test_xor_trains_to_full_accuracy(amp: str) -> None:
    spec, ir, splits = _xor()
    dtype = "float64" if amp == "none" else "float32"
    prog = gs.compile(ir, "torch", device="cpu", dtype=dtype, amp=amp)
    trainer = prog.trainer(gs.init_params(ir), spec.train, spec.seed)
    for split, arrays in splits.items():
        trainer.set_data(split, arrays)
    n = len(splits["train"]["x"])
    first = _train(trainer, n, range(1))
    for epoch in range(1, 30):
        if trainer.evaluate("train")["binary_accuracy"] == 1.0:
            break
        last = _train(trainer, n, range(epoch, epoch + 1))
    assert trainer.evaluate("train")["binary_accuracy"] == 1.0
    assert trainer.evaluate("val")["binary_accuracy"] >= 0.95
    if epoch > 1:
        assert last["loss"] < first["loss"]
    assert set(first) == {"loss", "bce_with_logits", "l2_penalty"}


def test_trajectory_matches_numpy_trainer() -> None:
    """Adam with a parameter group, warm-up + cosine schedule, clipping, batch norm state and
    dropout with the same injected noise: the torch.optim trajectory follows numpy's."""
    ir = features_ir()
    spec = ir.spec
    params = gs.init_params(ir)
    pool = features_batch(64, seed=5)
    trainers = {}
    for name in ("numpy", "torch"):
        options = {"device": "cpu"} if name == "torch" else {}
        t = gs.compile(ir, name, dtype="float64", **options).trainer(params, spec.train, 0)
        t.set_data("train", pool)
        trainers[name] = t
    rng = np.random.default_rng(2)
    for step in range(6):
        batch = np.sort(rng.choice(64, 16, replace=False))
        logs = {}
        for name, t in trainers.items():
            t.set_noise(dropout_noise(16, seed=step))
            logs[name] = t.train_epoch([batch], step)
        assert logs["torch"]["loss"] == pytest.approx(logs["numpy"]["loss"], rel=1e-9)
        a, b = trainers["numpy"].params(), trainers["torch"].params()
        for k in a:
            assert max_rel(b[k], a[k]) <= 1e-9, (step, k)
        sa, sb = trainers["numpy"].state_dict(), trainers["torch"].state_dict()
        assert set(sb) == set(sa)
        for k in sa:
            assert max_rel(sb[k], sa[k]) <= 1e-9, (step, k)
    na, nb = trainers["numpy"].grad_norms(), trainers["torch"].grad_norms()
    assert set(nb) == set(na)
    for k in na:
        assert nb[k] == pytest.approx(na[k], rel=1e-9)


def test_resume_from_state_dict_continues_exactly() -> None:
    ir = features_ir()
    spec = ir.spec
    prog = gs.compile(ir, "torch", device="cpu", dtype="float64")
    data = features_batch(128, seed=3)

    def fresh(params: dict[str, np.ndarray]) -> Any:
        t = prog.trainer(params, spec.train, seed=4)
        t.set_data("train", data)
        return t

    straight = fresh(gs.init_params(ir))
    _train(straight, 128, range(2), size=16)
    saved_params = straight.params()
    buf = io.BytesIO()  # the core saves trainer state with np.savez: no pickle involved
    np.savez(buf, **straight.state_dict())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as f:
        saved_state = {k: f[k] for k in f.files}
    _train(straight, 128, range(2, 4), size=16)

    resumed = fresh(saved_params)
    resumed.load_state_dict(saved_state)
    _train(resumed, 128, range(2, 4), size=16)
    a, b = straight.params(), resumed.params()
    for k in a:
        np.testing.assert_array_equal(b[k], a[k])


def test_non_finite_loss_names_epoch_and_first_bad_step() -> None:
    spec, ir, splits = _xor()
    prog = gs.compile(ir, "torch", device="cpu")
    trainer = prog.trainer(gs.init_params(ir), spec.train, spec.seed)
    train = {k: v.copy() for k, v in splits["train"].items()}
    train["x"][40] = np.nan
    trainer.set_data("train", train)
    batches = [np.arange(i, i + 16) for i in range(0, 80, 16)]  # row 40 is in step 2
    with pytest.raises(NonFiniteLoss) as info:
        trainer.train_epoch(batches, 3)
    assert (info.value.epoch, info.value.step) == (3, 2)
    assert "epoch 4, step 3" in str(info.value)


def test_grad_norms_before_clipping() -> None:
    ir = features_ir()
    params = gs.init_params(ir)
    data = features_batch(32, seed=1)
    noise = dropout_noise(32)
    prog = gs.compile(ir, "torch", device="cpu", dtype="float64")
    expected = prog.loss_and_grads(params, data, noise=noise).grads
    for clip in (None, 1e-3):
        train = ir.spec.train.model_copy(update={"clip_grad_norm": clip})
        t = prog.trainer(params, train, 0)
        t.set_data("train", data)
        t.set_noise(noise)
        t.train_epoch([np.arange(32)], 0)
        norms = t.grad_norms()
        assert set(norms) == set(ir.params)
        for k in ir.params:
            assert norms[k] == pytest.approx(float(np.linalg.norm(expected[k])), rel=1e-9)


def test_evaluate_is_eval_mode_over_the_whole_split() -> None:
    ir = features_ir()
    prog = gs.compile(ir, "torch", device="cpu", dtype="float64")
    t = prog.trainer(gs.init_params(ir), ir.spec.train, 0)
    data = features_batch(96, seed=6)
    t.set_data("train", data)
    t.set_data("val", features_batch(40, seed=7))
    _train(t, 96, range(2), size=32)
    ev = t.evaluate("val")
    ref = gs.compile(ir, "numpy").evaluate(t.params(), features_batch(40, seed=7))
    assert ev["loss"] == pytest.approx(ref.loss, rel=1e-12)
    assert ev["accuracy"] == pytest.approx(ref.metrics["accuracy"], abs=1e-12)
    assert set(ev) == {"loss", "cross_entropy", "l2_penalty", "accuracy"}


def test_set_data_checks_inputs() -> None:
    ir = features_ir()
    t = gs.compile(ir, "torch", device="cpu").trainer(gs.init_params(ir), ir.spec.train, 0)
    with pytest.raises(DataError, match="label"):
        t.set_data("train", {"x": np.zeros((4, 4))})
    with pytest.raises(DataError, match="differ in length"):
        t.set_data("train", {"x": np.zeros((4, 4)), "label": np.zeros(3, dtype=int)})
    t.set_data("train", {"x": np.zeros((4, 4)), "label": np.zeros(4, dtype=int)})
    assert t.data["train"]["label"].dtype == torch.int64


# ---- CUDA (skipped without a GPU) ---------------------------------------------------------


@cuda
@needs_cuda
def test_cuda_trainer_keeps_data_and_params_on_device() -> None:
    spec, ir, splits = _xor()
    prog = gs.compile(ir, "torch", device="cuda", dtype="float32")
    t = prog.trainer(gs.init_params(ir), spec.train, spec.seed)
    t.set_data("train", splits["train"])
    assert all(v.device.type == "cuda" for v in t.data["train"].values())
    assert all(p.device.type == "cuda" for p in t.model.parameters())
    _train(t, len(splits["train"]["x"]), range(5))
    assert t.evaluate("train")["binary_accuracy"] == 1.0


@cuda
@needs_cuda
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_amp_training(amp: str) -> None:
    spec, ir, splits = _xor()
    prog = gs.compile(ir, "torch", device="cuda", dtype="float32", amp=amp)
    t = prog.trainer(gs.init_params(ir), spec.train, spec.seed)
    t.set_data("train", splits["train"])
    _train(t, len(splits["train"]["x"]), range(10))
    assert t.evaluate("train")["binary_accuracy"] == 1.0
    if amp == "fp16":
        assert "torch/grad_scale" in t.state_dict()


@cuda
@needs_cuda
def test_cuda_training_is_deterministic_with_tf32_off() -> None:
    deterministic(0)
    ir = features_ir()
    results = []
    for _ in range(2):
        prog = gs.compile(ir, "torch", device="cuda", dtype="float32")
        t = prog.trainer(gs.init_params(ir), ir.spec.train, 0)
        t.set_data("train", features_batch(256, seed=2))
        _train(t, 256, range(3), size=32)
        results.append(t.params())
    assert not torch.backends.cuda.matmul.allow_tf32
    for k in results[0]:
        np.testing.assert_array_equal(results[0][k], results[1][k])


def test_driver_trains_xor_to_full_accuracy_and_resumes(tmp_path: Any) -> None:
    """`graphspec train --backend torch` on the gallery's XOR, through the shared driver."""
    run = gs.train(XOR, backend="torch", device="cpu", out=tmp_path / "run",
                   epochs=40, progress=False)
    assert run.final["train_binary_accuracy"] == 1.0
    more = gs.train(XOR, backend="torch", device="cpu", out=tmp_path / "run",
                    epochs=45, resume=True, progress=False)
    assert more.epochs >= run.epochs
