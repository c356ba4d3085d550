"""lstm, gru and rnn beyond the conformance suite: located shape errors, padded sequences
(each row as if run alone on its own length), both backends through a spec with lengths and
initial states, the default initializers, the data check of lengths, and ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import graphspec as gs
from graphspec.errors import BackendError, DataError
from graphspec.ir.initializers import INITIALIZERS
from graphspec.ops import ParamDecl
from graphspec.train.data import load_data
from graphspec.verify import verify
from graphspec.verify.inputs import random_inputs
from graphspec_numpy import kernels

HEAD = (
    "graphspec: 1\nname: t\nseed: 0\ninputs:\n  x: [batch, 5, 3]\n  flat: [batch, 3]\n"
    "  h: [batch, 4]\n  n: {shape: [batch], dtype: int}\ngraph:\n"
)


def build(node: str) -> gs.IR:
    return gs.build(gs.loads(HEAD + f"  - {{id: r, {node}}}\noutputs: [r]\n", "t.yaml"))


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (
            "op: lstm, in: flat, units: 4",
            "lstm needs a 3-D input [batch, time, features], got shape [batch, 3]",
        ),
        (
            "op: gru, in: [x, h], units: 2, initial_state: true",
            "initial state h0 must be [batch, 2] (directions 1 * units 2) with x's batch batch, "
            "got shape [batch, 4]",
        ),
        (
            "op: lstm, in: [x, h], units: 4, initial_state: true",
            "lstm with these attributes takes inputs (x, h0, c0), got 2",
        ),
        (
            "op: rnn, in: [x, n], units: 4",
            "rnn got 2 inputs but reads 1: set 'initial_state: true' for initial states and "
            "'lengths: true' for a lengths input",
        ),
        (
            "op: rnn, in: [x, n], units: 4, initial_state: true",
            # the registry's dtype check (recurrent inputs declare theirs), located at 'n'
            "'r' (rnn) takes a float tensor as its input 'h0', but 'n' is [batch] int",
        ),
        (
            "op: gru, in: [x, h], units: 4, lengths: true",
            "'r' (gru) takes an int tensor as its input 'lengths', but 'h' is [batch, 4]",
        ),
    ],
)
def test_bad_recurrent_nodes_are_located_errors(node: str, message: str) -> None:
    with pytest.raises(gs.SpecError) as info:
        build(node)
    assert message in str(info.value)
    assert info.value.location is not None and info.value.location.line == 10


def test_parameters_are_torchs_layout_with_the_documented_initializers() -> None:
    ir = build("op: lstm, in: x, units: 4, bidirectional: true, returns: last")
    assert ir.node("r").type.shape == ("batch", 8)
    decls = {p.split(".")[1]: ir.param(p).decl for p in ir.params}
    assert list(decls) == [
        "weight_ih",
        "weight_hh",
        "bias_ih",
        "bias_hh",
        "weight_ih_reverse",
        "weight_hh_reverse",
        "bias_ih_reverse",
        "bias_hh_reverse",
    ]
    assert decls["weight_ih"].shape == (16, 3) and decls["weight_hh"].shape == (16, 4)
    params = gs.init_params(ir)
    for suffix in ("", "_reverse"):
        bias = params[f"r.bias_ih{suffix}"]
        assert bias.tolist() == [0.0] * 4 + [1.0] * 4 + [0.0] * 8  # i, f (forget: 1), g, o
        assert not params[f"r.bias_hh{suffix}"].any()
        w = params[f"r.weight_hh{suffix}"].reshape(4, 4, 4)  # each gate block orthogonal
        for block in w:
            np.testing.assert_allclose(block @ block.T, np.eye(4), atol=1e-12)
    ir = build("op: gru, in: x, units: 4, init: {bias_ih: zeros, weight_hh: he_normal}")
    assert ir.param("r.weight_hh").init == "he_normal"


def test_orthogonal_blocks_and_unit_forget_bias_refuse_shapes_they_cannot_fill() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="blocks"):
        INITIALIZERS["orthogonal"](rng, ParamDecl((6, 4)), blocks=4)
    with pytest.raises(ValueError, match="4 gate blocks"):
        INITIALIZERS["unit_forget_bias"](rng, ParamDecl((6,)))
    # blocks: 1 draws what orthogonal always drew.
    a = INITIALIZERS["orthogonal"](np.random.default_rng(1), ParamDecl((5, 3)))
    b = INITIALIZERS["orthogonal"](np.random.default_rng(1), ParamDecl((5, 3)), blocks=1)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("op", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_rows_run_as_if_alone_and_take_no_gradient(op: str, bidirectional: bool) -> None:
    rng = np.random.default_rng(3)
    units, dirs, rows = 3, 2 if bidirectional else 1, {"lstm": 4, "gru": 3, "rnn": 1}[op]
    x = rng.normal(size=(3, 5, 2))
    lengths = np.array([5, 2, 3])
    params = [
        rng.normal(scale=0.5, size=s)
        for _ in range(dirs)
        for s in ((rows * units, 2), (rows * units, units), (rows * units,), (rows * units,))
    ]
    kw = {"bidirectional": bidirectional, "initial_state": False}
    if op == "rnn":
        kw["nonlinearity"] = "tanh"
    fn, back = kernels.KERNELS[op], kernels.VJPS[op]
    seq, res = fn(x, lengths, *params, returns="sequences", lengths=True, save=True, **kw)
    last = fn(x, lengths, *params, returns="last", lengths=True, **kw)
    for i, n in enumerate(lengths):
        alone = fn(x[i : i + 1, :n], *params, returns="sequences", lengths=False, **kw)
        np.testing.assert_allclose(seq[i, :n], alone[0], atol=1e-12)
        assert not seq[i, n:].any()  # zeros past the length, as torch pads packed outputs
        alone_last = fn(x[i : i + 1, :n], *params, returns="last", lengths=False, **kw)
        np.testing.assert_allclose(last[i], alone_last[0], atol=1e-12)
    g = rng.normal(size=seq.shape)
    grads = back(g, None, x, lengths, *params, returns="sequences", lengths=True, res=res, **kw)
    assert grads[1] is None  # lengths
    for i, n in enumerate(lengths):
        assert not grads[0][i, n:].any()  # padded steps take no gradient


SPEC = """\
graphspec: 1
name: padded
seed: 1
inputs:
  x: [batch, 4, 3]
  n: {shape: [batch], dtype: int}
  h0: [batch, 6]
  c0: [batch, 6]
  y: [batch, 2]
