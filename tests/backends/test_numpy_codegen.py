"""What the numpy code generator's optimizations rely on, locked down (no timing here: the
figures live in tools/bench and BENCHMARKS.md).

* ``loss_and_param_grads`` (the trainer's step) computes no input gradient, and passes
  ``needs`` so a first layer skips ``g W^T``; ``loss_and_grads`` still returns every
  requested input gradient, and both agree on the parameters bit for bit.
* A VJP gets None for an argument it never reads, so an activation dies as soon as the
  backward pass is done with it (a ReLU's pre-activation right after the forward).
* float32 programs stay float32 in every kernel and VJP, end to end and through training.
* The linear-time graph traversals give networkx's answers.
"""

from __future__ import annotations

import ast
import functools
import gc
import re
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
from paths import ROOT

import graphspec as gs
from graphspec.ir import traverse
from graphspec.ir.plan import Plan

MLP = """
graphspec: 1
name: mlp
seed: 0
inputs:
  x: [batch, 5]
  y: {shape: [batch], dtype: int}
graph:
  - {id: fc0, op: linear, in: x, units: 7}
  - {id: act0, op: relu}
  - {id: fc1, op: linear, units: 6}
  - {id: act1, op: tanh}
  - {id: logits, op: linear, units: 3}
outputs: [logits]
loss:
  - {op: cross_entropy, in: [logits, y]}
  - {op: l2_penalty, weight: 0.01}
train:
  data: {source: blobs}
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  batch_size: 8
"""


def _mlp(dtype: str = "float64") -> tuple[Any, Any, dict[str, np.ndarray], dict[str, np.ndarray]]:
    ir = gs.build(gs.loads(MLP, "<mlp>"))
    prog = gs.compile(ir, "numpy", dtype=dtype)
    params = {k: v.astype(dtype) for k, v in gs.init_params(ir).items()}
    rng = np.random.default_rng(0)
    inputs = {"x": rng.normal(size=(8, 5)).astype(dtype), "y": rng.integers(0, 3, size=8)}
    return ir, prog, params, inputs


def _function(src: str, name: str) -> str:
    """The source of one generated function."""
    start = src.index(f"\ndef {name}(")
    end = src.find("\ndef ", start + 1)
    return src[start:end if end != -1 else None]


# ---- gradients that are not needed are not computed ------------------------------------------


def test_param_grads_skip_the_first_layers_input_gradient():
    _, prog, params, inputs = _mlp()
    src = prog.source()
    full = _function(src, "loss_and_grads")
    # One backward pass: the input gradient is a flag, passed on to the first layer's VJP.
    assert "fc0_weight, fc0_bias, needs=(input_grads, True, True))" in full
    assert "input_grads=False" in _function(src, "loss_and_param_grads")
    assert src.count("= linear(x, fc0_weight, fc0_bias)") == 2  # evaluate, loss_and_grads
    seen: list[Any] = []
    real = prog.module.linear_vjp

    def spy(*args: Any, needs: Any = None) -> Any:
        seen.append(needs)
        return real(*args, needs=needs)

    prog.module.linear_vjp = spy
    p, x = prog.cast(params), prog.cast(inputs, prog.ir.inputs)
    _, _, grads, _ = prog.module.loss_and_param_grads(p, x)
    assert set(grads) == set(prog.ir.params)
    assert seen[-1] == (False, True, True)  # the first layer: no g W^T
    seen.clear()
    _, _, grads, _ = prog.module.loss_and_grads(p, x)
    assert "x" in grads and seen[-1] == (True, True, True)


