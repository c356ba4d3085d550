"""Write the translated graph as a spec (YAML) and its parameters (.npz) beside it.

Ids: a node's ONNX name where it says more than the op (``fc1``, torch.jit's
``/encoder/conv1/Conv`` -> ``encoder_conv1``), else the op and a count (``conv1``,
``relu2``); the node computing a graph output takes the output's name, so the spec's
outputs are the model's.  Every line is written through yaml.safe_dump (names from the
file are data, quoted as YAML needs).  The spec is then loaded and built as any other, and
the parameters checked against it by name and shape, so a file that is written is a file
``graphspec`` reads.

The parameter file holds ``param/<graphspec name>`` arrays (float64), the layout
``graphspec compile`` writes: ``train --init-from``, ``compile --params`` and ``export
--checkpoint`` read it.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from graphspec.errors import Location
from graphspec.ir.build import build
from graphspec.ir.initializers import init_params
from graphspec.onnx_import import blocks as blocks_mod
from graphspec.onnx_import.errors import OnnxImportError
from graphspec.onnx_import.reader import MAX_ONNX_BYTES, load_model
from graphspec.onnx_import.simplify import simplify
from graphspec.onnx_import.translate import Graph, Node, Problems, translate
from graphspec.spec.load import loads
from graphspec.train.atomic import atomic_open
from graphspec.train.checkpoint import compare_params, expected_shapes

SHOWN = 20  # unsupported nodes listed one per note; the count says how many more

# Short id stems by op; other ops use their own name.
_STEMS = {
    "conv1d": "conv",
    "conv2d": "conv",
    "conv_transpose2d": "deconv",
    "max_pool1d": "pool",
    "max_pool2d": "pool",
    "avg_pool1d": "pool",
    "avg_pool2d": "pool",
    "global_avg_pool": "gap",
    "global_max_pool": "gmp",
    "batch_norm": "bn",
    "layer_norm": "ln",
    "embedding": "embed",
    "leaky_relu": "lrelu",
    "log_softmax": "logp",
}


@dataclass
class Imported:
    spec: Path
    params: Path
    nodes: int  # graphspec nodes after expansion
    blocks: int  # block definitions
    param_count: int


def import_onnx(
    source: str | Path,
    out: str | Path,
    params_out: str | Path | None = None,
    limit: int = MAX_ONNX_BYTES,
) -> Imported:
    """Translate the ONNX model ``source`` into the spec ``out`` and its parameter file
    (``params_out``, default ``out`` with suffix ``.npz``)."""
    source, out = Path(source), Path(out)
    npz = Path(params_out) if params_out is not None else out.with_suffix(".npz")
    model = load_model(source, limit)
    try:
        graph = simplify(translate(model))
    except Problems as e:
        raise _unsupported(source, e.problems) from None
    text, params = render(graph, model, source, out, npz)
    ir = _check(text, out, params)
    # Again, with each node's shape as graphspec computes it in a comment.
    text, _ = render(graph, model, source, out, npz, _types(ir))
    full = _complete(ir, params)
    _write(out, text.encode("utf-8"))
    buf = io.BytesIO()
    np.savez(buf, **{f"param/{k}": v for k, v in full.items()})  # type: ignore[arg-type]
    _write(npz, buf.getvalue())
    n_blocks = text.count("\n    graph:\n")
    return Imported(out, npz, len(ir.op_nodes()), n_blocks, ir.param_count())


def _unsupported(source: Path, problems: list[tuple[str, str, str]]) -> OnnxImportError:
    kinds = sorted({op for _, op, _ in problems})
    notes = [
        (f"'{name}' ({op}): {why}" if name else f"a {op} node: {why}", None)
        for name, op, why in problems[:SHOWN]
    ]
    if len(problems) > SHOWN:
        notes.append((f"... and {len(problems) - SHOWN} more", None))
    n = len(problems)
    return OnnxImportError(
        f"{n} ONNX node{'s' if n > 1 else ''} graphspec cannot express ({', '.join(kinds)})",
        Location(str(source)),
        notes=notes,
        hint="graphspec import translates each node exactly or not at all; "
        "docs/onnx.md lists the ops and attributes it reads",
    )


# ---- the YAML ------------------------------------------------------------------------------


def _flow(value: Any) -> str:
    return str(
        yaml.safe_dump(
            value, default_flow_style=True, width=10**9, sort_keys=False, allow_unicode=True
        )
    ).strip()


def _scalar(value: Any) -> str:
    text = str(
        yaml.safe_dump(value, default_flow_style=True, width=10**9, allow_unicode=True)
    ).strip()
    return text[:-4].rstrip() if text.endswith("\n...") else text


def identifier(text: str, fallback: str) -> str:
    out = re.sub(r"\W+", "_", text, flags=re.ASCII).strip("_")[:100]
    return out if out and not out[0].isdigit() else (f"{fallback}_{out}" if out else fallback)


class _Ids:
    """Unique ids within one scope (the graph, or a block's own)."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = set(taken)
        self.counts: dict[str, int] = {}

    def claim(self, want: str) -> str:
        name, k = want, 2
        while name in self.taken:
            name, k = f"{want}_{k}", k + 1
        self.taken.add(name)
        return name

    def numbered(self, op: str) -> str:
        stem = _STEMS.get(op, op)
        while True:
            self.counts[stem] = self.counts.get(stem, 0) + 1
            name = f"{stem}{self.counts[stem]}"
            if name not in self.taken:
                self.taken.add(name)
                return name


def render(
    graph: Graph,
    model: Any,
    source: Path,
    out: Path,
    npz: Path,
    types: dict[str, list[Any]] | None = None,
) -> tuple[str, dict[str, np.ndarray]]:
    """The spec text and the parameters by graphspec name; ``types`` (node id -> shape)
    adds each top-level node's shape as a comment."""
    names = {k: identifier(k, "input") for k in graph.inputs}
    if len(set(names.values())) != len(names):
        raise OnnxImportError(
            "two inputs have the same name once made identifiers", Location(str(source))
        )
    for v in graph.outputs:
        _check_output(v, graph, source)
    ids = _Ids(set(names.values()))
    ref: dict[str, str] = dict(names)  # value -> how the spec refers to it
    wanted_out = {v: identifier(v, "output") for v in graph.outputs}
    uses, defs = blocks_mod.find_blocks(graph.nodes, graph.outputs)
    block_of = {b.name: b for b in defs.values()}
    params: dict[str, np.ndarray] = {}
    lines: list[str] = []
    prev: str | None = None
    i, u = 0, 0
    instance = _Ids(set())
    while i < len(graph.nodes):
        use = uses[u] if u < len(uses) and uses[u].start == i else None
        if use is None:
            n = graph.nodes[i]
            nid = (
                ids.claim(wanted_out[n.output])
                if n.output in wanted_out
                else ids.claim(n.base)
                if n.base
                else ids.numbered(n.op)
            )
            line = "  - " + _node_line(n, nid, ref, prev, first=not lines)
            if types and nid in types:
                line += "  # " + _flow(types[nid])
            lines.append(line)
            params |= {f"{nid}.{k}": v for k, v in n.params.items()}
            ref[n.output] = nid
            prev = n.output
            i += 1
            continue
        inst = instance.numbered(use.name) if use.name not in ids.taken else ""
        inst = ids.claim(inst or use.name)
        entry = blocks_mod.entry_value(graph.nodes[i : i + use.length])
        local = _block_ids(block_of[use.name])
        item: dict[str, Any] = {"id": inst, "block": use.name}
        if entry != prev or not lines:
            item["in"] = ref[entry] if entry is not None else None
        if use.repeat > 1:
            item["repeat"] = use.repeat
        lines.append("  - " + _flow(item))
        for r in range(use.repeat):
            copy = graph.nodes[i + r * use.length : i + (r + 1) * use.length]
            prefix = f"{inst}.{r}." if use.repeat > 1 else f"{inst}."
            for n, lid in zip(copy, local):
                params |= {f"{prefix}{lid}.{k}": v for k, v in n.params.items()}
        last = graph.nodes[i + use.length * use.repeat - 1]
        ref[last.output] = inst
        prev = last.output
        i += use.length * use.repeat
        u += 1
    head = _head(graph, model, source, out, npz, names)
    outputs = [ref[v] for v in graph.outputs]  # the ids the output nodes got
    body = _blocks_text(defs) + ["graph:"] + lines + [f"outputs: {_flow(outputs)}", ""]
    return "\n".join(head + body), params


def _check_output(value: str, graph: Graph, source: Path) -> None:
    if value in graph.inputs:
        raise OnnxImportError(
            f"the output '{value}' is an input passed through; "
            "graphspec outputs are computed by nodes",
            Location(str(source)),
        )


def _block_ids(block: blocks_mod.Block) -> list[str]:
    # By op: the first copy's node names would misname every other copy.
    ids = _Ids({"in"})
    return [ids.numbered(n.op) for n in block.nodes]


def _blocks_text(defs: dict[Any, blocks_mod.Block]) -> list[str]:
    if not defs:
        return []
    out = ["blocks:"]
    for block in defs.values():
        local = _block_ids(block)
        ref = {n.output: lid for n, lid in zip(block.nodes, local)}
        entry = blocks_mod.entry_value(block.nodes)
        assert entry is not None
        ref[entry] = "$in"
        out += [f"  {_scalar(block.name)}:", "    graph:"]
        prev: str | None = entry
        for n, lid in zip(block.nodes, local):
            out.append("      - " + _node_line(n, lid, ref, prev, first=False))
            prev = n.output
    return out


def _node_line(n: Node, nid: str, ref: dict[str, str], prev: str | None, first: bool) -> str:
    item: dict[str, Any] = {"id": nid, "op": n.op}
    ins = [ref[v] for v in n.inputs]
    if first or n.inputs != [prev]:
        if ins:
            item["in"] = ins[0] if len(ins) == 1 else ins
    item |= n.attrs
    return _flow(item)


def _head(
    graph: Graph, model: Any, source: Path, out: Path, npz: Path, names: dict[str, str]
) -> list[str]:
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    producer = " ".join(x for x in (model.producer_name, model.producer_version) if x)
    doc = (
        f"Imported from {source.name} ({producer + ', ' if producer else ''}ONNX opset "
        f"{opset}) by graphspec import. Its parameters are in {npz.name}: "
        f"graphspec train --init-from {npz.name}, graphspec compile --params {npz.name}."
    )
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", out.stem)[:128].strip(".") or "imported"
    lines = ["graphspec: 1", f"name: {_scalar(name)}", f"doc: {_scalar(doc)}", "inputs:"]
    for k, (shape, dtype) in graph.inputs.items():
        spec: dict[str, Any] = {"shape": list(shape)}
        if dtype == "int":
            spec["dtype"] = "int"
        lines.append(f"  {names[k]}: {_flow(spec)}")
    return lines


# ---- checks and files ------------------------------------------------------------------


def _check(text: str, out: Path, params: dict[str, np.ndarray]) -> Any:
    """The IR of the written spec; an error here is a bug in the importer, said so."""

    try:
        return build(loads(text, str(out), base=out.parent))
    except Exception as e:  # noqa: BLE001 - reported with the text that failed
        raise OnnxImportError(
            f"graphspec import wrote a spec that does not load: {e}",
            Location(str(out)),
            hint="this is a bug in graphspec import; please report it with the model",
        ) from None


def _types(ir: Any) -> dict[str, list[Any]]:
    return {n: list(ir.type(n).shape) for n in ir.op_nodes()}


def _complete(ir: Any, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every parameter and state buffer of ``ir``: the model's, and the initial values of
    buffers the model has none for (a ``constant`` node's value)."""

    m = compare_params(params, expected_shapes(ir))
    # A constant node's buffer is filled from the spec's own value, not the model's.
    if m.extra or m.shapes or any(not k.endswith(".value") for k, _ in m.missing):
        raise OnnxImportError(
            "graphspec import's parameters do not fit the spec it wrote: " + m.counts(),
            notes=[(line, None) for line in m.lines()],
            hint="this is a bug in graphspec import; please report it with the model",
        )
    full = init_params(ir)
    for k, v in params.items():
        full[k] = np.asarray(v, dtype=np.float64)
    return full


def _write(path: Path, data: bytes) -> None:
    try:
        if path.is_dir():
            raise OnnxImportError(f"cannot write {path}: it is a directory", Location(str(path)))
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise OnnxImportError(
            f"cannot write {path}: {e.strerror or e}", Location(str(path))
        ) from None
