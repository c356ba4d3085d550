"""``graphspec import``: ONNX models as specs that compute what the models compute.

Round trip: a gallery spec exported to ONNX (graphspec_torch.export) and imported back
computes the same outputs, loss and parameter gradients as the original, and the imported
spec passes ``graphspec verify`` (numpy against torch, and finite differences).  A CNN
written in plain torch and exported with ``torch.onnx.export`` imports and agrees with
torch.  Bad files and unsupported nodes are clear errors.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from paths import GALLERY, ROOT

import graphspec as gs
from graphspec.cli import main
from graphspec.onnx_import import OnnxImportError, import_onnx
from graphspec.onnx_import.reader import MAX_OPSET
from graphspec.train.checkpoint import load_params, load_params_for
from graphspec.verify import verify
from graphspec.verify.inputs import random_inputs

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
torch = pytest.importorskip("torch")

from onnx import TensorProto, helper  # noqa: E402

from graphspec_torch.export import NOT_EXPORTABLE, export_onnx  # noqa: E402

# ---- round trip over the gallery ----------------------------------------------------------


def _with_mse(data: dict[str, Any], shapes: dict[str, list[Any]]) -> dict[str, Any]:
    """The spec ``data`` with its own loss, training and claims replaced by one mse term per
    output against a new target input: the same loss for the original and the import."""
    data = {
        k: v
        for k, v in data.items()
        if k not in ("loss", "train", "expect", "analysis", "variants")
    }
    data["inputs"] = dict(data["inputs"])
    data["loss"] = []
    for out in data["outputs"]:
        data["inputs"][f"target_{out}"] = {"shape": shapes[out], "differentiable": False}
        data["loss"].append({"op": "mse", "in": [out, f"target_{out}"]})
    return data


def _ir(data: dict[str, Any], name: str) -> gs.IR:
    return gs.build(gs.loads(yaml.safe_dump(data, sort_keys=False), name))


def _exportable(spec_file: Path) -> dict[str, Any] | None:
    """The spec's data with an mse loss, or None when it does not export (an op with no
    ONNX form, or an output drawn through a sampler)."""
    ir = gs.build(gs.load(spec_file))
    ops = {ir.node(n).op for n in ir.op_nodes()}
    stochastic = any(
        ir.op(n).opdef.stochastic and not ir.op(n).opdef.uses_training for n in ir.op_nodes()
    )
    if ops & set(NOT_EXPORTABLE) or stochastic or not ir.outputs:
        return None
    shapes = {o: list(ir.type(o).shape) for o in ir.outputs}
    return _with_mse(yaml.safe_load(spec_file.read_text()), shapes)


def _roundtrip(data: dict[str, Any], tmp_path: Path) -> None:
    original = _ir(data, "original.yaml")
    rng = np.random.default_rng(0)
    # Away from the initial values (zero biases, unit gammas), which an exporter may fold.
    params = {
        k: v + (0.1 * rng.normal(size=v.shape) if k in original.params else 0)
        for k, v in gs.init_params(original).items()
    }
    model = export_onnx(original, params, tmp_path / "m.onnx", dtype="float64")
    done = import_onnx(model, tmp_path / "m.yaml")
    text = done.spec.read_text()
    plain = gs.build(gs.load(done.spec))  # as a user loads it
    got = load_params_for(plain, done.params)
    # The imported spec's own output shapes: torch.export fixes a dimension the model
    # cannot keep symbolic (an LSTM's time axis), and the import reads that.
    shapes = {o: list(plain.type(o).shape) for o in plain.outputs}
    imported = _ir(_with_mse(yaml.safe_load(text), shapes), "imported.yaml")
    assert list(imported.outputs) == list(original.outputs)

    inputs = random_inputs(original, 5, rng)
    ref, mine = gs.compile(original, "numpy"), gs.compile(imported, "numpy")
    want_out = ref.forward(params, inputs, training=False)
    mine_in = {k: v for k, v in inputs.items() if k in imported.inputs}
    got_out = mine.forward(got, mine_in, training=False)
    for name in original.outputs:
        np.testing.assert_allclose(
            got_out[name], want_out[name], rtol=1e-9, atol=1e-12, err_msg=name
        )
    # Gradients, parameter by parameter: an imported parameter holds the same numbers as
    # the original one it came from (layouts are inverted, not re-drawn).
    want = ref.loss_and_grads(params, inputs, training=False)
    have = mine.loss_and_grads(got, mine_in, training=False)
    np.testing.assert_allclose(have.loss, want.loss, rtol=1e-9)
    source = {v.tobytes(): k for k, v in params.items() if k in original.params}
    matched = 0
    for name, value in got.items():
        if name in imported.params and value.tobytes() in source:
            np.testing.assert_allclose(
                have.grads[name],
                want.grads[source[value.tobytes()]],
                rtol=1e-8,
                atol=1e-12,
                err_msg=name,
            )
            matched += 1
    assert matched > 0
    # And the imported spec itself verifies: numpy against torch, finite differences.
    report = verify(imported, steps=0)
    assert report.ok, report


# The default run: a convolutional and a recurrent spec (conv2d, max_pool2d, flatten,
# linear; embedding, lstm, the sequence-first layout undone).  Each round trip costs an
# ONNX export (seconds of torch.export), so the rest of the gallery runs with -m slow.
DEFAULT = {"cnn_digits", "rnn_vs_lstm"}
# Gallery specs whose export uses ONNX ops graphspec has no op for: the import must fail
# naming them (polynomial_features exports as GatherND/ReduceProd, step as Greater/Cast).
NOT_IMPORTABLE = {
    "polynomial_features": "(GatherND, ReduceProd)",
    "xor_composed": "(Cast, Greater)",
}
EXPORTING = [p for p in GALLERY if _exportable(p) is not None]


@pytest.mark.parametrize(
    "spec_file",
    [p if p.stem in DEFAULT else pytest.param(p, marks=pytest.mark.slow) for p in EXPORTING],
    ids=[p.stem for p in EXPORTING],
)
def test_gallery_round_trip(spec_file: Path, tmp_path: Path) -> None:
    data = _exportable(spec_file)
    assert data is not None
    if spec_file.stem in NOT_IMPORTABLE:
        with pytest.raises(OnnxImportError) as e:
            _roundtrip(data, tmp_path)
        assert f"graphspec cannot express {NOT_IMPORTABLE[spec_file.stem]}" in e.value.message
        return
    _roundtrip(data, tmp_path)


# ---- a model written in plain torch --------------------------------------------------------


class SmallCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1),
            torch.nn.BatchNorm2d(4),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(4, 6, 3, padding=1),
            torch.nn.BatchNorm2d(6),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        )
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6 * 2 * 2, 5))

    def forward(self, x: Any) -> Any:
        return self.head(self.features(x))


def _torch_cnn(path: Path) -> tuple[Any, np.ndarray]:
    torch.manual_seed(0)
    net = SmallCNN()
    with torch.no_grad():  # running statistics that are not the initial 0 and 1
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    net.eval()
    x = torch.randn(3, 1, 8, 8)
    # optimize=False keeps BatchNormalization nodes (the optimizer folds them into the
    # convolutions); the weights go to cnn.onnx.data beside the model, torch's default.
    torch.onnx.export(
        net,
        (x,),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
        optimize=False,
    )
    return net, x.numpy()


@pytest.fixture(scope="module")
def cnn_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, np.ndarray, Path]:
    """The torch CNN, an input, and its export (cnn.onnx + cnn.onnx.data), once."""
    path = tmp_path_factory.mktemp("cnn") / "cnn.onnx"
    net, x = _torch_cnn(path)
    return net, x, path


def test_torch_cnn_imports_and_matches_torch(cnn_onnx: Any, tmp_path: Path) -> None:
    net, x, model = cnn_onnx
    done = import_onnx(model, tmp_path / "cnn.yaml")
    spec = gs.load(done.spec)
    ir = gs.build(spec)
    ops = [ir.node(n).op for n in ir.op_nodes()]
    assert {"conv2d", "batch_norm", "relu", "max_pool2d", "linear"} <= set(ops)
    params = load_params_for(ir, done.params)
    with torch.no_grad():
        want = net(torch.as_tensor(x)).numpy()
    for backend in ("numpy", "torch"):
        prog = gs.compile(ir, backend, dtype="float32")
        got = prog.forward(params, {"image": x}, training=False)["logits"]
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5, err_msg=backend)
    data = yaml.safe_load(done.spec.read_text())
    report = verify(_ir(_with_mse(data, {"logits": ["batch", 5]}), "cnn.yaml"), steps=0)
    assert report.ok


def test_the_docs_show_what_the_import_writes(cnn_onnx: Any, tmp_path: Path) -> None:
    """docs/onnx.md's example is this CNN's import, line for line (but the doc: line, which
    names the exporter's versions)."""
    done = import_onnx(cnn_onnx[2], tmp_path / "cnn.yaml")
    doc = (ROOT / "docs" / "onnx.md").read_text()
    shown = doc.split("```yaml\n", 1)[1].split("```", 1)[0]

    def body(text: str) -> list[str]:
        return [ln for ln in text.strip().splitlines() if not ln.startswith("doc:")]

    assert body(shown) == body(done.spec.read_text())


def test_imported_parameters_feed_compile_and_train(cnn_onnx: Any, tmp_path: Path) -> None:
    spec, npz = tmp_path / "cnn.yaml", tmp_path / "cnn.npz"
    assert main(["import", str(cnn_onnx[2]), "-o", str(spec)]) == 0
    assert (
        main(
            [
                "compile",
                str(spec),
                "-b",
                "numpy",
                "-o",
                str(tmp_path / "m.py"),
                "--params",
                str(npz),
            ]
        )
        == 0
    )
    written = load_params(tmp_path / "m.npz")
    for k, v in load_params(npz).items():
        np.testing.assert_array_equal(written[k], v)
    # train --init-from reads them through the same check (checkpoint.load_params_for).
    ir = gs.build(gs.load(spec))
    assert set(load_params_for(ir, npz)) == set(ir.params) | set(ir.state)


def test_compile_params_of_another_spec_is_a_located_error(
    cnn_onnx: Any, tmp_path: Path, capsys: Any
) -> None:
    spec = tmp_path / "cnn.yaml"
    import_onnx(cnn_onnx[2], spec)
    arrays = dict(np.load(tmp_path / "cnn.npz"))
    arrays.pop(next(iter(arrays)))
    np.savez(tmp_path / "short.npz", **arrays)
    code = main(
        [
            "compile",
            str(spec),
            "-b",
            "numpy",
            "-o",
            str(tmp_path / "m.py"),
            "--params",
            str(tmp_path / "short.npz"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert f"{tmp_path / 'short.npz'}: error: the parameters of this checkpoint do not fit" in err
    assert "missing:" in err


# ---- ids and blocks -----------------------------------------------------------------------


def _model(
    nodes: list[Any], inits: list[Any], inputs: list[Any], outputs: list[Any], opset: int = 18
) -> Any:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _tensor(name: str, shape: tuple[int, ...], seed: int) -> Any:
    values = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    return onnx.numpy_helper.from_array(values, name)


def _mlp(depth: int, path: Path) -> Path:
    """x -> depth * (MatMul + Add bias + Relu) -> MatMul + Add: a repeated pattern."""
    nodes, inits, prev = [], [], "x"
    for i in range(depth):
        inits += [_tensor(f"w{i}", (4, 4), i), _tensor(f"b{i}", (4,), 100 + i)]
        nodes += [
            helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"], name=f"fc{i}"),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"], name=f"fc{i}_bias"),
            helper.make_node("Relu", [f"a{i}"], [f"r{i}"], name=f"act{i}"),
        ]
        prev = f"r{i}"
    inits += [_tensor("wo", (4, 2), 99)]
    nodes.append(helper.make_node("MatMul", [prev, "wo"], ["y"], name="head"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    onnx.save(_model(nodes, inits, [x], [y]), str(path))
    return path


def test_repeated_pattern_becomes_a_block_with_repeat(tmp_path: Path) -> None:
    done = import_onnx(_mlp(3, tmp_path / "mlp.onnx"), tmp_path / "mlp.yaml")
    data = yaml.safe_load(done.spec.read_text())
    assert list(data["blocks"]) == ["linear_relu"]
    assert [n["op"] for n in data["blocks"]["linear_relu"]["graph"]] == ["linear", "relu"]
    uses = [n for n in data["graph"] if "block" in n]
    assert uses == [{"id": "linear_relu1", "block": "linear_relu", "in": "x", "repeat": 3}]
    assert data["graph"][-1] == {"id": "y", "op": "linear", "units": 2, "bias": False}
    assert data["inputs"] == {"x": {"shape": ["N", 4]}}
    # Each copy keeps its own parameters, the Add folded into the linear's bias.
    params = load_params(done.params)
    w1 = onnx.numpy_helper.to_array(_tensor("w1", (4, 4), 1))
    np.testing.assert_array_equal(params["linear_relu1.1.linear1.weight"], w1)
    assert "linear_relu1.2.linear1.bias" in params
    x = np.random.default_rng(1).normal(size=(3, 4))
    _agrees_with_onnx_reference(tmp_path / "mlp.onnx", done, {"x": x})


def _agrees_with_onnx_reference(model: Path, done: Any, inputs: dict[str, np.ndarray]) -> None:
    from onnx.reference import ReferenceEvaluator

    ref = ReferenceEvaluator(str(model))
    want = ref.run(None, {k: v.astype(np.float32) for k, v in inputs.items()})
    ir = gs.build(gs.load(done.spec))
    got = gs.compile(ir, "numpy").forward(load_params(done.params), inputs, training=False)
    for name, value in zip(ir.outputs, want):
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-5)


def test_a_block_used_in_two_places(tmp_path: Path) -> None:
    """The same pattern twice, apart (different widths between): one block, two uses."""

    def unit(i: int, src: str, n: int) -> list[Any]:
        return [
            helper.make_node("Gemm", [src, f"w{i}", f"b{i}"], [f"g{i}"], transB=1),
            helper.make_node("Tanh", [f"g{i}"], [f"t{i}"]),
            helper.make_node("Gemm", [f"t{i}", f"v{i}"], [f"h{i}"], transB=1),
            helper.make_node("Sigmoid", [f"h{i}"], [f"s{i}"]),
        ]

    inits = []
    for i in (0, 1):
        inits += [
            _tensor(f"w{i}", (3, 3), i),
            _tensor(f"b{i}", (3,), 10 + i),
            _tensor(f"v{i}", (3, 3), 20 + i),
        ]
    inits.append(_tensor("mid", (3, 3), 30))
    nodes = unit(0, "x", 3) + [
        helper.make_node("MatMul", ["s0", "mid"], ["m"]),
        helper.make_node("Softmax", ["m"], ["sm"], axis=-1),
    ]
    nodes += unit(1, "sm", 3) + [helper.make_node("Identity", ["s1"], ["out"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3])
    onnx.save(_model(nodes, inits, [x], [y]), str(tmp_path / "m.onnx"))
    done = import_onnx(tmp_path / "m.onnx", tmp_path / "m.yaml")
    data = yaml.safe_load(done.spec.read_text())
    assert len(data["blocks"]) == 1
    uses = [n["block"] for n in data["graph"] if "block" in n]
    assert len(uses) == 2 and len(set(uses)) == 1
    _agrees_with_onnx_reference(
        tmp_path / "m.onnx", done, {"x": np.random.default_rng(2).normal(size=(4, 3))}
    )


def test_ids_come_from_node_names(tmp_path: Path) -> None:
    inits = [_tensor("W", (5, 4), 0)]
    nodes = [
        helper.make_node("Gemm", ["input.1", "W"], ["h"], name="/encoder/fc1/Gemm", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="/encoder/act/Relu"),
        helper.make_node("Sigmoid", ["r"], ["prob:0"], name=""),
    ]
    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("prob:0", TensorProto.FLOAT, ["batch", 5])
    onnx.save(_model(nodes, inits, [x], [y]), str(tmp_path / "m.onnx"))
    done = import_onnx(tmp_path / "m.onnx", tmp_path / "m.yaml")
    data = yaml.safe_load(done.spec.read_text())
    assert list(data["inputs"]) == ["input_1"]
    assert [n["id"] for n in data["graph"]] == ["encoder_fc1", "encoder_act", "prob_0"]
    assert data["outputs"] == ["prob_0"]


# ---- what it cannot express, and bad files ----------------------------------------------------


def test_unsupported_nodes_are_listed_with_names_and_ops(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="ok"),
        helper.make_node("HardSwish", ["a"], ["b"], name="hs1"),
        helper.make_node("LeakyRelu", ["b"], ["c"], name="lr", alpha=0.2),
        helper.make_node("Conv", ["c", "w"], ["d"], name="conv_asym", pads=[0, 1, 1, 0]),
        helper.make_node("TopK", ["d", "k"], ["e", "i"], name="topk"),
    ]
    inits = [
        _tensor("w", (2, 2, 3, 3), 0),
        onnx.numpy_helper.from_array(np.array([1], dtype=np.int64), "k"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 6, 6])
    y = helper.make_tensor_value_info("e", TensorProto.FLOAT, ["batch", 2, 5, 1])
    onnx.save(_model(nodes, inits, [x], [y]), str(tmp_path / "m.onnx"))
    with pytest.raises(OnnxImportError) as e:
        import_onnx(tmp_path / "m.onnx", tmp_path / "m.yaml")
    text = e.value.render()
    assert "3 ONNX nodes graphspec cannot express (Conv, HardSwish, TopK)" in text
    assert "'hs1' (HardSwish): graphspec has no op for HardSwish" in text
    assert "'conv_asym' (Conv): its pads [0, 1, 1, 0] differ at the two ends" in text
    assert "'topk' (TopK)" in text
    assert "'lr'" not in text and not (tmp_path / "m.yaml").exists()


def test_unsupported_attribute_is_named(tmp_path: Path) -> None:
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], name="g", transA=1)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
    onnx.save(_model(nodes, [_tensor("w", (3, 4), 0)], [x], [y]), str(tmp_path / "m.onnx"))
    with pytest.raises(OnnxImportError) as e:
        import_onnx(tmp_path / "m.onnx", tmp_path / "m.yaml")
    assert "'g' (Gemm): attribute transA=1 is not supported (only 0)" in e.value.render()


def _cli_error(capsys: Any, model: Path, tmp_path: Path) -> str:
    code = main(["import", str(model), "-o", str(tmp_path / "out.yaml")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "out.yaml").exists()
    return err


def test_not_onnx(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "spec.onnx"
    path.write_text("graphspec: 1\nname: not-a-model\n")
    err = _cli_error(capsys, path, tmp_path)
    assert f"{path}: error: {path} is not an ONNX model (or it is truncated)" in err


def test_truncated(tmp_path: Path, capsys: Any) -> None:
    whole = _mlp(2, tmp_path / "whole.onnx").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    err = _cli_error(capsys, path, tmp_path)
    assert f"{path}: error: {path}" in err
    assert "truncated" in err


def test_opset_too_new(tmp_path: Path, capsys: Any) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 2])
    path = tmp_path / "new.onnx"
    onnx.save(_model(nodes, [], [x], [y], opset=MAX_OPSET + 1), str(path))
    err = _cli_error(capsys, path, tmp_path)
    assert (
        f"uses ONNX opset {MAX_OPSET + 1}; graphspec import supports opsets 13 to {MAX_OPSET}"
    ) in err


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    path = _mlp(1, tmp_path / "m.onnx")
    with pytest.raises(OnnxImportError, match="over the 100-byte limit"):
        import_onnx(path, tmp_path / "m.yaml", limit=100)


def test_missing_file_and_directory(tmp_path: Path, capsys: Any) -> None:
    err = _cli_error(capsys, tmp_path / "nope.onnx", tmp_path)
    assert "no such file" in err
    err = _cli_error(capsys, tmp_path, tmp_path)
    assert "is a directory, not an ONNX file" in err


def test_without_onnx_the_extra_is_named(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _mlp(1, tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    err = _cli_error(capsys, path, tmp_path)
    assert "graphspec import needs the onnx package" in err
    assert "pip install 'graphspec[onnx]'" in err


# ---- recurrent layers, against onnxruntime ------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "attrs", "outputs"),
    [
        ("LSTM", {}, ["Y", ""]),
        ("LSTM", {"direction": "bidirectional"}, ["Y", ""]),
        ("GRU", {"linear_before_reset": 1}, ["", "Y_h"]),
        ("RNN", {"activations": ["Relu"]}, ["Y", "Y_h"]),
    ],
    ids=["lstm", "lstm-bidirectional", "gru-last", "rnn-relu-both"],
)
def test_recurrent_layers_match_onnxruntime(
    kind: str, attrs: dict[str, Any], outputs: list[str], tmp_path: Path
) -> None:
    """ONNX's gate order and sequence-first layout become graphspec's (torch's)."""
    ort = pytest.importorskip("onnxruntime")
    dirs, units, features = (2 if attrs.get("direction") else 1), 3, 2
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    inits = [
        _tensor("W", (dirs, gates * units, features), 1),
        _tensor("R", (dirs, gates * units, units), 2),
        _tensor("B", (dirs, 2 * gates * units), 3),
    ]
    node = helper.make_node(kind, ["x", "W", "R", "B"], outputs, hidden_size=units, **attrs)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, "batch", features])
    shapes = {"Y": [4, dirs, "batch", units], "Y_h": [dirs, "batch", units]}
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes[o]) for o in outputs if o]
    onnx.save(_model([node], inits, [x], outs), str(tmp_path / "r.onnx"))
    done = import_onnx(tmp_path / "r.onnx", tmp_path / "r.yaml")
    ir = gs.build(gs.load(done.spec))
    assert kind.lower() in {ir.node(n).op for n in ir.op_nodes()}
    xs = np.random.default_rng(0).normal(size=(4, 5, features)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "r.onnx"), providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": xs})
    got = gs.compile(ir, "numpy").forward(load_params(done.params), {"x": xs}, training=False)
    for name, value in zip([o for o in outputs if o], want):
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_external_data_outside_the_model_folder_is_refused(tmp_path: Path) -> None:
    model = onnx.load(str(_mlp(1, tmp_path / "m.onnx")))
    w = model.graph.initializer[0]
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("raw_data")
    w.ClearField("float_data")
    entry = w.external_data.add()
    entry.key, entry.value = "location", "../secret.bin"
    onnx.save(model, str(tmp_path / "out.onnx"))
    with pytest.raises(OnnxImportError, match=r"names external data '\.\./secret\.bin' outside"):
        import_onnx(tmp_path / "out.onnx", tmp_path / "m.yaml")