graph:
  - {id: enc, op: lstm, in: [x, h0, c0, n], units: 3, bidirectional: true, returns: last,
     initial_state: true, lengths: true}
  - {id: seq, op: gru, in: [x, n], units: 2, lengths: true}
  - {id: relu, op: rnn, in: x, units: 2, nonlinearity: relu, returns: last}
  - {id: pool, op: mean, in: seq, axis: 1}
  - {id: both, op: concat, in: [enc, pool, relu], axis: 1}
  - {id: out, op: linear, in: both, units: 2}
loss:
  - {op: mse, in: [out, y]}
outputs: [out]
"""


def test_both_backends_agree_through_a_spec_with_lengths_and_initial_states() -> None:
    ir = gs.build(gs.loads(SPEC, "padded.yaml"))
    rng = np.random.default_rng(0)
    inputs = {
        "x": rng.normal(size=(3, 4, 3)),
        "n": np.array([4, 1, 2]),
        "h0": rng.normal(size=(3, 6)),
        "c0": rng.normal(size=(3, 6)),
        "y": rng.normal(size=(3, 2)),
    }
    params = gs.init_params(ir)
    results = []
    for backend in ("numpy", "torch"):
        prog = gs.compile(ir, backend, dtype="float64")
        results.append((prog.forward(params, inputs)["out"], prog.loss_and_grads(params, inputs)))
    (y_np, r_np), (y_t, r_t) = results
    np.testing.assert_allclose(y_np, y_t, rtol=1e-10, atol=1e-12)
    assert r_np.loss == pytest.approx(r_t.loss, rel=1e-10)
    assert set(r_np.grads) == set(r_t.grads) and "enc.weight_hh_reverse" in r_np.grads
    for k in r_np.grads:
        np.testing.assert_allclose(r_np.grads[k], r_t.grads[k], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(("lengths", "row", "value"), [([4, 5, 2], 1, 5), ([4, 0, 2], 1, 0)])
def test_lengths_outside_the_sequence_are_data_errors_naming_file_and_row(
    tmp_path: Path, lengths: list[int], row: int, value: int
) -> None:
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(
        "graphspec: 1\nname: t\nseed: 0\ninputs:\n  x: [batch, 4, 2]\n"
        "  n: {shape: [batch], dtype: int}\n  y: [batch, 3]\ngraph:\n"
        "  - {id: r, op: rnn, in: [x, n], units: 3, lengths: true, returns: last}\n"
        "loss:\n  - {op: mse, in: [r, y]}\ntrain:\n  data: {path: d.npz}\n"
    )
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 4, 2)), n=np.array(lengths), y=np.zeros((3, 3)))
    spec = gs.load(spec_path)
    with pytest.raises(DataError) as info:
        load_data(spec, gs.build(spec), 0)
    assert (
        f"d.npz: row index {row}: length {value} of 'n' is out of range: 'r' (rnn) reads "
        "sequences of 4 steps (lengths 1..4)"
    ) in str(info.value)
    assert info.value.location is not None and info.value.location.line == 13


def test_export_refuses_lengths_naming_the_node(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    from graphspec_torch.export import export_onnx

    ir = gs.build(gs.loads(SPEC, "padded.yaml"))
    with pytest.raises(BackendError) as info:
        export_onnx(ir, gs.init_params(ir), tmp_path / "m.onnx")
    assert "'enc' (lstm), 'seq' (gru) have no ONNX form" in str(info.value)
    assert all("cannot export packed sequences" in note for note, _ in info.value.notes)


def test_verify_draws_lengths_in_range_and_both_backends_pass() -> None:
    # Without train.data verify draws random inputs: lengths in 1..time, where numpy's masks
    # and torch's packed sequences must agree (a length 0 would be clamped by torch only).
    report = verify(gs.build(gs.loads(SPEC, "padded.yaml")), steps=1)
    assert report.ok, report.render(only_failures=True)
    ir = gs.build(gs.loads(SPEC, "padded.yaml"))
    drawn = random_inputs(ir, 64, np.random.default_rng(0))["n"]
    assert drawn.min() == 1 and drawn.max() == 4


EXPORTED = """\
graphspec: 1
name: exported
seed: 2
inputs:
  x: [batch, 5, 3]
  h0: [batch, 6]
  c0: [batch, 6]
