"""The ``graphspec`` command line, in process (``main(argv)``) and as a real process."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from paths import GALLERY, ROOT, XOR

import graphspec as gs
from graphspec.cli import common, main
from graphspec.errors import GraphspecError
from graphspec.ir.counts import flop_count
from graphspec.ir.serialize import graph_from_json

RESIDUAL = ROOT / "specs" / "residual_mlp.yaml"


def write_spec(tmp_path: Path, body: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


DEAD_NODE_SPEC = """\
graphspec: 1
name: dead
inputs:
  x: [batch, 2]
graph:
  - {id: h, op: linear, in: x, units: 3}
  - {id: unused, op: tanh, in: x}
outputs: [h]
"""


# ---- validate ------------------------------------------------------------------------------


def test_validate_gallery(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", *map(str, GALLERY)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for spec in GALLERY:  # "FILE: ok (...)", or "FILE [variant NAME]: ok (...)" per variant
        assert any(line.startswith(str(spec)) and ": ok (" in line for line in lines), out


def test_validate_prints_located_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_spec(tmp_path, DEAD_NODE_SPEC)
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert f"{path}:7:5: warning: node 'unused' (tanh) is never used" in captured.err
    assert "1 warning)" in captured.out
    assert main(["validate", "-W", str(path)]) == 1


def test_validate_train_requirements(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_spec(tmp_path, DEAD_NODE_SPEC)
    assert main(["validate", "--train", str(path)]) == 1
    assert "training needs a loss" in capsys.readouterr().err
    assert main(["validate", "--train", str(XOR)]) == 0


def test_max_params_under_budget_passes() -> None:
    assert main(["validate", "--max-params", "33", str(XOR)]) == 0
    assert main(["validate", "--max-params", "32", str(XOR)]) == 1


# ---- inspect --------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", GALLERY, ids=[s.stem for s in GALLERY])
def test_inspect_text(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(spec)]) == 0
    out = capsys.readouterr().out
    ir = gs.build(gs.load(spec))
    header = out.splitlines()[1].split()
    assert header == ["id", "op", "inputs", "shape", "params", "FLOPs"]
    assert f"parameters: {ir.param_count():,} trainable" in out
    assert f"FLOPs per example: {flop_count(ir):,}" in out
    for nid in ir.op_nodes():
        assert nid in out


@pytest.mark.parametrize("spec", GALLERY, ids=[s.stem for s in GALLERY])
def test_inspect_json_round_trips(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(spec), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ir = gs.build(gs.load(spec))
    g = graph_from_json(data)
    assert dict(g.nodes(data=True)) == dict(ir.graph.nodes(data=True))
    assert sorted(g.edges(keys=True, data=True), key=repr) == sorted(
        ir.graph.edges(keys=True, data=True), key=repr
    )
    assert data["graph"]["param_count"] == ir.param_count()


@pytest.mark.parametrize("spec", GALLERY, ids=[s.stem for s in GALLERY])
def test_inspect_dot(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(spec), "-f", "dot"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("digraph ")
    assert out.rstrip().endswith("}")


def test_inspect_dot_draws_block_instances_as_clusters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(RESIDUAL), "-f", "dot"]) == 0
    out = capsys.readouterr().out
    for r in range(4):
        assert f'subgraph "cluster_body.{r}"' in out
        assert f'label="body.{r} (residual)"' in out


def test_inspect_writes_output_file(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "xor.txt"
    assert main(["inspect", str(XOR), "-o", str(out)]) == 0
    assert "parameters: 33 trainable" in out.read_text()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("svg", b"<svg")])
def test_inspect_renders_with_graphviz(tmp_path: Path, fmt: str, magic: bytes) -> None:
    out = tmp_path / f"graph.{fmt}"
    assert main(["inspect", str(RESIDUAL), "-f", fmt, "-o", str(out)]) == 0
    data = out.read_bytes()
    assert magic in data[:400]


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_inspect_without_graphviz_says_how_to_get_it(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without 'dot'
    out = tmp_path / f"graph.{fmt}"
    assert main(["inspect", str(XOR), "-f", fmt, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"error: rendering {fmt} needs Graphviz's 'dot' program" in err
    assert "apt-get install graphviz" in err
    assert not out.exists()


# ---- schema and ops ---------------------------------------------------------------------------


def test_schema_command_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "linear" in schema["$defs"]["GraphNode"]["else"]["properties"]["op"]["enum"]


def test_ops_list_and_one_op(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ops"]) == 0
    listing = capsys.readouterr().out
    for name in ("linear", "tanh", "bce_with_logits", "binary_accuracy"):
        assert f"  {name} " in listing
    assert main(["ops", "linear"]) == 0
    doc = capsys.readouterr().out
    assert "x (differentiable)" in doc
    assert "units: int > 0 (required)" in doc
    assert "weight: glorot_uniform" in doc
    assert main(["ops", "linear", "--markdown"]) == 0
    assert capsys.readouterr().out.startswith("### linear")


def test_ops_markdown_is_the_ops_reference(capsys: pytest.CaptureFixture[str]) -> None:
    from graphspec.ops.docs import ops_markdown

    assert main(["ops", "--markdown"]) == 0
    assert capsys.readouterr().out == ops_markdown()


# ---- compile ----------------------------------------------------------------------------------


def _import_file(path: Path, name: str) -> object:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compile_numpy_writes_module_and_initial_params(tmp_path: Path) -> None:
    out = tmp_path / "model.py"
    assert main(["compile", str(XOR), "--backend", "numpy", "-o", str(out)]) == 0
    ir = gs.build(gs.load(XOR))
    params = gs.init_params(ir)
    with np.load(tmp_path / "model.npz", allow_pickle=False) as f:
        assert sorted(f.files) == sorted(f"param/{k}" for k in params)
    module = _import_file(out, "compiled_xor")
    loaded = module.load_initial_params(str(tmp_path / "model.npz"))  # type: ignore[attr-defined]
    for k, v in params.items():
        np.testing.assert_array_equal(loaded[k], v)
    x = np.random.default_rng(0).normal(size=(5, 2))
    prog = gs.compile(ir, "numpy")
    want = prog.forward(params, {"x": x})
    got = module.forward(loaded, {"x": x}, False, None, None)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(got["logit"], want["logit"])


def test_compile_torch_writes_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "model_torch.py"
    assert main(["compile", str(XOR), "--backend", "torch", "-o", str(out)]) == 0
    assert "import torch" in out.read_text()
    err = capsys.readouterr().err
    assert f"wrote {out}" in err


def test_compile_unknown_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(XOR), "--backend", "nunpy", "-o", str(tmp_path / "m.py")]) == 1
    err = capsys.readouterr().err
    assert "unknown backend 'nunpy'" in err
    assert "did you mean 'numpy'?" in err


def test_compile_cannot_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(XOR), "-o", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err


# ---- train, verify, report, export --------------------------------------------------------------


def test_train_then_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", str(XOR), "--epochs", "2", "--out", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"run saved in {run_dir}" in out
    assert "after 2 epochs" in out
    assert (run_dir / "summary.json").exists()
    report_dir = tmp_path / "report"
    assert main(["report", str(run_dir), "-o", str(report_dir)]) == 0
    assert any(report_dir.iterdir())


def test_train_refuses_a_spec_without_loss_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_spec(tmp_path, DEAD_NODE_SPEC)
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 1
    assert "training needs a loss" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_report_of_a_missing_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 1
    assert "is not a run directory" in capsys.readouterr().err


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``graphspec ARGV`` in process: (status, stdout, stderr); never an internal error."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc != 70 and "Traceback" not in err and "internal error" not in err, err
    return rc, out, err


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("xor") / "run"
    assert main(["train", str(XOR), "--epochs", "3", "--out", str(run)]) == 0
    return run


def test_train_refuses_to_replace_a_run(
    xor_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(xor_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    rc, _, err = _cli(["train", XOR, "--epochs", "4", "--out", run], capsys)
    assert rc == 1
    assert err.splitlines() == [
        f"{run}: error: {run} already holds a run (completed after 3 epochs); not replacing it",
        "hint: continue it with --resume, start over with --overwrite, or choose another --out",
    ]
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing changed
    rc, out, _ = _cli(["train", XOR, "--epochs", "4", "--out", run, "--overwrite"], capsys)
    assert rc == 0 and "after 4 epochs" in out
    rc, _, err = _cli(["train", XOR, "--out", run, "--resume", "--overwrite"], capsys)
    assert rc == 2 and "--resume continues a run; it cannot be combined with --overwrite" in err
    rc, out, _ = _cli(
        ["train", XOR, "--epochs", "1", "--out", run, "--overwrite", "--init-from", xor_run],
        capsys,
    )
    assert rc == 0 and "after 1 epoch" in out


def test_train_resumes_a_finished_run_only_with_more_epochs(
    xor_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(xor_run, run)
    rc, out, err = _cli(["train", XOR, "--epochs", "3", "--out", run, "--resume"], capsys)
    assert rc == 0 and "completed after 3 epochs" in out
    assert (
        "note: the run had already trained 3 epochs: nothing to train (pass a larger "
        "--epochs to train further)" in err
    )
    rc, out, err = _cli(["train", XOR, "--epochs", "5", "--out", run, "--resume"], capsys)
    assert rc == 0 and "completed after 5 epochs" in out and "nothing to train" not in err
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 5


VARIANTS = """\
graphspec: 1
name: two
inputs: {x: [batch, 2], y: [batch, 1]}
graph:
  - {id: logit, op: linear, in: x, units: 1}
