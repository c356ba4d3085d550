"""The torch Program against the numpy reference: forward, loss terms, gradients, state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_helpers import (
    cuda,
    dropout_noise,
    features_batch,
    features_ir,
    max_rel,
    needs_cuda,
    xor_batch,
    xor_ir,
)

import graphspec as gs
from graphspec.errors import BackendError
from graphspec_torch.device import no_tf32, resolve_device


def _both(ir: gs.IR, **torch_options: object) -> tuple[object, object]:
    options = {"device": "cpu", **torch_options}
    return gs.compile(ir, "numpy"), gs.compile(ir, "torch", **options)


def test_backend_is_registered() -> None:
    prog = gs.compile(xor_ir(), "torch", device="cpu")
    assert type(prog).__name__ == "TorchProgram"
    assert gs.get_backend("torch").name == "torch"


def test_xor_float64_matches_numpy() -> None:
    ir = xor_ir()
    params = gs.init_params(ir)
    x = xor_batch()
    ref, prog = _both(ir)
    fwd_ref, fwd = ref.forward(params, x), prog.forward(params, x)
    assert fwd["logit"].dtype == np.float64
    assert max_rel(fwd["logit"], fwd_ref["logit"]) <= 1e-12
    a, b = ref.loss_and_grads(params, x), prog.loss_and_grads(params, x)
    assert abs(a.loss - b.loss) <= 1e-12 * max(1.0, abs(a.loss))
    assert set(b.terms) == set(a.terms)
    for k in a.terms:
        assert abs(a.terms[k] - b.terms[k]) <= 1e-12 * max(1.0, abs(a.terms[k]))
    # Every trainable parameter, and the differentiable input x (not the target y).
    assert set(b.grads) == set(a.grads) == set(ir.params) | {"x"}
    for k in a.grads:
        assert b.grads[k].shape == a.grads[k].shape
        assert max_rel(b.grads[k], a.grads[k]) <= 1e-9, k
    ea, eb = ref.evaluate(params, x), prog.evaluate(params, x)
    assert eb.metrics == pytest.approx(ea.metrics, abs=1e-12)
    assert max_rel(eb.outputs["logit"], ea.outputs["logit"]) <= 1e-12


@pytest.mark.parametrize("training", [True, False])
def test_state_noise_sharing_and_int_inputs_match_numpy(training: bool) -> None:
    ir = features_ir()
    params = gs.init_params(ir)
    x, noise = features_batch(), dropout_noise()
    ref, prog = _both(ir)
    a = ref.loss_and_grads(params, x, noise=noise, training=training)
    b = prog.loss_and_grads(params, x, noise=noise, training=training)
    assert abs(a.loss - b.loss) <= 1e-12 * max(1.0, abs(a.loss))
    assert set(b.grads) == set(a.grads)
    for k in a.grads:
        assert max_rel(b.grads[k], a.grads[k]) <= 1e-9, k
    assert set(b.state) == set(a.state) == {"eval.running_mean", "eval.running_var"}
    for k in a.state:
        assert max_rel(b.state[k], a.state[k]) <= 1e-12, k
    if training:  # the running statistics moved
        assert not np.allclose(b.state["eval.running_mean"], params["eval.running_mean"])
    ea = ref.evaluate(params, x, noise=noise, training=training)
    eb = prog.evaluate(params, x, noise=noise, training=training)
    assert max_rel(eb.outputs["logits"], ea.outputs["logits"]) <= 1e-12
    assert eb.metrics == pytest.approx(ea.metrics, abs=1e-12)


def test_calls_do_not_leak_state_between_calls() -> None:
    ir = features_ir()
    params = gs.init_params(ir)
    prog = gs.compile(ir, "torch", device="cpu")
    x, noise = features_batch(), dropout_noise()
    first = prog.loss_and_grads(params, x, noise=noise)
    again = prog.loss_and_grads(params, x, noise=noise)
    assert first.loss == again.loss
    for k in first.state:
        np.testing.assert_array_equal(first.state[k], again.state[k])


def test_float32_within_design_tolerances() -> None:
    ir = features_ir()
    params = gs.init_params(ir)
    x, noise = features_batch(), dropout_noise()
    ref, prog = _both(ir, dtype="float32")
    a = ref.loss_and_grads(params, x, noise=noise)
    b = prog.loss_and_grads(params, x, noise=noise)
    for k in a.grads:
        assert b.grads[k].dtype == np.float32
        np.testing.assert_allclose(b.grads[k], a.grads[k], rtol=2e-3, atol=1e-4)
    fa, fb = ref.forward(params, x), prog.forward(params, x)
    np.testing.assert_allclose(fb["logits"], fa["logits"], rtol=1.3e-6, atol=1e-5)


def test_native_noise_is_seeded_by_rng() -> None:
    ir = features_ir()
    params = gs.init_params(ir)
    prog = gs.compile(ir, "torch", device="cpu")
    x = features_batch()
    one = prog.forward(params, x, training=True, rng=7)["logits"]
    two = prog.forward(params, x, training=True, rng=7)["logits"]
    other = prog.forward(params, x, training=True, rng=8)["logits"]
    np.testing.assert_array_equal(one, two)
    assert not np.array_equal(one, other)


def test_params_that_miss_the_loss_get_zero_gradients() -> None:
    spec = gs.loads(
        "graphspec: 1\nname: side\ninputs: {x: [batch, 2], y: [batch, 1]}\n"
        "graph:\n  - {id: main, op: linear, in: x, units: 1}\n"
        "  - {id: side, op: linear, in: x, units: 3}\n"
        "outputs: [main, side]\nloss:\n  - {op: mse, in: [main, y]}\n",
        "<side>",
    )
    ir = gs.build(spec)
    params = gs.init_params(ir)
    x = {"x": np.ones((4, 2)), "y": np.zeros((4, 1))}
    ref, prog = _both(ir)
    a, b = ref.loss_and_grads(params, x), prog.loss_and_grads(params, x)
    assert set(b.grads) == set(a.grads)
    assert not b.grads["side.weight"].any() and b.grads["side.weight"].shape == (2, 3)


def test_missing_parameters_are_named() -> None:
    ir = xor_ir()
    params = gs.init_params(ir)
    del params["logit.bias"]
    prog = gs.compile(ir, "torch", device="cpu")
    with pytest.raises(KeyError, match="logit.bias"):
        prog.forward(params, xor_batch())


def test_options_are_checked() -> None:
    ir = xor_ir()
    with pytest.raises(BackendError, match="unknown device"):
        gs.compile(ir, "torch", device="tpu")
    with pytest.raises(BackendError, match="needs --dtype float32"):
        gs.compile(ir, "torch", device="cpu", dtype="float64", amp="bf16")
    with pytest.raises(BackendError, match="unknown amp"):
        gs.compile(ir, "torch", device="cpu", dtype="float32", amp="int8")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="CUDA is not available"):
            gs.compile(ir, "torch", device="cuda")


def test_bf16_autocast_runs_on_cpu() -> None:
    ir = xor_ir()
    params = gs.init_params(ir)
    x = xor_batch()
    ref = gs.compile(ir, "numpy").forward(params, x)["logit"]
    out = gs.compile(ir, "torch", device="cpu", dtype="float32", amp="bf16").forward(params, x)
    assert out["logit"].dtype == np.float32
    np.testing.assert_allclose(out["logit"], ref, rtol=0.05, atol=0.05)


def test_no_tf32_restores_settings() -> None:
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with no_tf32():
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


@pytest.mark.slow
def test_torch_compile_matches_eager() -> None:
    ir = xor_ir()
    params = gs.init_params(ir)
    x = xor_batch()
    eager = gs.compile(ir, "torch", device="cpu").loss_and_grads(params, x)
    compiled = gs.compile(ir, "torch", device="cpu", compile=True).loss_and_grads(params, x)
    for k in eager.grads:
        np.testing.assert_allclose(compiled.grads[k], eager.grads[k], rtol=1e-9, atol=1e-12)


# ---- CUDA (skipped without a GPU) ---------------------------------------------------------


@cuda
@needs_cuda
def test_cuda_placement_and_float64_agreement() -> None:
    ir = features_ir()
    params = gs.init_params(ir)
    x, noise = features_batch(), dropout_noise()
    prog = gs.compile(ir, "torch", device="cuda")
    assert prog.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in prog.model.parameters())
    assert all(b.device.type == "cuda" for b in prog.model.buffers())
    a = gs.compile(ir, "numpy").loss_and_grads(params, x, noise=noise)
    b = prog.loss_and_grads(params, x, noise=noise)
    for k in a.grads:
        assert max_rel(b.grads[k], a.grads[k]) <= 1e-9, k


@cuda
@needs_cuda
def test_cuda_float32_with_tf32_off_meets_tolerance() -> None:
    ir = features_ir()
    params = gs.init_params(ir)
    x, noise = features_batch(), dropout_noise()
    torch.backends.cuda.matmul.allow_tf32 = True  # the Program turns it off for its calls
    try:
        b = gs.compile(ir, "torch", device="cuda", dtype="float32").loss_and_grads(
            params, x, noise=noise)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
    a = gs.compile(ir, "numpy").loss_and_grads(params, x, noise=noise)
    for k in a.grads:
        np.testing.assert_allclose(b.grads[k], a.grads[k], rtol=2e-3, atol=1e-4)


@cuda
@needs_cuda
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_amp_forward(amp: str) -> None:
    ir = xor_ir()
    params = gs.init_params(ir)
    x = xor_batch()
    ref = gs.compile(ir, "numpy").forward(params, x)["logit"]
    out = gs.compile(ir, "torch", device="cuda", dtype="float32", amp=amp).forward(params, x)
    np.testing.assert_allclose(out["logit"], ref, rtol=0.05, atol=0.05)


def test_non_differentiable_arguments_cut_the_gradient() -> None:
    """An autoencoder's input is also the loss's target: like the numpy backward pass, no
    gradient flows back through the target (autograd alone would follow it)."""
    spec = gs.loads(
        "graphspec: 1\nname: ae\ninputs: {x: [batch, 3]}\n"
        "graph:\n  - {id: code, op: linear, in: x, units: 2}\n"
        "  - {id: back, op: linear, units: 3}\n"
        "outputs: [back]\nloss:\n  - {op: mse, in: [back, x]}\n",
        "<ae>",
    )
    ir = gs.build(spec)
    params = gs.init_params(ir)
    x = {"x": np.random.default_rng(0).normal(size=(5, 3))}
    ref, prog = _both(ir)
    assert "mse(back, x.detach())" in prog.source()
    a, b = ref.loss_and_grads(params, x), prog.loss_and_grads(params, x)
    assert set(b.grads) == set(a.grads) == set(ir.params) | {"x"}
    for k in a.grads:
        assert max_rel(b.grads[k], a.grads[k]) <= 1e-9, k
