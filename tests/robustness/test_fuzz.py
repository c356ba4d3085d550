"""Fuzzing the front end: random YAML and mutated gallery specs through load, validate, build.

The invariant for every input: it is accepted, or it is refused with a :class:`GraphspecError`
located in the file (``file:line:col`` with the line inside the text), or in a block library
it includes (at a line of that file, included from the file) -- never another
exception, never a hang.  Each example runs under a wall-clock alarm, so a hang fails the
test instead of stalling the suite.  The example counts keep this file well under a minute.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paths import ROOT

from graphspec.analysis.checks import check_variant
from graphspec.cli import main
from graphspec.errors import GraphspecError
from graphspec.ops import REGISTRY
from graphspec.spec.load import loads
from graphspec.spec.variants import expand_variants
from graphspec.train.expect import ClaimError, evaluate, parse

GALLERY = sorted((ROOT / "specs").glob("*.yaml"))
TEXTS = {p.name: p.read_text(encoding="utf-8") for p in GALLERY}
NAME = "fuzz.yaml"
BASE = ROOT / "specs" / NAME  # where it stands: the gallery's include: paths resolve from here
PER_CASE_S = 5.0  # a valid gallery spec takes ~0.1 s; generous for loaded CI machines
HANG_S = 20  # the alarm: past this an example is a hang

# GRAPHSPEC_FUZZ_EXAMPLES=5000 pytest tests/robustness/test_fuzz.py: a deeper run, by hand.
EXAMPLES = int(os.environ.get("GRAPHSPEC_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # timed by hand below: first calls pay for imports
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)

# ---- the invariant ---------------------------------------------------------------------


class Hang(Exception):
    pass


@contextlib.contextmanager
def alarm(seconds: int) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread after ``seconds`` (no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ring(signum: int, frame: Any) -> None:
        raise Hang(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def front_end(text: str, file: str = NAME) -> None:
    """What ``graphspec validate`` does to a file's text: load, validate, expand every
    variant, build and check it (shapes, references, analysis entries)."""
    spec = loads(text, file, base=BASE)
    for variant in expand_variants(spec).values():
        check_variant(variant, max_params=10**12, training=variant.train is not None)


def assert_accepted_or_located(text: str) -> None:
    start = time.perf_counter()
    try:
        with alarm(HANG_S):
            front_end(text)
    except GraphspecError as e:
        loc = e.location
        assert loc is not None, f"unlocated error: {e.message}"
        # In the file, or in a block library it includes (from the file, at a line of it).
        chain = loc.include_chain()
        top = chain[-1] if chain else loc
        assert top.file == NAME, f"error located in {top.file!r}: {e.message}"
        assert loc.line is not None, f"error without a line: {e.message}"
        source = Path(loc.file).read_text(encoding="utf-8") if chain else text
        lines = re.split(r"\r\n|\r|\n", source)  # as editors count them
        assert 1 <= loc.line <= len(lines), f"line {loc.line} is outside the file: {e}"
        assert loc.col is None or 1 <= loc.col <= len(lines[loc.line - 1]) + 1, str(e)
        e.render(source=text)  # the diagnostic itself renders
    elapsed = time.perf_counter() - start
    assert elapsed < PER_CASE_S, f"took {elapsed:.1f} s"


# ---- random YAML trees -----------------------------------------------------------------

VOCABULARY = [
    "graphspec", "name", "doc", "seed", "inputs", "blocks", "graph", "outputs", "loss",
    "train", "analysis", "expect", "variants", "id", "op", "block", "in", "init", "params",
    "include", "blocks/layers.yaml",
    "repeat", "weight", "shape", "dtype", "differentiable", "units", "axis", "bias", "value",
    "p", "data", "source", "path", "columns", "samples", "val_split", "optimizer", "lr",
    "momentum", "schedule", "epochs", "batch_size", "early_stopping", "monitor", "metrics",
    "procedure", "at", "adversarial", "input", "epsilon", "x", "y", "h", "batch", "$in",
    "$units", "xor", "sgd", "adam", "glorot_uniform", "zeros",
    # keys that look like the union tags in pydantic's error paths
    "str", "int", "InputSpec", "NodeSpec", "list[str]", "in-put", "x[1]", "function-after",
]
OPS = sorted(REGISTRY)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, -1, 10**9, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(VOCABULARY + OPS),
    st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(VOCABULARY), st.text(max_size=8))
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(keys, children, max_size=6),
    ),
    max_leaves=40,
)
nodes = st.fixed_dictionaries(
    {"op": st.one_of(st.sampled_from(OPS), st.text(max_size=6))},
    optional={
        "id": st.sampled_from(["a", "b", "h", "x", "1bad"]),
        "in": st.one_of(
            st.sampled_from(["x", "y", "a", "$in", "nope"]),
            st.lists(st.sampled_from(["x", "y", "a", "b"]), max_size=3),
        ),
        "units": scalars,
        "axis": scalars,
        "shape": trees,
        "init": trees,
    },
)
spec_like = st.fixed_dictionaries(
    {
        "graphspec": st.sampled_from([1, 1, 1, 2, "1"]),
        "name": st.sampled_from(["t", "a b", ""]),
        "inputs": st.one_of(
            st.fixed_dictionaries(
                {"x": st.lists(st.one_of(st.sampled_from(["batch", "n"]), scalars), max_size=4)}
            ),
            trees,
        ),
        "graph": st.one_of(st.lists(nodes, min_size=1, max_size=4), trees),
    },
    optional={k: trees for k in ("blocks", "outputs", "loss", "train", "analysis", "variants")},
)


@FUZZ
@given(st.one_of(spec_like, trees), st.booleans())
def test_random_yaml_trees(tree: Any, flow: bool) -> None:
    text = yaml.safe_dump(tree, sort_keys=False, default_flow_style=flow, allow_unicode=True)
    assert_accepted_or_located(text)


# ---- mutations of the gallery ------------------------------------------------------------

BOGUS_OPS = ["lineer", "linear", "constant", "param", "", "sum", "concat", "softmax", "matmul"]
ODD_VALUES: list[Any] = [
    0, -1, 10**20, 1e308, float("nan"), "", "x", None, True, [], {}, [[]], "$in", "$nope", 0.5,
    "batch", [0, -1], {"op": "tanh"},
]
NUMBERS = ["0", "-1", "99999999999999999999", "1e999", "0.0", "-0.5", "2147483648"]
NOISE = st.text(alphabet=" \t\n\r:-[]{},&*!|>'\"#%@`?x1\x00\x07\x1b\x85\ufeff\u2028é",
                min_size=1, max_size=6)

text_mutation = st.tuples(
    st.sampled_from([
        "truncate", "duplicate_line", "delete_line", "insert_tab", "number", "swap_ids",
        "bogus_op", "noise", "indent", "rewire",
    ]),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
    NOISE,
)


def mutate_text(text: str, mutation: tuple[str, int, int, str]) -> str:
    kind, i, j, noise = mutation
    lines = text.splitlines(keepends=True) or [""]
    if kind == "truncate":
        return text[: i % (len(text) + 1)]
    if kind == "duplicate_line":
        k = i % len(lines)
        return "".join(lines[: k + 1] + lines[k:])
    if kind == "delete_line":
        k = i % len(lines)
        return "".join(lines[:k] + lines[k + 1 :])
    if kind == "insert_tab":
        at = i % (len(text) + 1)
        return text[:at] + "\t" + text[at:]
    if kind == "noise":
        at = i % (len(text) + 1)
        return text[:at] + noise + text[at:]
    if kind == "indent":
        k = i % len(lines)
        lines[k] = " " * (j % 5 + 1) + lines[k]
        return "".join(lines)
    if kind == "number":
        found = list(re.finditer(r"(?<![\w.])\d+(?:\.\d+)?(?:e-?\d+)?(?![\w.])", text))
        if not found:
            return text
        m = found[i % len(found)]
        return text[: m.start()] + NUMBERS[j % len(NUMBERS)] + text[m.end() :]
    if kind == "swap_ids":
        ids = list(re.finditer(r"\bid: (\w+)", text))
        if len(ids) < 2:
            return text
        a, b = ids[i % len(ids)], ids[j % len(ids)]
        if a.start() > b.start():
            a, b = b, a
        if a.start() == b.start():
            return text
        return (text[: a.start(1)] + b[1] + text[a.end(1) : b.start(1)] + a[1]
                + text[b.end(1) :])
    if kind == "rewire":  # point an 'in' at another node: a loss term, itself, a parameter
        ins = list(re.finditer(r"\bin: (\[[^\]\n]*\]|[\w.$]+)", text))
        ids = [m[1] for m in re.finditer(r"\bid: (\w+)", text)]
        if not ins or not ids:
            return text
        m = ins[i % len(ins)]
        target = ids[j % len(ids)] + ("" if j % 3 else ".weight")
        return text[: m.start(1)] + target + text[m.end(1) :]
    assert kind == "bogus_op"
    ops = list(re.finditer(r"\bop: (\w+)", text))
    if not ops:
        return text
    m = ops[i % len(ops)]
    bogus = (BOGUS_OPS + OPS)[j % (len(BOGUS_OPS) + len(OPS))]
    return text[: m.start(1)] + bogus + text[m.end(1) :]


@FUZZ
@given(st.sampled_from(sorted(TEXTS)), st.lists(text_mutation, min_size=1, max_size=3))
def test_text_mutations_of_the_gallery(name: str, mutations: list[Any]) -> None:
    text = TEXTS[name]
    for mutation in mutations:
        text = mutate_text(text, mutation)
    assert_accepted_or_located(text)


data_mutation = st.tuples(
    st.sampled_from(
        ["delete", "odd_value", "retype", "bogus_op", "swap_ids", "number", "rewire"]
    ),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
)


def _places(data: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _places(v, path + (k,))
    elif isinstance(data, list):
        for k, v in enumerate(data):
            out += _places(v, path + (k,))
    return out


def _get(data: Any, path: tuple) -> Any:
    for k in path:
        data = data[k]
    return data


def _retype(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return "yes"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return list(value.values()) if isinstance(value, dict) else 1


def mutate_data(data: Any, mutation: tuple[str, int, int]) -> Any:
    kind, i, j = mutation
    places = [p for p in _places(data) if p]
    if not places:
        return data
    path = places[i % len(places)]
    parent, key = _get(data, path[:-1]), path[-1]
    if kind == "delete":
        del parent[key]
    elif kind == "odd_value":
        parent[key] = copy.deepcopy(ODD_VALUES[j % len(ODD_VALUES)])  # never shared
    elif kind == "retype":
        parent[key] = _retype(parent[key])
    elif kind == "number":
        numeric = [p for p in places if isinstance(_get(data, p), int | float)]
        if numeric:
            p = numeric[i % len(numeric)]
            _get(data, p[:-1])[p[-1]] = [0, -1, 10**20, 2**63, 1e300][j % 5]
    elif kind == "bogus_op":
        with_op = [p for p in places if p[-1] == "op"]
        if with_op:
            p = with_op[i % len(with_op)]
            _get(data, p[:-1])["op"] = (BOGUS_OPS + OPS)[j % (len(BOGUS_OPS) + len(OPS))]
    elif kind == "rewire":  # one node reads another: a loss term, a later node, itself
        ids = [_get(data, p) for p in places if p[-1] == "id" and isinstance(_get(data, p), str)]
        with_in = [p for p in places if p[-1] == "in"]
        if ids and with_in:
            p = with_in[i % len(with_in)]
            target = ids[j % len(ids)]
            _get(data, p[:-1])["in"] = [target, target + ".weight"][j % 2]
    else:  # swap the ids of two nodes
        with_id = [p[:-1] for p in places if p[-1] == "id"]
        if len(with_id) >= 2:
            a, b = _get(data, with_id[i % len(with_id)]), _get(data, with_id[j % len(with_id)])
            a["id"], b["id"] = b["id"], a["id"]
    return data


@FUZZ
@given(
    st.sampled_from(sorted(TEXTS)),
    st.lists(data_mutation, min_size=1, max_size=4),
    st.booleans(),
)
def test_structural_mutations_of_the_gallery(name: str, mutations: list[Any], flow: bool) -> None:
    data = yaml.safe_load(TEXTS[name])
    for mutation in mutations:
        data = mutate_data(data, mutation)
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=flow, allow_unicode=True)
    assert_accepted_or_located(text)


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_every_prefix_of_a_gallery_spec_line_by_line(name: str) -> None:
    """Cut each gallery spec after every line: the commonest broken file is a half-written
    one (an editor's autosave, a truncated copy)."""
    lines = TEXTS[name].splitlines(keepends=True)
    for k in range(0, len(lines), max(1, len(lines) // 12)):
        assert_accepted_or_located("".join(lines[:k]) or "\n")


# ---- through the command line, in-process ------------------------------------------------


@settings(FUZZ, max_examples=max(EXAMPLES // 6, 1))
@given(st.sampled_from(sorted(TEXTS)), st.lists(text_mutation, min_size=1, max_size=2))
def test_mutants_through_the_cli(name: str, mutations: list[Any]) -> None:
    import tempfile

    text = TEXTS[name]
    for mutation in mutations:
        text = mutate_text(text, mutation)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text, encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), alarm(HANG_S):
            rc = main(["validate", str(path)])
    shown = out.getvalue() + err.getvalue()
    assert "Traceback" not in shown and "internal error" not in shown, shown
    assert rc in (0, 1), shown
    if rc == 1:
        headline = err.getvalue().splitlines()[0]
        assert re.match(rf"{re.escape(str(path))}:\d+:\d+: error: ", headline), headline
    else:
        assert f"{path}" in out.getvalue() and ": ok" in out.getvalue()


# ---- every op, on inputs of every rank -------------------------------------------------------

SHAPES: dict[int, list[Any]] = {
    0: [],
    1: ["batch"],
    2: ["batch", 3],
    3: ["batch", 4, 3],
    4: ["batch", 2, 4, 3],
}


def _op_cases() -> list[tuple[str, dict[str, Any], int]]:
    """(op, attributes from its first sample, number of inputs) for every registered op."""
    import numpy as np

    cases = []
    for name, opdef in sorted(REGISTRY.items()):
        sample = next(iter(opdef.attrs.samples(np.random.default_rng(0))), None)
        attrs = dict(sample.attrs) if sample is not None else {}
        n_in = sum(1 for i in opdef.inputs if not i.optional) or 1
        cases.append((name, attrs, n_in))
    return cases


@pytest.mark.parametrize("op, attrs, n_in", _op_cases(), ids=[c[0] for c in _op_cases()])
def test_every_op_on_inputs_of_every_rank(op: str, attrs: dict[str, Any], n_in: int) -> None:
    """Each op's shape rule and parameter sizes meet ranks 0 to 4, int inputs, and mixed
    ranks across its arguments: a located SpecError or a graph, never a crash.  Losses
    stand in ``loss:`` and metrics in ``train.metrics``, where they belong."""
    category = REGISTRY[op].category
    variants = [(rank, rank, "float") for rank in SHAPES] + [(2, 2, "int")]
    if n_in > 1:
        variants += [(rank, 0, "float") for rank in SHAPES if rank] + [(0, 3, "float")]
    for rank, other, dtype in variants:
        inputs = {f"i{k}": {"shape": SHAPES[rank if k == 0 else other], "dtype": dtype}
                  for k in range(n_in)}
        node = {"op": op, "in": list(inputs), **attrs}
        spec: dict[str, Any] = {"graphspec": 1, "name": "t", "inputs": inputs}
        if category == "loss":
            spec["graph"] = [{"id": "g", "op": "identity", "in": "i0"}]
            spec["loss"] = [node]
        elif category == "metric":
            spec["graph"] = [{"id": "g", "op": "identity", "in": "i0"}]
            spec["loss"] = [{"op": "l2_penalty", "in": ["i0"]}]
            spec["train"] = {"data": {"source": "xor"}, "metrics": [node]}
        else:
            spec["graph"] = [{"id": "n", **node}]
        assert_accepted_or_located(yaml.safe_dump(spec, sort_keys=False))


# ---- data files: mutated and forged archives, random CSV text -----------------------------

DATA_SPEC = """\
graphspec: 1
name: fuzz-data
inputs:
  x: [batch, 2]
  y: [batch, 1]
graph:
  - {{id: logit, op: linear, in: x, units: 1}}
loss:
  - {{op: bce_with_logits, in: [logit, y]}}
train:
  data: {{path: {file}}}
"""
DATA_LIMIT_BYTES = 64 * 2**20  # what the reader may allocate for files of a few KiB


def _load_data_file(name: str, content: bytes) -> None:
    """Training's data loading on one file: data, or a DataError located at train.data;
    never another exception, a hang, or an allocation the file's size does not justify."""
    import tempfile
    import tracemalloc

    from graphspec.errors import DataError
    from graphspec.ir.build import build
    from graphspec.spec.load import load
    from graphspec.train.data import load_data

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / name).write_bytes(content)
        spec_path = Path(tmp) / "spec.yaml"
        spec_path.write_text(DATA_SPEC.format(file=name))
        spec = load(spec_path)
        ir = build(spec)
        tracemalloc.start()
        try:
            with alarm(HANG_S):
                load_data(spec, ir, 0)
        except DataError as e:  # located at train.data (the file, its columns, val_split)
            assert e.location is not None and e.location.file == str(spec_path), str(e)
            assert e.location.line == 11, str(e)  # train.data or a key inside it
            e.render()
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert peak < DATA_LIMIT_BYTES, f"{peak / 2**20:.0f} MiB for a {len(content)}-byte file"


def _npz_bytes() -> bytes:
    import numpy as np

    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez_compressed(buf, x=rng.normal(size=(16, 2)), y=(rng.random((16, 1)) < 0.5) * 1.0)
    return buf.getvalue()


NPZ = _npz_bytes()
DESCRS = ["<f8", ">f4", "<i8", "|b1", "|u1", "|O", "<U3", "|S2", "<c16", "|V8", "<M8[s]",
          "[('a', '<f8')]", "xyz", "<f8'", ""]


@settings(FUZZ, max_examples=max(EXAMPLES // 3, 1))
@given(st.lists(st.tuples(st.integers(0, len(NPZ) - 1), st.integers(0, 255)), max_size=6),
       st.integers(30, len(NPZ)))
def test_mutated_npz_files(flips: list[tuple[int, int]], keep: int) -> None:
    data = bytearray(NPZ[:keep])
    for at, value in flips:
        if at < len(data):
            data[at] = value
    _load_data_file("d.npz", bytes(data))


@settings(FUZZ, max_examples=max(EXAMPLES // 3, 1))
@given(st.lists(st.integers(-3, 2**40) | st.sampled_from([0, 1, 2, 16, 2**31, 2**63]),
                max_size=4),
       st.sampled_from(DESCRS), st.booleans(), st.integers(0, 300), st.booleans())
def test_forged_npy_headers(shape: list[int], descr: str, fortran: bool, body: int,
                            compressed: bool) -> None:
    """Headers declaring any shape and dtype over a body of any length."""
    import zipfile

    header = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {tuple(shape)}, }}"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1")
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as z:
        z.writestr("x.npy", npy + b"\x01" * body)
        z.writestr("y.npy", NPZ_Y)
    _load_data_file("d.npz", buf.getvalue())


def _npy_of_y() -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.zeros((4, 1)))
    return buf.getvalue()


NPZ_Y = _npy_of_y()
CSV_ALPHABET = st.sampled_from(list(",,,;\t\n\n\r\"0123456789.-+eE nanifxy#\x00\u2028"))


@settings(FUZZ, max_examples=max(EXAMPLES // 3, 1))
@given(st.text(CSV_ALPHABET, max_size=200))
def test_random_csv_text(text: str) -> None:
    _load_data_file("d.csv", text.encode("utf-8"))


@settings(FUZZ, max_examples=max(EXAMPLES // 6, 1))
@given(st.lists(st.tuples(st.floats(-5, 5), st.floats(-5, 5), st.sampled_from(["0", "1"])),
                min_size=1, max_size=6),
       st.sampled_from([",", ";", "\t"]), st.booleans())
def test_small_csv_tables(rows: list[tuple[float, float, str]], sep: str, header: bool) -> None:
    """Few rows, any delimiter, with and without a header: trained on or refused clearly."""
    lines = ([sep.join(["a", "b", "label"])] if header else []) + [
        sep.join([repr(a), repr(b), c]) for a, b, c in rows]
    _load_data_file("d.csv", ("\n".join(lines) + "\n").encode())


# ---- expect: claims ---------------------------------------------------------------------------

CLAIM_VALUES: dict[str, Any] = {
    "val_loss": 0.25, "epochs": 3, "zero": 0, "acc": [0.5, 0.75], "label": "text",
    "huge": 10**400, "inf": float("inf"), "nan": float("nan"), "nested": [[1.0]],
}
claim_atoms = st.one_of(
    st.sampled_from([*CLAIM_VALUES, "nope", "val_los", "acc[1]", "acc[9]", "nested[0][0]",
                     "grad_norms.first", "abs", "min"]),
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.sampled_from(["0", "0.0", "-0.5", "1e308", "1e999", "10", "400", "2**1000",
                     "99999999999999999999", "True", "'s'", "None"]),
)


def _claim_tree(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def wrap(parts: tuple[str, bool]) -> str:
        return f"({parts[0]})" if parts[1] else parts[0]

    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**", "%"]), children)
    call = st.tuples(st.sampled_from(["abs", "min", "max", "log10", "sqrt", "__import__"]),
                     st.lists(children, max_size=3))
    return st.tuples(
        st.one_of(
            binary.map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
            children.map(lambda c: f"-{c}"),
            call.map(lambda t: f"{t[0]}({', '.join(t[1])})"),
            st.tuples(children, st.integers(-2, 3)).map(lambda t: f"{t[0]}[{t[1]}]"),
        ),
        st.booleans(),
    ).map(wrap)


claim_exprs = st.recursive(claim_atoms, _claim_tree, max_leaves=25)
claims = st.one_of(
    st.tuples(
        claim_exprs,
        st.lists(st.tuples(st.sampled_from(["<", "<=", ">", ">=", "==", "!=", "in", "is"]),
                           claim_exprs), min_size=1, max_size=2),
    ).map(lambda t: t[0] + "".join(f" {op} {e}" for op, e in t[1])),
    claim_exprs,
    st.text(max_size=40),
)


@FUZZ
@given(claims)
def test_random_claims_are_refused_at_load_or_evaluate(claim: str) -> None:
    """A claim is refused when the spec loads (a located error) or, checked against a
    run, holds or fails -- with the reason when it cannot be computed.  Never an
    exception, never a hang (``10**10**10`` used to compute for ever after training)."""
    with alarm(HANG_S):
        try:
            parse(claim)
        except ClaimError:
            refused = True
        else:
            refused = False
            outcome = evaluate(claim, CLAIM_VALUES)
            assert isinstance(outcome.held, bool)
            assert not (outcome.held and outcome.error)
            assert outcome.render().startswith("ok  " if outcome.held else "FAIL")
    spec = {"graphspec": 1, "name": "t", "inputs": {"x": ["batch", 2]},
            "graph": [{"op": "tanh"}], "expect": [claim]}
    text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
    if refused:
        with pytest.raises(GraphspecError):
            front_end(text)
    assert_accepted_or_located(text)


# ---- regressions found by fuzzing ------------------------------------------------------------


@pytest.mark.parametrize("repeat", ["99999999999999999999", "2147483648", "100000"])
def test_a_huge_repeat_is_refused_at_once(repeat: str) -> None:
    """``repeat: 99999999999999999999`` (a fuzzed number) used to expand for minutes."""
    text = (
        "graphspec: 1\nname: t\ninputs: {x: [batch, 2]}\nblocks:\n  layer:\n    graph:\n"
        "      - {op: linear, units: 2}\n      - {op: tanh}\n      - {op: tanh}\n"
        f"graph:\n  - {{id: body, block: layer, in: x, repeat: {repeat}}}\n"
    )
    front_end("graphspec: 1\nname: w\ninputs: {x: [batch, 2]}\ngraph: [{op: tanh, in: x}]\n")
    start = time.perf_counter()
    from graphspec.spec.expand import MAX_EXPANDED_NODES

    assert 3 * int(repeat) > MAX_EXPANDED_NODES
    with pytest.raises(GraphspecError, match=f"more than {MAX_EXPANDED_NODES:,} nodes") as e:
        front_end(text)
    assert time.perf_counter() - start < 1.0
    assert e.value.location is not None and (e.value.location.line, e.value.location.col) == (
        11, 45)


def test_locations_count_lines_as_editors_do() -> None:
    """YAML also breaks lines at U+0085, U+2028, U+2029; an error after such a character
    must still name the line an editor shows (and the quoted line must be that line)."""
    text = 'graphspec: 1\nname: t\ndoc: "a\u2028b\x85c\u2029d"\ninputs: {x: [batch, 2]}\n' \
        "graph:\n  - {op: linear, in: x, units: 4, unist: 1}\n"
    with pytest.raises(GraphspecError) as e:
        front_end(text)
    loc = e.value.location
    assert loc is not None and (loc.line, loc.col) == (6, 35)
    assert "  6 |   - {op: linear, in: x, units: 4, unist: 1}" in e.value.render(source=text)


# ---- hostile names and docs, non-finite attributes: into generated code, through the CLI --------

# Pieces that would end a string, a docstring or a comment, and payloads that would leave a
# file PWNED behind if they ran.  Surrogates U+DC80..U+DCFF are the undecodable bytes a Linux
# file name can hold; a file name has no NUL and no '/'.
_BREAKERS = ['"""', "'''", '"', "'", "\\", "\n", "\r", "\r\n", "\u2028", "\x85", "\x0c", "#"]
_PAYLOADS = ["open('PWNED', 'w')", 'open("PWNED", "w")', ";import os;os.system('touch PWNED')"]
_name_piece = st.one_of(
    st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
    st.sampled_from(_BREAKERS + _PAYLOADS + ["\udc80", "\udcff"]),
)
hostile_file_names = (
    st.lists(_name_piece, min_size=1, max_size=12)
    .map(lambda parts: "".join(parts) + ".yaml")
    .filter(lambda n: len(os.fsencode(n)) < 250)
)
hostile_docs = st.lists(
    st.one_of(
        st.characters(blacklist_categories=()),  # every code point: NUL, lone surrogates
        st.sampled_from(_BREAKERS + _PAYLOADS),
    ),
    max_size=12,
).map("".join)

HOSTILE_SPEC = """\
graphspec: 1
name: hostile
doc: {doc}
inputs:
  x: [batch, 2]
graph:
  - {{id: h, op: linear, in: x, units: 3, doc: {doc}}}
  - {{id: a, op: clip, min: -.inf, max: 2.5}}
outputs: [a]
"""


def _cli(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), alarm(HANG_S):
        rc = main(argv)
    shown = out.getvalue() + err.getvalue()
    assert "Traceback" not in shown and "internal error" not in shown, shown
    return rc, err.getvalue()


@settings(FUZZ, max_examples=max(EXAMPLES // 25, 1))  # a torch compile each: ~0.5 s
@given(hostile_file_names, hostile_docs, st.sampled_from(["numpy", "torch"]))
def test_hostile_names_and_docs_never_run_and_compile(name: str, doc: str, backend: str) -> None:
    """Whatever the spec file is called and whatever its docs hold, `graphspec compile`
    writes a module that imports, computes, and runs nothing of the user's."""
    import importlib.util
    import json
    import tempfile

    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # a payload that ran would write PWNED here
        try:
            Path(name).write_text(
                HOSTILE_SPEC.format(doc=json.dumps(doc)), encoding="utf-8"
            )
            rc, err = _cli(["compile", "./" + name, "--backend", backend, "-o", "m.py"])
            assert rc == 0, err
            spec = importlib.util.spec_from_file_location("hostile_module", "m.py")
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            assert not Path("PWNED").exists()
            x = np.array([[1.0, -2.0], [30.0, 4.0]])
            if backend == "numpy":
                params = module.load_initial_params("m.npz")
                y = module.forward(params, {"x": x})["a"]
            else:
                import torch

                model = module.Model(dtype=torch.float64)
                model.load_params("m.pt")
                y = model({"x": torch.tensor(x)})["a"].detach().numpy()
            assert y.shape == (2, 3) and (y <= 2.5).all()
            assert not Path("PWNED").exists()
        finally:
            os.chdir(cwd)


def _float_attr_cases() -> list[tuple[str, str]]:
    from attr_specs import float_attrs

    return float_attrs()


@settings(FUZZ, max_examples=max(EXAMPLES // 6, 1))
@given(
    st.sampled_from(_float_attr_cases()),
    st.sampled_from([".nan", ".NaN", ".inf", "-.inf", "+.Inf", "1.0e+999", "-1.0e+400"]),
)
def test_non_finite_attributes_are_refused_where_written_or_compile(
    case: tuple[str, str], value: str
) -> None:
    """A non-finite value of any float attribute: `validate` refuses it with the value's
    location (exit 1), or (a clip bound) it validates and compiles on both backends."""
    import tempfile

    from attr_specs import infinity_allowed, spec_with

    op, field = case
    text, line, col = spec_with(op, field, value)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "attr.yaml"
        path.write_text(text, encoding="utf-8")
        rc, err = _cli(["validate", str(path)])
        nan = "nan" in value.lower()
        if nan or not infinity_allowed(op, field):
            assert rc == 1 and err.startswith(f"{path}:{line}:{col}: error: "), err
            return
        assert rc in (0, 1), err  # an infinite bound may contradict the other bound
        if rc == 1:
            assert re.match(rf"{re.escape(str(path))}:\d+:\d+: error: ", err), err
            return
        for backend in ("numpy", "torch"):
            module = Path(tmp) / f"{backend}.py"
            rc, err = _cli(["compile", str(path), "--backend", backend, "-o", str(module)])
            assert rc == 0, err
            assert "float('" in module.read_text(encoding="utf-8")