loss:
  - {op: bce_with_logits, in: [logit, y]}
train:
  data: {source: blobs, samples: 32}
  epochs: 1
variants:
  sgd: {}
  adam: {train: {optimizer: {name: adam}}}
"""


def test_train_refuses_variants_before_training_any(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, out = write_spec(tmp_path, VARIANTS), tmp_path / "runs"
    assert _cli(["train", spec, "--out", out], capsys)[0] == 0
    shutil.rmtree(out / "sgd")  # 'sgd' is free again, 'adam' still holds a run
    rc, out_text, err = _cli(["train", spec, "--out", out], capsys)
    assert rc == 1 and "variant sgd:" not in out_text
    assert err.startswith(f"{out / 'adam'}: error: {out / 'adam'} already holds a run")
    assert not (out / "sgd").exists()


def test_train_without_out_numbers_the_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for n in (1, 2):
        rc, out, _ = _cli(["train", XOR, "--epochs", "1"], capsys)
        assert rc == 0 and f"run saved in {Path('runs/xor-mlp') / str(n)}" in out
    rc, out, _ = _cli(["train", XOR, "--epochs", "2", "--resume"], capsys)
    assert rc == 0 and f"run saved in {Path('runs/xor-mlp/2')}" in out


def test_train_init_from_a_run_of_another_spec(
    xor_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = _cli(["train", RESIDUAL, "--out", tmp_path / "r", "--init-from", xor_run], capsys)
    assert rc == 1
    ckpt = xor_run / "checkpoint.npz"
    lines = err.splitlines()
    assert lines[0] == (
        f"{ckpt}: error: the parameters of this checkpoint do not fit spec "
        "'residual-mlp': 18 missing, 2 extra, 1 of another shape"
    )
    assert "note: missing: 'stem.weight' (the spec's shape [2, 32])" in lines
    assert "note: missing: ... and 6 more" in lines
    assert "note: extra: 'hidden.weight' (shape [2, 8]), which the spec does not have" in lines
    assert (
        "note: shape: 'logit.weight': the spec's shape is [32, 1], the checkpoint's [8, 1]" in lines
    )
    assert not (tmp_path / "r").exists()
    rc, out, _ = _cli(
        ["train", XOR, "--epochs", "1", "--out", tmp_path / "x", "--init-from", xor_run], capsys
    )
    assert rc == 0


def test_export_with_a_checkpoint_of_another_spec(
    xor_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = _cli(
        [
            "export",
            RESIDUAL,
            "--onnx",
            tmp_path / "m.onnx",
            "--checkpoint",
            xor_run / "checkpoint.npz",
        ],
        capsys,
    )
    assert rc == 1
    assert err.startswith(
        f"{xor_run / 'checkpoint.npz'}: error: the parameters of this "
        "checkpoint do not fit spec 'residual-mlp': 18 missing, 2 extra, "
        "1 of another shape\n"
    )
    assert (
        "note: shape: 'logit.weight': the spec's shape is [32, 1], the checkpoint's [8, 1]" in err
    )
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        ("null", "{s} is not a run summary: it holds null, not an object"),
        ("[]", "{s} is not a run summary: it holds list, not an object"),
        (
            '{"status": "completed", "epochs": "3"}',
            "{s} is not a run summary: 'epochs' is missing or not an integer",
        ),
        (
            '{"status": "completed", "epochs": 3, "final": {"val_loss": NaN}}',
            "{s} is not valid JSON: 'NaN' is not JSON",
        ),
        ('{"status": ', "{s} is not valid JSON: Expecting value"),
    ],
)
def test_report_on_a_damaged_summary(
    xor_run: Path,
    tmp_path: Path,
    damage: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    shutil.copytree(xor_run, run)
    summary = run / "summary.json"
    summary.write_text(damage)
    rc, _, err = _cli(["report", run, "-o", tmp_path / "out"], capsys)
    assert rc == 1
    headline = err.splitlines()[0]
    assert headline.startswith(f"{summary}") and message.format(s=summary) in headline, err


def test_report_on_a_damaged_analysis_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(
        tmp_path,
        XOR.read_text().replace("train:", "analysis:\n  - {procedure: grad_norms}\ntrain:", 1),
    )
    run = tmp_path / "run"
    assert _cli(["train", spec, "--epochs", "1", "--out", run], capsys)[0] == 0
    (result,) = json.loads((run / "analysis.json").read_text())["entries"][0]["files"]
    (run / result).write_text('{"norms": 3}')
    rc, _, err = _cli(["report", run], capsys)
    assert rc == 1
    assert err.startswith(
        f"{run / result}: error: cannot draw 'grad_norms': {run / result} does not hold a "
        "grad_norms result (TypeError: "
    ), err
    # An index pointing outside the run directory is ignored, not followed.
    index = {"entries": [{"name": "../x", "procedure": "grad_norms", "files": ["/etc/hostname"]}]}
    (run / "analysis.json").write_text(json.dumps(index))
    assert _cli(["report", run], capsys)[0] == 0
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "line, message",
    [
        (
            '{"epoch": 4, "train_loss": "low"}',
            "is not one epoch's record: 'train_loss' is not a number",
        ),
        ('{"epoch": null}', "has no integer 'epoch'"),
        ('{"epoch": 4, "train_loss": Infinity}', "is not a JSON object (one epoch's record)"),
    ],
)
def test_report_on_a_damaged_metrics_line(
    xor_run: Path,
    tmp_path: Path,
    line: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    shutil.copytree(xor_run, run)
    log = run / "metrics.jsonl"
    log.write_text(log.read_text() + line + "\n")
    rc, _, err = _cli(["report", run, "-o", tmp_path / "out"], capsys)
    assert rc == 1
    assert err.splitlines()[0] == f"{log}:4: error: line 4 of {log} {message}", err


def test_verify_numpy_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(XOR), "--backends", "numpy", "--steps", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True


def test_export_onnx(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    out = tmp_path / "xor.onnx"
    assert main(["export", str(XOR), "--onnx", str(out)]) == 0
    assert out.stat().st_size > 0


def test_export_on_a_backend_that_declares_no_onnx_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "xor.onnx"
    assert main(["export", str(XOR), "--onnx", str(out), "--backend", "numpy"]) == 2
    err = capsys.readouterr().err
    assert "the numpy backend cannot export to ONNX; export runs on --backend torch" in err
    assert "Traceback" not in err and not out.exists()


def test_missing_feature_module_is_a_clear_error() -> None:
    with pytest.raises(GraphspecError, match="frobnication is not available: module"):
        common.import_feature("graphspec.no_such_module", "frobnication")


def test_broken_feature_module_is_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module that exists but fails importing something else must surface as the bug it is.
    (tmp_path / "gs_broken_feature.py").write_text("import gs_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError):
        common.import_feature("gs_broken_feature", "broken")


# ---- exit statuses, colors, entry points --------------------------------------------------------


def test_internal_error_exit_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from graphspec.cli import validate

    def boom(args: object) -> int:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(validate, "run", boom)
    assert main(["validate", str(XOR)]) == 70
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: kaboom" in err
    assert "please report it" in err.lower()
    assert "Traceback" not in err
    with pytest.raises(RuntimeError):
        main(["--debug", "validate", str(XOR)])


def test_keyboard_interrupt_exit_130(monkeypatch: pytest.MonkeyPatch) -> None:
    from graphspec.cli import validate

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(validate, "run", interrupted)
    assert main(["validate", str(XOR)]) == 130


def test_color_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    text = "f.yaml:1:2: error: bad\nhint: do this"
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert common.colorize(text, io.StringIO()) == text
    colored = common.colorize(text, Tty())
    assert "\033[1;31merror:\033[0m" in colored and "\033[1;32mhint:\033[0m" in colored
    monkeypatch.setenv("NO_COLOR", "1")
    assert common.colorize(text, Tty()) == text


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert gs.__version__ in capsys.readouterr().out
    assert main(["--help"]) == 0
    assert "validate" in capsys.readouterr().out


def test_console_script_and_module_entry_points() -> None:
    script = Path(sys.executable).parent / "graphspec"
    env = {**os.environ, "NO_COLOR": "1"}
    for argv in ([str(script)], [sys.executable, "-m", "graphspec"]):
        if argv[0] == str(script) and not script.exists():
            continue
        done = subprocess.run(
            [*argv, "validate", str(XOR)], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert "ok" in done.stdout
