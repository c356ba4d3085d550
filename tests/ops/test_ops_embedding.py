"""The embedding op beyond the conformance suite: its initialization (torch's normal, the
padding row zero), the scatter of its gradient to the rows used, and token ids outside the
vocabulary refused as a clear error wherever they enter (kernel, program, data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import graphspec as gs
from graphspec.cli import main
from graphspec.errors import InputError
from graphspec.ir.serialize import graph_from_json, ir_to_json
from graphspec.ops import REGISTRY, ShapeError, TensorType
from graphspec_numpy.kernels import KERNELS, VJPS

SPEC = """\
graphspec: 1
name: emb
inputs:
  ids: {shape: [batch, 5], dtype: int}
  y: {shape: [batch], dtype: int}
graph:
  - {id: emb, op: embedding, in: ids, vocab: 400, dim: 50, padding_idx: 3}
  - {id: pooled, op: mean, in: emb, axis: 1}
  - {id: logits, op: linear, in: pooled, units: 2}
outputs: [logits]
loss:
  - {op: cross_entropy, in: [logits, y]}
"""


def test_output_is_the_ids_shape_plus_dim():
    a = REGISTRY["embedding"].attrs(vocab=10, dim=4)
    assert a.infer(TensorType(("batch", "time"), "int")).shape == ("batch", "time", 4)
    assert a.infer(TensorType((), "int")).shape == (4,)
    with pytest.raises(ShapeError, match="declare the input with dtype: int"):
        a.infer(TensorType(("batch", 3)))


def test_weight_is_torchs_normal_with_the_padding_row_zero():
    ir = gs.build(gs.loads(SPEC, "<emb>"))
    w = gs.init_params(ir, 0)["emb.weight"]
    assert w.shape == (400, 50)
    assert np.all(w[3] == 0)
    rest = np.delete(w, 3, axis=0)
    assert abs(rest.mean()) < 0.02 and abs(rest.std() - 1.0) < 0.02  # N(0, 1), 19,950 draws
    # The padding row survives an initializer the spec chooses, as after torch's reset.
    text = SPEC.replace("padding_idx: 3}", "padding_idx: 3, init: {name: uniform, a: 0.1}}")
    w2 = gs.init_params(gs.build(gs.loads(text, "<emb>")), 0)["emb.weight"]
    assert np.all(w2[3] == 0) and 0 < np.abs(w2).max() <= 0.1


def test_the_zero_row_survives_the_ir_json():
    ir = gs.build(gs.loads(SPEC, "<emb>"))
    graph = graph_from_json(ir_to_json(ir))
    assert graph.nodes["emb.weight"]["node"].decl.zero_rows == (3,)
    assert "zero_rows" not in str(ir_to_json(ir)["nodes"][-1])  # absent where unset


def test_gradient_reaches_only_the_rows_used_and_never_the_padding_row():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(8, 3))
    ids = np.array([[1, 4, 4], [0, 1, 6]])
    g = rng.normal(size=(2, 3, 3))
    _, gw = VJPS["embedding"](g, None, ids, weight, padding_idx=6)
    want = np.zeros_like(weight)
    np.add.at(want, ids.reshape(-1), g.reshape(-1, 3))
    want[6] = 0
    np.testing.assert_allclose(gw, want, rtol=1e-15)
    assert np.all(gw[[2, 3, 5, 6, 7]] == 0)
    np.testing.assert_allclose(gw[4], g[0, 1] + g[0, 2])  # a repeated id adds


@pytest.mark.parametrize("bad", [10, -1])
def test_the_numpy_kernel_names_an_id_outside_the_vocabulary(bad):
    ids = np.array([[0, 3], [bad, 2]])
    with pytest.raises(ValueError, match=f"token id {bad} is outside the vocabulary of 10"):
        KERNELS["embedding"](ids, np.zeros((10, 2)), padding_idx=None)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_programs_refuse_an_id_outside_the_vocabulary(backend):
    ir = gs.build(gs.loads(SPEC, "<emb>"))
    prog = gs.compile(ir, backend=backend)
    params = gs.init_params(ir, 0)
    ids = np.array([[0, 1, 2, 3, 4], [5, 6, 400, 8, 9]])
    with pytest.raises(
        InputError,
        match="row 1: token id 400 of input 'ids' is outside the "
        r"vocabulary of embedding 'emb' \(vocab 400: ids 0..399\)",
    ):
        prog.forward(params, {"ids": ids})
    ok = prog.forward(params, {"ids": ids % 400})["logits"]
    assert ok.shape == (2, 2)


def test_an_npz_with_an_id_outside_the_vocabulary_names_the_row(tmp_path: Path, capsys):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 400, size=(6, 5))
    ids[4, 2] = -7
    np.savez(tmp_path / "tokens.npz", ids=ids, y=rng.integers(0, 2, size=6))
    spec = tmp_path / "emb.yaml"
    spec.write_text(SPEC + "train:\n  data: {path: tokens.npz}\n")
    assert main(["validate", "--train", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "tokens.npz: row index 4: token id -7 of input 'ids' is outside the vocabulary" in err
    assert "emb.yaml:14:16: error" in err  # located at the data path


@pytest.mark.slow  # the exporter's first use takes ~15 s
def test_onnx_export_is_a_gather(tmp_path: Path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from graphspec_torch.export import export_onnx  # deferred: torch is heavy

    ir = gs.build(gs.loads(SPEC, "<emb>"))
    params = gs.init_params(ir, 0)
    path = export_onnx(ir, params, tmp_path / "emb.onnx", dtype="float64")
    assert "Gather" in {n.op_type for n in onnx.load(str(path)).graph.node}
    ids = np.random.default_rng(1).integers(0, 400, size=(3, 5))
    (got,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"ids": ids}
    )
    want = gs.compile(ir, "numpy").forward(params, {"ids": ids})["logits"]
    np.testing.assert_allclose(got, want, rtol=1e-12)