def test_train_init_from_the_imported_parameters(tmp_path: Path, capsys: Any) -> None:
    """The imported spec, given a loss and data, trains from the model's weights."""
    done = import_onnx(_mlp(2, tmp_path / "mlp.onnx"), tmp_path / "mlp.yaml")
    data = _with_mse(yaml.safe_load(done.spec.read_text()), {"y": ["N", 2]})
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(16, 4)), target_y=rng.normal(size=(16, 2)))
    data["train"] = {"data": {"path": "d.npz", "val_split": 0.0}, "epochs": 1, "batch_size": 8}
    spec = tmp_path / "train.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    run = tmp_path / "run"
    argv = ["train", str(spec), "-b", "numpy", "--out", str(run), "--init-from"]
    assert main([*argv, str(done.params)]) == 0, capsys.readouterr().err
    assert "init_from" in (run / "summary.json").read_text()
    # Another model's parameters: every difference listed, at the file.
    other = import_onnx(_mlp(3, tmp_path / "deeper.onnx"), tmp_path / "deeper.yaml")
    assert main([*argv, str(other.params), "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert f"{other.params}: error: the parameters of this checkpoint do not fit" in err


def test_many_ops_match_onnxruntime(tmp_path: Path) -> None:
    """Conv (a stride that drops a row: drop_remainder), ConvTranspose, pooling, batch and
    layer norm, global pooling, flatten, softmax, concat, scale, reductions, transpose."""
    ort = pytest.importorskip("onnxruntime")
    make = helper.make_node
    inits = [
        _tensor("cw", (3, 2, 3, 3), 1),
        _tensor("cb", (3,), 2),
        _tensor("tw", (3, 2, 2, 2), 3),
        _tensor("bn_s", (2,), 4),
        _tensor("bn_b", (2,), 5),
        _tensor("bn_m", (2,), 6),
        onnx.numpy_helper.from_array(np.array([0.5, 2.0], dtype=np.float32), "bn_v"),
        _tensor("ln_s", (4,), 7),
        _tensor("ln_b", (4,), 8),
        onnx.numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
        onnx.numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
    ]
    nodes = [
        make("Conv", ["x", "cw", "cb"], ["c"], name="conv", strides=[2, 2]),
        make("LeakyRelu", ["c"], ["l"], alpha=0.2),
        make("ConvTranspose", ["l", "tw"], ["t"], strides=[2, 2]),
        make("AveragePool", ["t"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        make("BatchNormalization", ["p", "bn_s", "bn_b", "bn_m", "bn_v"], ["b"], epsilon=1e-3),
        make("GlobalAveragePool", ["b"], ["g"]),
        make("Flatten", ["g"], ["f"]),
        make("Softmax", ["f"], ["s"], axis=-1),
        make("Concat", ["f", "s"], ["cat"], axis=1),
        make("LayerNormalization", ["cat", "ln_s", "ln_b"], ["ln"], axis=-1),
        make("Mul", ["ln", "half"], ["h"]),
        make("Elu", ["h"], ["e"]),
        make("ReduceMean", ["e", "axes"], ["m"], keepdims=0),
        make("Transpose", ["e"], ["tr"], perm=[1, 0]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 8, 8])
    outs = [
        helper.make_tensor_value_info("m", TensorProto.FLOAT, ["N"]),
        helper.make_tensor_value_info("tr", TensorProto.FLOAT, [4, "N"]),
    ]
    onnx.save(_model(nodes, inits, [x], outs), str(tmp_path / "z.onnx"))
    done = import_onnx(tmp_path / "z.onnx", tmp_path / "z.yaml")
    data = yaml.safe_load(done.spec.read_text())
    conv = next(n for n in data["graph"] if n["op"] == "conv2d")
    assert conv["drop_remainder"] is True  # (8 - 3) / 2 floors: ONNX drops the last row
    ops = [n["op"] for n in data["graph"]]
    for op in (
        "conv_transpose2d",
        "avg_pool2d",
        "batch_norm",
        "global_avg_pool",
        "softmax",
        "concat",
        "layer_norm",
        "scale",
        "elu",
        "mean",
        "transpose",
    ):
        assert op in ops, op
    # Global pooling's unit axes (kept by ONNX) and the Flatten that drops them cancel.
    assert "reshape" not in ops and "flatten" not in ops
    xs = np.random.default_rng(0).normal(size=(3, 2, 8, 8)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "z.onnx"), providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": xs})
    ir = gs.build(gs.load(done.spec))
    got = gs.compile(ir, "numpy").forward(load_params(done.params), {"x": xs}, training=False)
    for name, value in zip(["m", "tr"], want):
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
