"""ONNX export: the onnx checker accepts the file and onnxruntime agrees with numpy.

Optional extras (pip install 'graphspec[onnx]'): the tests skip without them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from paths import GALLERY, XOR
from torch_helpers import FEATURES

import graphspec as gs
from graphspec.errors import BackendError
from graphspec.ops import REGISTRY

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from graphspec_torch.export import NOT_EXPORTABLE, export_onnx  # noqa: E402


def _sampled(ir: gs.IR) -> set[str]:
    """Outputs drawn through a sampler (dropout is the identity in evaluation: not those)."""
    from graphspec.ir.plan import Plan

    plan = Plan(ir)
    out = set()
    for name in ir.outputs:
        for n in plan.needed([f"output:{name}"]):
            opdef = ir.op(n).opdef
            if opdef.stochastic and not opdef.uses_training:
                out.add(name)
    return out


def _inputs(session: object, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in session.get_inputs():  # type: ignore[attr-defined]
        shape = [batch if isinstance(d, str) else d for d in i.shape]
        if "int64" in i.type:
            out[i.name] = rng.integers(0, 2, size=shape)
        else:
            dtype = np.float64 if "double" in i.type else np.float32
            out[i.name] = rng.normal(size=shape).astype(dtype)
    return out


def _check(ir: gs.IR, path: Path, params: dict[str, np.ndarray], rtol: float,
           atol: float) -> None:
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(ir.outputs)
    ref = gs.compile(ir, "numpy")
    sampled = _sampled(ir)
    for batch in (1, 9):  # the batch axis stays dynamic
        x = _inputs(session, batch)
        got = session.run(None, x)
        want = ref.forward(params, {k: v.astype(np.float64) if v.dtype.kind == "f" else v
                                    for k, v in x.items()})
        for name, value in zip(ir.outputs, got):
            assert value.shape == want[name].shape
            if name not in sampled:
                np.testing.assert_allclose(value, want[name], rtol=rtol, atol=atol, err_msg=name)


def _covering(specs: list[Path]) -> set[Path]:
    """Few gallery specs that together use every op any of them uses (greedy set cover): the
    default run exports those; the rest add no op and run with ``-m slow``."""
    irs = {p: gs.build(gs.load(p)) for p in specs}
    ops = {p: {ir.node(n).op for n in ir.op_nodes()} for p, ir in irs.items()}
    left = set().union(*ops.values())
    chosen: set[Path] = set()
    while left:
        best = max(specs, key=lambda p: (len(ops[p] & left), -len(ops[p]), p.stem))
        chosen.add(best)
        left -= ops[best]
    return chosen


COVERING = _covering(GALLERY)


# Ops whose ONNX form onnxruntime's CPU build implements for float32 only (a float64 Conv
# fails there with NOT_IMPLEMENTED, an LSTM with "does not support double yet"): their
# float64 export is checked as a graph, not run.
ORT_FLOAT32_ONLY = {"conv1d", "conv2d", "conv_transpose2d", "lstm"}


@pytest.mark.parametrize(
    "spec_file",
    [p if p in COVERING else pytest.param(p, marks=pytest.mark.slow) for p in GALLERY],
    ids=[p.stem for p in GALLERY],
)
def test_gallery_exports(spec_file: Path, tmp_path: Path) -> None:
    ir = gs.build(gs.load(spec_file))
    params = gs.init_params(ir)
    ops = {ir.node(n).op for n in ir.op_nodes()}
    blocked = ops & set(NOT_EXPORTABLE)
    if blocked:
        with pytest.raises(BackendError, match=sorted(blocked)[0]):
            export_onnx(ir, params, tmp_path / "m.onnx")
        return
    # float32 (what people deploy): a deep tanh stack drawn at a large scale (the
    # initialization spec) amplifies float32 rounding to ~5e-4 relative, hence the
    # tolerance; float64 pins the graph itself down.
    _check(ir, export_onnx(ir, params, tmp_path / "m32.onnx"), params, rtol=2e-3, atol=1e-4)
    m64 = export_onnx(ir, params, tmp_path / "m64.onnx", dtype="float64")
    if ops & ORT_FLOAT32_ONLY:
        onnx.checker.check_model(str(m64), full_check=True)  # valid, typed; ORT cannot run it
        return
    _check(ir, m64, params, rtol=1e-9, atol=1e-12)


def test_state_dropout_and_unused_inputs(tmp_path: Path) -> None:
    ir = gs.build(gs.loads(FEATURES, "<features>"))
    params = gs.init_params(ir, seed=2)
    params["eval.running_mean"] = np.linspace(-1, 1, 6)  # evaluation uses running statistics
    path = export_onnx(ir, params, tmp_path / "f.onnx")
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["x"]  # the label feeds only the loss
    ops = {n.op_type for n in model.graph.node}
    assert not {o for o in ops if o.startswith("Random")}  # dropout is off in evaluation
    _check(ir, path, params, rtol=2e-3, atol=1e-4)


def test_opsets(tmp_path: Path) -> None:
    ir = gs.build(gs.load(XOR))
    params = gs.init_params(ir)
    path = export_onnx(ir, params, tmp_path / "x17.onnx", opset=17)
    assert {o.version for o in onnx.load(str(path)).opset_import if o.domain == ""} == {17}
    _check(ir, path, params, rtol=2e-3, atol=1e-4)
    with pytest.raises(BackendError, match="opset 16"):
        export_onnx(ir, params, tmp_path / "x16.onnx", opset=16)


def test_unexportable_op_is_named_with_its_location(tmp_path: Path) -> None:
    spec = gs.loads(
        "graphspec: 1\nname: attn\ninputs: {x: [batch, 4, 8]}\n"
        "graph:\n  - {id: att, op: scaled_dot_product_attention, in: [x, x, x]}\n"
        "outputs: [att]\n",
        "<attn>",
    )
    ir = gs.build(spec)
    with pytest.raises(BackendError) as info:
        export_onnx(ir, gs.init_params(ir), tmp_path / "a.onnx")
    assert "'att' (scaled_dot_product_attention)" in str(info.value)
    assert info.value.location is not None and info.value.location.line == 5


@pytest.mark.slow
def test_not_exportable_table_matches_the_exporter() -> None:
    """Export every op alone on its sample: the table lists exactly the ops that fail."""
    import torch

    from graphspec.ops.registry import iter_samples
    from graphspec_torch.export import _probe
    from graphspec_torch.kernels import KERNELS

    failing = {op for op in REGISTRY
               if _probe(op, KERNELS[op], iter_samples, torch.float32) is not None}
    assert failing == set(NOT_EXPORTABLE)