def test_loss_and_grads_still_returns_input_gradients():
    _, prog, params, inputs = _mlp()
    res = prog.loss_and_grads(params, inputs)
    assert set(res.grads) == {*params, "x"}
    gx = res.grads["x"]
    assert gx.shape == inputs["x"].shape and np.abs(gx).max() > 0
    # Against central differences in one direction.
    u = np.random.default_rng(1).normal(size=gx.shape)
    eps = 1e-6
    plus = prog.loss_and_grads(params, {**inputs, "x": inputs["x"] + eps * u}).loss
    minus = prog.loss_and_grads(params, {**inputs, "x": inputs["x"] - eps * u}).loss
    assert np.vdot(gx, u) == pytest.approx((plus - minus) / (2 * eps), rel=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_param_grads_equal_loss_and_grads_bit_for_bit(dtype):
    _, prog, params, inputs = _mlp(dtype)
    p = prog.cast(params)
    x = prog.cast(inputs, prog.ir.inputs)
    loss, terms, grads, _ = prog.module.loss_and_grads(p, x, True, None, None)
    loss2, terms2, grads2, _ = prog.module.loss_and_param_grads(p, x, True, None, None)
    assert set(grads2) == set(prog.ir.params)
    assert loss == loss2 and terms == terms2
    for k in grads2:
        assert np.array_equal(grads[k], grads2[k]), k


def test_linear_vjp_needs_skips_only_what_is_not_needed():
    from graphspec_numpy.kernels.layers import linear, linear_vjp, matmul_vjp

    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    y = linear(x, w, b)
    g = rng.normal(size=y.shape)
    full = linear_vjp(g, y, x, w, b)
    part = linear_vjp(g, None, x, w, b, needs=(False, True, True))
    assert part[0] is None
    assert np.array_equal(part[1], full[1]) and np.array_equal(part[2], full[2])
    assert np.array_equal(linear_vjp(g, None, x, w, b, needs=(True, False, False))[0], full[0])
    ga, gb = matmul_vjp(g, None, x, w, needs=(False, True))
    assert ga is None and np.array_equal(gb, matmul_vjp(g, None, x, w)[1])


# ---- activations die as soon as the backward pass is done with them --------------------------


def test_unread_vjp_arguments_are_passed_as_none():
    _, prog, _, _ = _mlp()
    train = _function(prog.source(), "loss_and_grads")
    # linear's VJP never reads its output; relu's reads only its output.
    assert "linear_vjp(g_logits, None, act1," in train
    assert "relu_vjp(g_act0, act0, None, own=True)" in train
    # So the pre-activation fc0 is deleted right after relu consumed it, in the forward pass.
    lines = [ln.strip() for ln in train.splitlines()]
    relu_at = next(i for i, ln in enumerate(lines) if ln.startswith("act0 = relu(fc0, own=True)"))
    assert lines[relu_at + 1].startswith("del ") and "fc0" in lines[relu_at + 1]


def test_vjp_declarations_are_checked_against_the_signature():
    from graphspec_numpy.kernels import _declare, kernel

    def vjp(g, y, x, w, b=None, *, needs=None):
        return g @ w.T, x.T @ g, None if b is None else g.sum(0)

    spec = _declare(vjp, ("x", "w", "b"), input_shaped=True)
    assert [spec.reads_arg(k) for k in range(3)] == [True, True, True]
    assert not spec.reads_output and spec.takes_needs and not spec.reads_residuals
    with pytest.raises(ValueError, match="'weight' is none of its parameters"):
        _declare(vjp, ("x", "weight"), input_shaped=False)
    with pytest.raises(ValueError, match="takes no keyword-only res"):
        _declare(vjp, ("x", "res"), input_shaped=False)

    def variadic(g, y, *xs, res):
        return xs

    spec = _declare(variadic, ("y", "xs", "res"), input_shaped=False)
    assert spec.reads_output and spec.reads_residuals and spec.reads_arg(5)
    with pytest.raises(ValueError, match="does not declare it"):
        _declare(variadic, ("xs",), input_shaped=False)
    with pytest.raises(ValueError, match="keyword-only save=False"):
        kernel("no_such_op", residuals=True)(lambda x: x)


def test_unbroadcast_stays_where_shapes_can_differ():
    spec = """
graphspec: 1
name: bcast
seed: 0
inputs:
  x: [batch, 3]
  c: [batch, 1]
  y: [batch, 3]
graph:
  - {id: v, op: param, shape: [3], init: {value: {name: normal, std: 1.0}}}
  - {id: a, op: add, in: [x, v]}
  - {id: m, op: mul, in: [a, c]}
  - {id: t, op: tanh}
outputs: [t]
loss:
  - {op: mse, in: [t, y]}
"""
    ir = gs.build(gs.loads(spec, "<bcast>"))
    prog = gs.compile(ir, "numpy")
    src = _function(prog.source(), "loss_and_grads")
    assert "unbroadcast(_g[1], v.shape)" in src  # the param node v: [3] against [batch, 3]
    assert "unbroadcast(_g[1], c.shape)" in src  # [batch, 1] against [batch, 3]
    assert "(g_m,) = tanh_vjp(" in src  # tanh: one input, the output's shape
    rng = np.random.default_rng(0)
    params = gs.init_params(ir)
    res = prog.loss_and_grads(params, {"x": rng.normal(size=(4, 3)),
                                       "c": rng.normal(size=(4, 1)),
                                       "y": rng.normal(size=(4, 3))})
    (value,) = ir.params
    assert res.grads[value].shape == (3,) and res.grads["c"].shape == (4, 1)


# ---- float32 end to end ----------------------------------------------------------------------


def _watch_dtypes(module: Any, seen: dict[str, set[str]]) -> None:
    """Wrap every kernel and VJP of a generated module to record its float results' dtypes
    (metrics aside: they are host floats, like the loss the trainer reports)."""
    from graphspec.ops import REGISTRY
    from graphspec_numpy.kernels import KERNELS, VJPS

    names = {f.__name__ for f in (*KERNELS.values(), *VJPS.values())}
    names -= {KERNELS[n].__name__ for n, d in REGISTRY.items()
              if d.category == "metric" and n in KERNELS}
    names |= {
        "unbroadcast", "stable_sigmoid", "stable_softplus", "log_softmax_along", "softmax_along"
    }

    def record(name: str, value: Any) -> None:
        if isinstance(value, (tuple, list)):
            for v in value:
                record(name, v)
        elif isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind == "f":
            seen.setdefault(name, set()).add(str(value.dtype))

    for name in names:
        fn = getattr(module, name, None)
        if not callable(fn):
            continue

        def wrapped(*a: Any, __fn: Any = fn, __name: str = name, **kw: Any) -> Any:
            out = __fn(*a, **kw)
            record(__name, out)
            return out

        setattr(module, name, functools.wraps(fn)(wrapped))


def _gallery() -> list[Path]:
    return sorted((ROOT / "specs").glob("*.yaml"))


@pytest.mark.parametrize("path", _gallery(), ids=lambda p: p.stem)
def test_float32_programs_keep_float32_in_every_kernel(path):
    ir = gs.build(gs.load(path))
    prog = gs.compile(ir, "numpy", dtype="float32")
    seen: dict[str, set[str]] = {}
    _watch_dtypes(prog.module, seen)
    params = gs.init_params(ir)
    rng = np.random.default_rng(0)
    inputs = {}
    for name in ir.inputs:
        t = ir.type(name)
        shape = tuple(4 if isinstance(d, str) else d for d in t.shape)
        if t.dtype == "int":
            inputs[name] = rng.integers(0, 2, size=shape)
        else:
            inputs[name] = rng.random(shape)
    res = prog.loss_and_grads(params, inputs, rng=np.random.default_rng(1))
    prog.evaluate(params, inputs, rng=np.random.default_rng(1))
    prog.module.loss_and_param_grads(prog.cast(params), prog.cast(inputs, ir.inputs), True, None,
                                     np.random.default_rng(1))
    promoted = {k: v for k, v in seen.items() if v != {"float32"}}
    assert not promoted, f"{path.name}: float64 results in {promoted}"
    assert all(g.dtype == np.float32 for g in res.grads.values())


def test_float32_training_keeps_float32_parameters():
    ir, prog, params, inputs = _mlp("float32")
    trainer = prog.trainer(params, ir.spec.train, 0)
    trainer.set_data("train", inputs)
    before = {k: id(v) for k, v in trainer._p.items()}
    trainer.train_epoch([np.arange(8), np.arange(4)], 0)
    assert all(v.dtype == np.float32 for v in trainer._p.values())
    assert {k: id(v) for k, v in trainer._p.items()} == before  # updated in place


# ---- linear-time traversals ------------------------------------------------------------------


def _random_dag(seed: int) -> nx.MultiDiGraph:
    rng = np.random.default_rng(seed)
    g = nx.MultiDiGraph()
    names = [f"n{int(i):03d}" for i in rng.permutation(60)]
    g.add_nodes_from(names)
    for j, v in enumerate(names[1:], start=1):
        for _ in range(int(rng.integers(0, 4))):
            u = names[int(rng.integers(0, j))]
            g.add_edge(u, v, key=g.number_of_edges(u, v))  # repeats make multi-edges
    return g


@pytest.mark.parametrize("seed", range(5))
def test_traversals_agree_with_networkx(seed):
    g = _random_dag(seed)
    nodes = sorted(g)
    assert traverse.lex_topo_order(g) == list(nx.lexicographical_topological_sort(g))
    some = nodes[::3]
    assert traverse.lex_topo_order(g, some) == list(
        nx.lexicographical_topological_sort(g.subgraph(some)))
    starts = nodes[5:9]
    assert traverse.ancestors(g, starts) == set().union(*(nx.ancestors(g, s) for s in starts))
    assert traverse.descendants(g, starts, inclusive=True) == set(starts).union(
        *(nx.descendants(g, s) for s in starts))
    assert not traverse.has_cycle(g)
    u, v, _ = next(iter(g.edges(keys=True)))
    g.add_edge(v, u, key=99)  # closes a cycle
    assert traverse.has_cycle(g)
    with pytest.raises(nx.NetworkXUnfeasible):
        traverse.lex_topo_order(g)


def test_plan_queries_match_their_quadratic_definitions():
    ir = gs.build(gs.load(ROOT / "specs" / "residual_mlp.yaml"))
    plan = Plan(ir)
    targets = plan.loss_targets()
    need = set().union(*(nx.ancestors(ir.graph, t) | {t} for t in targets))
    assert plan.needed(targets) == [
        n for n in ir.order if n in need and ir.node(n).kind == "op"]
    down = set().union(*(nx.descendants(ir.graph, v) | {v} for v in plan.leaves()))
    assert plan.grad_path() <= down
    assert plan.grad_path(ir.params) <= plan.grad_path()


def test_build_restores_the_garbage_collector():
    assert gc.isenabled()
    gs.build(gs.loads(MLP, "<mlp>"))
    assert gc.isenabled()
    with pytest.raises(gs.SpecError):
        gs.build(gs.loads(MLP.replace("units: 6", "units: 6, bogus: 1"), "<mlp>"))
    assert gc.isenabled()
    gc.disable()
    try:
        gs.build(gs.loads(MLP, "<mlp>"))
        assert not gc.isenabled()  # as it was
    finally:
        gc.enable()


def test_generated_module_names_the_training_entry_point():
    _, prog, _, _ = _mlp()
    assert re.search(r"^def loss_and_param_grads\(", prog.source(), re.M)


def test_written_module_has_forward_and_backward_functions():
    """`compile -o` promises a `forward` and a `backward`; backward's gradients are
    loss_and_grads' gradients."""
    import graphspec as gs

    ir = gs.build(gs.load("specs/xor.yaml"))
    prog = gs.compile(ir, "numpy")
    params = gs.init_params(ir)
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(5, 2)), "y": rng.integers(0, 2, size=(5, 1)).astype(float)}
    grads = prog.module.backward(params, batch)
    _, _, expected = prog.loss_and_grads(params, batch)
    assert set(grads) == set(expected)
    for k in grads:
        np.testing.assert_array_equal(grads[k], expected[k])
    assert set(prog.module.forward(params, batch)) == {"logit"}