graph:
  - {id: enc, op: lstm, in: [x, h0, c0], units: 3, bidirectional: true, initial_state: true}
  - {id: gru, op: gru, in: enc, units: 2, returns: last}
  - {id: rnn, op: rnn, in: x, units: 2, nonlinearity: relu, returns: last}
  - {id: out, op: concat, in: [gru, rnn], axis: 1}
outputs: [out]
"""


@pytest.mark.slow
def test_recurrent_ops_with_initial_states_export_to_onnx(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnx

    from graphspec_torch.export import export_onnx

    ir = gs.build(gs.loads(EXPORTED, "exported.yaml"))
    params = gs.init_params(ir)
    path = export_onnx(ir, params, tmp_path / "m.onnx")  # float32: onnxruntime's LSTM has no double
    assert {"LSTM", "GRU"} <= {n.op_type for n in onnx.load(str(path)).graph.node}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    inputs = {
        "x": rng.normal(size=(4, 5, 3)),
        "h0": rng.normal(size=(4, 6)),
        "c0": rng.normal(size=(4, 6)),
    }
    feed = {i.name: inputs[i.name].astype(np.float32) for i in session.get_inputs()}
    (got,) = session.run(None, feed)
    want = gs.compile(ir, "numpy").forward(params, inputs)["out"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
