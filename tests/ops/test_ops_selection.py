"""Behaviour of the selection ops (where, pad, einsum) beyond the generated conformance
suite: their attribute checks and shape errors, and a shape error located in a spec."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

import graphspec as gs
from graphspec.ops import REGISTRY, ShapeError, TensorType
from graphspec_numpy.kernels import KERNELS


def T(*shape, dtype="float"):
    return TensorType(tuple(shape), dtype)


def attrs(name, **kw):
    return REGISTRY[name].attrs(**kw)


@pytest.mark.parametrize(
    "name, kw, message",
    [
        ("pad", {"pads": []}, "at least 1"),
        ("pad", {"pads": [[1, -1]]}, "pads must be >= 0 (use slice to cut), got [1, -1]"),
        ("pad", {"pads": [[1, 2, 3]]}, "at most 2"),
        ("pad", {"pads": [[1, 1]], "mode": "wrap"}, "'constant', 'reflect' or 'replicate'"),
        ("pad", {"pads": [[1, 1]] * 4, "mode": "reflect"}, "at most 3 trailing axes"),
        ("pad", {"pads": [[1, 1]], "mode": "replicate", "value": 2.0}, "value applies to mode"),
        ("einsum", {"equation": "ij,jk"}, "needs one '->'"),
        ("einsum", {"equation": "...ij->...ji"}, "'...' is not supported"),
        ("einsum", {"equation": "i1->i"}, "'1' is not a letter"),
        ("einsum", {"equation": "ii->i"}, "operand 0 repeats 'i' (diagonals and traces"),
        ("einsum", {"equation": "ij->ii"}, "the output repeats 'i'"),
        ("einsum", {"equation": "ij->k"}, "output letter 'k' is on no operand"),
    ],
)
def test_bad_attributes_are_refused(name, kw, message):
    with pytest.raises(pydantic.ValidationError) as e:
        attrs(name, **kw)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "name, kw, types, message",
    [
        ("where", {}, [T(3), T(3), T(3, dtype="int")], "where needs a and b of one dtype"),
        (
            "where",
            {},
            [T(2, 3), T("batch", 3), T(4, 1)],
            "where: cond [2, 3], a [batch, 3] and b [4, 1] do not broadcast to one shape",
        ),
        ("pad", {"pads": [[1, 1]] * 3}, [T(4, 5)], "pads lists 3 axes, but the input [4, 5]"),
        (
            "pad",
            {"pads": [[1, 0], [0, 0]]},
            [T("batch", 5)],
            "pad cannot grow symbolic dim 'batch' (axis 0 of [batch, 5])",
        ),
        (
            "pad",
            {"pads": [[1, 4]], "mode": "reflect"},
            [T(2, 4)],
            "reflect padding [1, 4] of axis 1 of [2, 4] needs each pad smaller than the axis (4)",
        ),
        ("einsum", {"equation": "ij,jk->ik"}, [T(3, 4)], "names 2 operand(s), but the node has 1"),
        (
            "einsum",
            {"equation": "ij,jk->ik"},
            [T(3, 4), T(4)],
            "operand 1 'jk' names 2 axes, but input 1 [4] has rank 1",
        ),
        (
            "einsum",
            {"equation": "ij,jk->ik"},
            [T(3, 4), T(5, 2)],
            "letter 'j' is 4 on operand 0 but 5 on operand 1",
        ),
        ("einsum", {"equation": "ij->i"}, [T(3, 4, dtype="int")], "einsum takes float tensors"),
    ],
)
def test_shape_errors(name, kw, types, message):
    with pytest.raises(ShapeError) as e:
        attrs(name, **kw).infer(*types)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "name, kw, types, out",
    [
        ("where", {}, [T("batch", 1, dtype="int"), T(3), T("batch", 3)], ("batch", 3)),
        ("pad", {"pads": [[0, 0], [2, 1]]}, [T("batch", 3, 4)], ("batch", 3, 7)),
        (
            "einsum",
            {"equation": "bij,bjk->bik"},
            [T("batch", 2, 3), T("batch", 3, 4)],
            ("batch", 2, 4),
        ),
    ],
)
def test_symbolic_dims_pass_through(name, kw, types, out):
    assert attrs(name, **kw).infer(*types).shape == out


def test_pad_orders_pairs_like_numpy_for_the_trailing_axes():
    """``pads`` lists [before, after] per padded axis in axis order (the last pair is the
    last axis), as np.pad does; reflect does not repeat the edge, replicate does."""
    x = np.arange(6.0).reshape(2, 3)
    y = KERNELS["pad"](x, pads=[[1, 0], [0, 2]], mode="constant", value=9.0)
    np.testing.assert_array_equal(y, [[9, 9, 9, 9, 9], [0, 1, 2, 9, 9], [3, 4, 5, 9, 9]])
    row = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(
        KERNELS["pad"](row, pads=[[2, 2]], mode="reflect", value=0.0), [3, 2, 1, 2, 3, 2, 1]
    )
    np.testing.assert_array_equal(
        KERNELS["pad"](row, pads=[[2, 1]], mode="replicate", value=0.0), [1, 1, 1, 2, 3, 3]
    )


def test_an_einsum_size_mismatch_is_located_in_the_spec():
    text = """graphspec: 1
name: t
seed: 0
inputs:
  a: [batch, 3, 4]
  b: [batch, 5, 2]
graph:
  - {id: y, op: einsum, in: [a, b], equation: "bij,bjk->bik"}
outputs: [y]
"""
    with pytest.raises(gs.SpecError) as e:
        gs.build(gs.loads(text))
    message = str(e.value)
    assert "letter 'j' is 4 on operand 0 but 5 on operand 1" in message
    assert ":8:" in message  # the line of node y


@pytest.mark.slow
def test_selection_ops_export_to_onnx_with_a_dynamic_batch(tmp_path):
    """Every pad mode (reflect and replicate fold the leading axes into one for F.pad),
    where with a float mask, and einsum, exported together and run by onnxruntime at two
    batch sizes: the numpy backend's outputs (the exporter's probe tries first samples only)."""
    import onnxruntime as ort  # deferred: heavy, and only this test needs it

    from graphspec_torch.export import export_onnx  # deferred: torch is heavy

    text = """graphspec: 1
name: sel
seed: 0
inputs:
  x: [batch, 2, 4, 5]
  m: [batch, 2, 6, 9]
graph:
  - {id: r, op: pad, in: x, pads: [[1, 1], [2, 2]], mode: reflect}
  - {id: e, op: pad, in: x, pads: [[1, 1], [3, 1]], mode: replicate}
  - {id: c, op: pad, in: x, pads: [[0, 2], [2, 2]], value: 0.5}
  - {id: w, op: where, in: [m, r, e]}
  - {id: y, op: einsum, in: [w, c], equation: "bchw,bchw->bh"}
outputs: [y, w]
"""
    ir = gs.build(gs.loads(text))
    params = gs.init_params(ir)
    path = export_onnx(ir, params, tmp_path / "sel.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = gs.compile(ir, "numpy")
    rng = np.random.default_rng(0)
    for batch in (1, 7):
        x = {
            "x": rng.normal(size=(batch, 2, 4, 5)).astype(np.float32),
            "m": (rng.random((batch, 2, 6, 9)) < 0.5).astype(np.float32),
        }
        want = ref.forward(params, {k: v.astype(np.float64) for k, v in x.items()})
        for name, got in zip(ir.outputs, session.run(None, x)):
            np.testing.assert_allclose(got, want[name], rtol=1e-4, atol=1e-5, err_msg=name)