# ---- what a written module holds --------------------------------------------------------------

ENTRY_POINTS = {
    "forward", "evaluate", "loss_and_grads", "loss_and_param_grads", "backward",
    "load_checkpoint",
}


def test_xor_module_is_short_and_holds_only_what_it_calls(tmp_path):
    from graphspec.cli import main

    out = tmp_path / "xor.py"
    assert main(["compile", str(ROOT / "specs" / "xor.yaml"), "--backend", "numpy",
                 "-o", str(out)]) == 0
    src = out.read_text(encoding="utf-8")
    assert len(src.splitlines()) < 210  # 208: 191, the fused update's 14, tanh's owned path 3
    tree = ast.parse(src)
    called = {n.func.id for n in ast.walk(tree)
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert [d for d in defined if d not in called and d not in ENTRY_POINTS] == []
    assert not {"erf", "erfc", "unbroadcast", "_draw"} & set(defined)  # XOR needs none


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_generated_code_names_the_spec_file_as_given(backend, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "xor.yaml").write_text((ROOT / "specs" / "xor.yaml").read_text())
    given = "./specs//xor.yaml"  # what Path() would write 'specs/xor.yaml'
    src = gs.compile(gs.build(gs.load(given)), backend).source()
    assert src.count("xor.yaml") == src.count(given) > 3  # the docstring and node comments
    assert str(tmp_path) not in src


def test_statements_only_input_gradients_need_run_under_the_flag():
    ir = gs.build(gs.loads(MLP.replace(
        "  - {id: fc0, op: linear, in: x, units: 7}",
        "  - {id: xs, op: scale, in: x, factor: 2.0}\n  - {id: fc0, op: linear, units: 7}",
    ), "<mlp>"))
    prog = gs.compile(ir, "numpy")
    src = _function(prog.source(), "loss_and_grads")
    assert "    if input_grads:\n        (g_x,) = scale_vjp(g_xs, None, None, factor=2.0)" in src
    calls: list[int] = []
    real = prog.module.scale_vjp
    prog.module.scale_vjp = lambda *a, **kw: calls.append(1) or real(*a, **kw)
    params = gs.init_params(ir)
    rng = np.random.default_rng(0)
    x = {"x": rng.normal(size=(8, 5)), "y": rng.integers(0, 3, size=8)}
    _, _, grads, _ = prog.module.loss_and_param_grads(params, x)
    assert calls == [] and set(grads) == set(ir.params)
    _, _, full, _ = prog.module.loss_and_grads(params, x)
    assert calls == [1] and set(full) == {*ir.params, "x"}
    for k in grads:
        assert np.array_equal(grads[k], full[k]), k
    # dL/dx = 2 dL/dxs: against central differences in one direction.
    u = rng.normal(size=(8, 5))
    eps = 1e-6
    plus = prog.module.loss_and_grads(params, {**x, "x": x["x"] + eps * u})[0]
    minus = prog.module.loss_and_grads(params, {**x, "x": x["x"] - eps * u})[0]
    assert np.vdot(full["x"], u) == pytest.approx((plus - minus) / (2 * eps), rel=1e-6)


def test_generated_names_never_clash_with_node_variables():
    """Cotangents (g_), residuals (res_), noise (noise_) and the flags (input_grads) are
    named around the spec's ids, whatever those are."""
    from graphspec.verify import verify

    spec = MLP.replace(
        """graph:
  - {id: fc0, op: linear, in: x, units: 7}
  - {id: act0, op: relu}""",
        """graph:
  - {id: g_x, op: linear, in: x, units: 7}
  - {id: res_n, op: layer_norm}
  - {id: noise_d, op: dropout, p: 0.2}
  - {id: g_noise_d, op: relu}
  - {id: input_grads, op: linear, units: 7}
  - {id: losses, op: tanh}""",
    )
    ir = gs.build(gs.loads(spec, "<clash>"))
    src = gs.compile(ir, "numpy").source()
    assert "res_n, res_res_n = layer_norm(g_x, " in src
    assert "(g_res_n,) = dropout_vjp(g_noise_d_2, " in src
    assert "input_grads_2 = linear(" in src and "losses_2 = tanh(" in src
    report = verify(ir, backends=("numpy", "torch"), steps=1)
    assert report.ok, report.render(only_failures=True)


# ---- buffer reuse: own=True only where the buffer is fresh and dies at the call ----------------

REUSE = """
graphspec: 1
name: reuse
inputs:
  x: [batch, 4]
  y: [batch, 4]
graph:
  - {id: fc0, op: linear, in: x, units: 4}
  - {id: act0, op: relu, in: fc0}
  - {id: skip, op: add, in: [fc0, act0]}
  - {id: same, op: identity, in: x}
  - {id: act1, op: relu, in: same}
  - {id: both, op: add, in: [skip, act1]}
  - {id: act2, op: relu, in: both}
  - {id: fc1, op: linear, in: act2, units: 4}
  - {id: act3, op: relu, in: fc1}
  - {id: out, op: add, in: [act3, act2]}
outputs: [out, fc1]
loss:
  - {op: mse, in: [out, y]}
"""


def test_buffers_are_reused_only_where_nothing_else_holds_them():
    """relu overwrites neither a pre-activation read later (fc0: the skip connection) nor
    an output (fc1), nor what identity returns (x itself), nor add's result (not declared
    fresh); its VJP overwrites no cotangent add's VJP hands two arguments at once; and the
    module computes what the reference interpreter (which never passes own) does, bit for
    bit, leaving the inputs as they were."""
    from graphspec.backend import CompileOptions
    from graphspec.ir.interpret import Interpreter
    from graphspec_numpy import kernels
    from graphspec_numpy.program import NumpyProgram

    ir = gs.build(gs.loads(REUSE, "<reuse>"))
    module = NumpyProgram(ir, CompileOptions()).module
    source = gs.compile(ir, "numpy").source()
    train = _function(source, "loss_and_grads")
    for plain in ("relu(fc0)", "relu(same)", "relu(both)", "relu_vjp(g_act3, act3, None)"):
        assert plain + "  " in train or plain + "\n" in train, plain
    # fc1 is an output: evaluate keeps it; the training step does not, so it reuses it.
    assert "relu(fc1)  " in _function(source, "evaluate") and "relu(fc1, own=True)" in train
    rng = np.random.default_rng(0)
    params = gs.init_params(ir, seed=0)
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    loss, _, grads, _ = module.loss_and_grads(params, {"x": x.copy(), "y": y})
    ref = Interpreter(ir, kernels).loss_and_grads(params, {"x": x, "y": y})
    assert float(loss) == ref.loss
    for k in ref.grads:
        np.testing.assert_array_equal(grads[k], ref.grads[k])


def test_reused_buffers_give_the_interpreters_bits_on_the_mlp():
    """Where own=True is passed (the plain MLP), the same bits as the interpreter, and
    the caller's arrays untouched."""
    from graphspec.ir.interpret import Interpreter
    from graphspec_numpy import kernels

    ir, prog, params, inputs = _mlp("float32")
    assert "relu(fc0, own=True)" in prog.source()
    before = {k: v.copy() for k, v in inputs.items()}
    res = prog.loss_and_grads(params, inputs)
    ref = Interpreter(ir, kernels).loss_and_grads(params, inputs)
    assert float(res.loss) == ref.loss
    for k, v in ref.grads.items():
        np.testing.assert_array_equal(res.grads[k], v)
    for k, v in before.items():
        np.testing.assert_array_equal(inputs[k], v)
