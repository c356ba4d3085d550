"""The reference interpreter (graphspec.ir.interpret) over the numpy kernel table computes
what the numpy backend's generated module computes: outputs, loss terms, metrics, gradients
and new state, on every gallery spec, bit for bit; with injected noise and with noise drawn
from a generator in the same state."""

from __future__ import annotations

import numpy as np
import pytest
from paths import GALLERY, XOR
from scaled_vjp import ScaledVJP

import graphspec as gs
from graphspec.backend import CompileOptions
from graphspec.ir.interpret import Interpreter
from graphspec.verify.inputs import draw_noise, random_inputs
from graphspec_numpy import kernels
from graphspec_numpy.program import NumpyProgram

BATCH = 4


def same(what: str, got, ref) -> None:
    """Equal arrays (NaN where the other has NaN), dict by dict."""
    if isinstance(ref, dict):
        assert set(got) == set(ref), f"{what}: {sorted(got)} != {sorted(ref)}"
        for k in ref:
            same(f"{what} {k}", got[k], ref[k])
        return
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.dtype == ref.dtype or got.dtype.kind == ref.dtype.kind == "f", what
    np.testing.assert_array_equal(got, ref, err_msg=what)


@pytest.mark.parametrize("path", GALLERY, ids=[p.stem for p in GALLERY])
def test_the_generated_numpy_module_computes_what_the_interpreter_does(path):
    ir = gs.build(gs.load(path))
    rng = np.random.default_rng(0)
    params = gs.init_params(ir, seed=0)
    inputs = random_inputs(ir, BATCH, rng)
    noise = draw_noise(ir, inputs, rng)
    module = NumpyProgram(ir, CompileOptions()).module
    interp = Interpreter(ir, kernels)
    for training in (False, True):
        mode = "training" if training else "evaluation"
        same(
            f"{mode} outputs",
            module.forward(params, inputs, training, noise, None),
            interp.forward(params, inputs, training=training, noise=noise),
        )
        loss, terms, metrics, _, state = module.evaluate(params, inputs, training, noise, None)
        ref = interp.evaluate(params, inputs, training=training, noise=noise)
        same(f"{mode} loss", float(loss), ref.loss)
        same(f"{mode} terms", {k: float(v) for k, v in terms.items()}, ref.terms)
        same(f"{mode} metrics", {k: float(v) for k, v in metrics.items()}, ref.metrics)
        same(f"{mode} new state", state, ref.state)
    # Injected noise, then draws from generators in one state: the same draws in one order.
    for given, seed in ((noise, None), (None, 1)):
        how = "drawn noise" if given is None else "injected noise"
        loss, terms, grads, state = module.loss_and_grads(
            params, inputs, True, given, None if seed is None else np.random.default_rng(seed)
        )
        ref = interp.loss_and_grads(
            params, inputs, noise=given, rng=None if seed is None else np.random.default_rng(seed)
        )
        same(f"{how}: loss", float(loss), ref.loss)
        same(f"{how}: terms", {k: float(v) for k, v in terms.items()}, ref.terms)
        same(f"{how}: gradients", grads, ref.grads)
        same(f"{how}: new state", state, ref.state)


def test_the_check_sees_a_difference():
    """A table whose tanh VJP is off: the interpreter and the generated module part, and
    the check says where."""
    ir = gs.build(gs.load(XOR))
    params = gs.init_params(ir, seed=0)
    inputs = random_inputs(ir, BATCH, np.random.default_rng(0))
    grads = NumpyProgram(ir, CompileOptions()).module.loss_and_grads(params, inputs)[2]
    wrong = Interpreter(ir, ScaledVJP("tanh", 2.0)).loss_and_grads(params, inputs).grads
    with pytest.raises(AssertionError, match="gradients hidden.weight"):
        same("gradients", grads, wrong)


def test_the_walk_stops_where_the_hook_says():
    """``on_value`` sees each leaf as an op first reads it and each op's output, in order,
    and stops the walk when it returns True."""
    ir = gs.build(gs.load(XOR))
    params = gs.init_params(ir, seed=0)
    inputs = random_inputs(ir, BATCH, np.random.default_rng(0))
    interp = Interpreter(ir, kernels)
    seen: list[str] = []

    def record(nid, value):
        seen.append(nid)
        return False

    full = interp.run(params, inputs, interp.plan.loss_targets(), training=True, on_value=record)
    assert full.stopped is None and seen == list(full.values)
    assert seen.index("x") < seen.index("hidden") < seen.index("act")
    stopped = interp.run(
        params,
        inputs,
        interp.plan.loss_targets(),
        training=True,
        on_value=lambda nid, v: nid == "act",
    )
    assert stopped.stopped == "act" and list(stopped.values) == seen[: seen.index("act") + 1]
