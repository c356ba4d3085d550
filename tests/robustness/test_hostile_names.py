"""Nothing a user writes runs as code: file names, docs and ids in generated modules.

A spec file named ``x\"\"\";open('PWNED', 'w');\"\"\"x.yaml`` once ended the generated module's
docstring and ``graphspec train`` ran the rest; a newline in the name ran code inside
``forward()`` (through the ``# (file:line:col)`` comments), and a doc holding NUL or a lone
surrogate made the torch module fail to compile (exit 70).  Every string now reaches generated
source through :mod:`graphspec.codegen.text`; these tests generate modules from hostile names on
both backends, through ``graphspec compile`` and ``train`` and in process, and check that no
payload ran, that the module's code is that of a plainly named spec, and that it computes.
"""

from __future__ import annotations

import ast
import importlib.util
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from paths import ROOT

import graphspec as gs
from graphspec.cli import main
from graphspec.codegen.emit import one_line
from graphspec.codegen.text import comment, docstring, literal
from graphspec.errors import GraphspecError

XOR_TEXT = """\
graphspec: 1
name: xor-mlp
doc: {doc}
inputs:
  x: {{shape: [batch, 2], doc: {doc}}}
  y: [batch, 1]
graph:
  - {{id: hidden, op: linear, in: x, units: 8}}
  - {{id: act, op: tanh, doc: {doc}}}
  - {{id: logit, op: linear, units: 1}}
outputs: [logit]
loss:
  - {{op: bce_with_logits, in: [logit, y]}}
  - {{op: l2_penalty, weight: 1.0e-4}}
train:
  data: {{source: xor, samples: 64, val_split: 0.25}}
  optimizer: {{name: sgd, lr: 0.5, momentum: 0.9}}
  epochs: 300
  metrics: [binary_accuracy]
"""
BACKENDS = ["numpy", "torch"]
X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])

# Text that would end a string literal, a docstring or a comment if pasted as it is.  Each
# payload creates a file PWNED* in the current directory (the tests run in tmp_path).
HOSTILE_TEXT = [
    'x""";open("PWNED1", "w");"""x',
    "x''';open('PWNED2', 'w');'''x",
    "a\nopen('PWNED3', 'w')\n",
    "a\ropen('PWNED4', 'w')\r",
    "a\r\nopen('PWNED5', 'w')#",
    "line\u2028sep\u2029para\x85next\x0cff\x0bvt\x1cfs",
    "nul\x00byte",
    "lone \ud800 and \udfff surrogates, \udcff",
    "back\\slash \\n \\x00 \\u2028 \\",
    "quote ' and \" and \\' and \\\"",
    "tab\there, bell\x07, del\x7f, emoji \U0001f600, accents \u00e9\u00e8",
    "",
]

# Names a file can have on Linux (no NUL, no '/'): undecodable bytes reach Python as lone
# surrogates U+DC80..U+DCFF (surrogateescape).
HOSTILE_FILE_NAMES = [
    'x""";open("PWNED1", "w");"""x.yaml',
    "x''';open('PWNED2', 'w');'''x.yaml",
    "a\nopen('PWNED3', 'w')\n.yaml",
    "a\ropen('PWNED4', 'w')\r.yaml",
    "a\u2028open('PWNED5', 'w')\x85.yaml",
    "bytes \udcff\udc80 back\\slash \\n.yaml",
]


def _printable_ascii(text: str) -> bool:
    return all(" " <= ch <= "~" or ch == "\n" for ch in text)


# ---- the escaping functions ------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_a_string_literal_evaluates_to_the_string_and_is_printable_ascii(text: str) -> None:
    src = literal(text)
    assert _printable_ascii(src) and "\n" not in src
    assert ast.literal_eval(src) == text
    nested = {text: [text, (text,)], "k": {"x": text}}
    assert ast.literal_eval(literal(nested)) == nested


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_a_comment_stays_one_line_and_cannot_end(text: str) -> None:
    safe = comment(text)
    assert _printable_ascii(safe) and "\n" not in safe
    module = ast.parse(f"x = 1  # {safe}\ny = 2  # {safe}\n")
    assert [type(n) for n in module.body] == [ast.Assign, ast.Assign]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_a_docstring_holds_exactly_the_text(text: str) -> None:
    src = docstring(text, indent="    ")
    assert _printable_ascii(src)
    assert ast.literal_eval(src) == text.replace("\n", "\n    ")
    module = ast.parse(f"{docstring(text)}\nx = 1\n")
    assert ast.get_docstring(module, clean=False) == text
    assert [type(n) for n in module.body] == [ast.Expr, ast.Assign]


def test_non_finite_floats_are_valid_code() -> None:
    # repr() would write a bare `inf` or `nan`: a NameError in the generated module.
    values = [float("inf"), float("-inf"), 1.5, -0.0, 1e-300, np.float64(2.5), np.float32(0.5)]
    env: dict = {"__builtins__": {"float": float}}
    back = eval(literal(values), env)  # noqa: S307 - the point: what the module executes
    assert back == [float("inf"), float("-inf"), 1.5, -0.0, 1e-300, 2.5, 0.5]
    assert np.isnan(eval(literal(float("nan")), env))  # noqa: S307
    assert literal((float("inf"),)) == "(float('inf'),)"
    with pytest.raises(TypeError, match="no Python literal"):
        literal(object())


# ---- hostile spec file names, through the command line ---------------------------------------


def _import_file(path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"generated_{abs(hash(path))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code_without_docstrings(source: str) -> str:
    """The module's syntax tree with every docstring emptied: comments are not in it, so two
    modules with equal trees differ at most in comments and docstrings."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                first.value.value = ""
    return ast.dump(tree)


def _no_payload_ran(where: Path) -> None:
    assert not [p.name for p in where.iterdir() if p.name.startswith("PWNED")]


def _written_module_outputs(backend: str, module_path: Path) -> np.ndarray:
    mod = _import_file(module_path)
    if backend == "numpy":
        params = mod.load_initial_params(module_path.with_suffix(".npz"))
        return np.asarray(mod.forward(params, {"x": X})["logit"])
    model = mod.Model(dtype=torch.float64)
    model.load_params(str(module_path.with_suffix(".pt")))
    with torch.no_grad():
        return model({"x": torch.tensor(X)})["logit"].numpy()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", HOSTILE_FILE_NAMES)
def test_compile_a_spec_with_a_hostile_file_name(
    name: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text(XOR_TEXT.format(doc="plain"), encoding="utf-8")
    (tmp_path / "plain.yaml").write_text(XOR_TEXT.format(doc="plain"), encoding="utf-8")
    assert main(["validate", name]) == 0
    assert main(["compile", name, "--backend", backend, "-o", "hostile.py"]) == 0
    assert main(["compile", "plain.yaml", "--backend", backend, "-o", "plain.py"]) == 0
    _no_payload_ran(tmp_path)
    hostile = (tmp_path / "hostile.py").read_text(encoding="utf-8")
    plain = (tmp_path / "plain.py").read_text(encoding="utf-8")
    # The comments still name the file (escaped, as given), in printable ASCII, and nothing
    # else changed. The module docstring names it escaped once: its value is the name itself,
    # but for line breaks, written as escapes so that the first line stays one line.
    assert comment(name) in hostile
    header = ast.get_docstring(ast.parse(hostile), clean=False) or ""
    first = header.splitlines()[0]
    assert first == f"xor-mlp: generated by graphspec from {one_line(name)}."
    breaks = [ch for ch in name if len(f"a{ch}b".splitlines()) > 1]
    assert all(comment(ch) in first for ch in breaks)
    if not breaks:
        assert name in first  # not escaped twice: a backslash stays one backslash
    changed = set(hostile.splitlines()) - set(plain.splitlines())
    assert changed and all(_printable_ascii(line) for line in changed)
    assert _code_without_docstrings(hostile) == _code_without_docstrings(plain)
    got = _written_module_outputs(backend, tmp_path / "hostile.py")
    _no_payload_ran(tmp_path)
    np.testing.assert_array_equal(got, _written_module_outputs(backend, tmp_path / "plain.py"))
    # In process, the Program executes the same text.
    ir = gs.build(gs.load(name))
    prog = gs.compile(ir, backend=backend, dtype="float64")
    assert prog.source() == hostile
    out = prog.forward(gs.init_params(ir), {"x": X})["logit"]
    np.testing.assert_allclose(out, got, rtol=1e-12, atol=1e-12)
    _no_payload_ran(tmp_path)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", [HOSTILE_FILE_NAMES[0], HOSTILE_FILE_NAMES[2]])
def test_train_a_spec_with_a_hostile_file_name(
    name: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`graphspec train` executes the generated module: the payloads it once ran."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text(XOR_TEXT.format(doc="plain"), encoding="utf-8")
    argv = ["train", name, "--backend", backend, "--epochs", "2", "--out", "run"]
    assert main(argv) == 0
    _no_payload_ran(tmp_path)
    assert (tmp_path / "run" / "summary.json").is_file()


# ---- hostile docs and ids ---------------------------------------------------------------------


def _yaml_quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar (JSON's escapes are YAML's too)."""
    import json

    return json.dumps(text, ensure_ascii=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("doc", HOSTILE_TEXT[:-1], ids=range(len(HOSTILE_TEXT) - 1))
def test_hostile_docs_reach_the_module_intact(
    doc: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A doc with NUL or a lone surrogate once ended torch compilation with exit 70; the
    torch module's docstring carries the spec's doc, exactly."""
    monkeypatch.chdir(tmp_path)
    text = XOR_TEXT.format(doc=_yaml_quoted(doc))
    path = tmp_path / "doc.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["compile", str(path), "--backend", backend, "-o", "m.py"]) == 0
    _no_payload_ran(tmp_path)
    mod = _import_file(tmp_path / "m.py")
    _no_payload_ran(tmp_path)
    spec = gs.load(path)
    if backend == "torch":  # the doc as YAML read it (JSON's escapes split an emoji in two)
        assert f"\n\n{spec.doc.strip()}\n\n" in (mod.__doc__ or "")
    ir = gs.build(spec)
    out = gs.compile(ir, backend=backend, dtype="float64").forward(gs.init_params(ir), {"x": X})
    assert out["logit"].shape == (4, 1) and np.isfinite(out["logit"]).all()


# YAML double-quoted contents: \" is a quote, \n a newline, \u2028 a line separator.
@pytest.mark.parametrize("bad_id", [r"a\"b", r"a\nb", "a b", r"a\u2028b", r"\u00e9t\u00e9", "1a"])
def test_ids_that_are_not_identifiers_are_refused_where_written(
    bad_id: str, tmp_path: Path
) -> None:
    text = XOR_TEXT.format(doc="plain").replace("id: act,", f'id: "{bad_id}",')
    assert bad_id in text
    path = tmp_path / "ids.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(GraphspecError) as e:
        gs.load(path)
    loc = e.value.location
    assert loc is not None and loc.file == str(path) and loc.line is not None
    assert text.splitlines()[loc.line - 1].count(bad_id) == 1
    assert main(["validate", str(path)]) == 1


def test_generated_variable_names_are_ascii() -> None:
    """Python folds non-ASCII identifiers (NFKC: '\ufb01' is 'fi'), so two ids could name one
    variable; variable names are made of ASCII letters, digits and '_' only, and distinct."""
    from graphspec.ir.plan import Plan

    ids = ["\ufb01", "fi", "\u00e9", "e", "1x", "class", "a.b", "a_b"]
    plan = Plan(types.SimpleNamespace(graph=None, order=ids))  # type: ignore[arg-type]
    names = [plan.var(i) for i in ids]
    assert all(n.isascii() and n.isidentifier() for n in names)
    assert len(set(names)) == len(ids)
    ir = gs.build(gs.load(ROOT / "specs" / "residual_mlp.yaml"))
    for backend in BACKENDS:
        source = gs.compile(ir, backend=backend, dtype="float64").source()
        used = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
        assert all(n.isascii() for n in used)


def test_module_name_with_odd_characters_loads(tmp_path: Path) -> None:
    """Spec names reach the module's name and its traceback file name; those accept
    any string (the spec's name pattern admits '.' and '-')."""
    from graphspec.codegen.text import load_module

    module = load_module("X = 1\n", "a\nb\x00c\ud800")
    assert module.X == 1
    assert module.__file__ is not None and module.__file__.isascii()
    assert "\n" not in module.__file__ and "\x00" not in module.__file__


def test_torch_kernel_constants_are_written_as_literals(tmp_path: Path) -> None:
    """A kernel's non-finite module constant is copied as float('inf'), not a bare inf."""
    from graphspec.codegen.kernels import collect
    from graphspec_torch.codegen import RULES

    (tmp_path / "inf_kernel.py").write_text(
        "import torch\n\n_LIMIT = float('inf')\n\n\n"
        "def clamp_above(x):\n    return torch.clamp(x, max=-_LIMIT)\n"
    )
    spec = importlib.util.spec_from_file_location("inf_kernel", tmp_path / "inf_kernel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lib = collect([module.clamp_above], RULES)
    assert "_LIMIT = float('inf')" in lib.source
    env: dict = {"torch": torch}
    exec(compile(lib.source, "<lib>", "exec"), env)  # noqa: S102 - what a module runs
    assert env["clamp_above"](torch.tensor([1.0])).item() == float("-inf")
