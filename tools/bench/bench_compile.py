"""Compile cost (load, validate, expand, build, shape inference, checks) as a spec grows, and
``graphspec verify`` time for the gallery.

Generated specs: a residual cell of three ops (``linear``, ``tanh``, ``add``; five IR nodes
with the linear's two parameters) repeated to 1e3, 1e4 and 1e5 IR nodes with ``repeat``, the
way a large spec is written; and the same cells listed one by one ("flat", 1e3 and 1e4 nodes:
the YAML loader's limits on values stop a flat listing well before 1e5).  Time is CPU time
(the process's own, robust against a busy machine) and wall time; memory is tracemalloc's
peak during the build, in a separate run (tracing slows Python down).  Growth is linear when
the per-node figures stay flat across sizes.

    python tools/bench/bench_compile.py [--sizes 1000,10000,100000] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

# Imported here, not on first use inside the timed region: `import graphspec` loads its
# modules lazily, and the first size measured would otherwise pay for importing them.
from graphspec.ir.build import build
from graphspec.spec.load import loads

ROOT = Path(__file__).resolve().parents[2]
NODES_PER_CELL = 5  # linear (+ weight, bias), tanh, add
FIXED_NODES = 7  # inputs x, y; the read-out linear (+2 params); the loss; the output


def cell_count(nodes: int) -> int:
    return max(1, (nodes - FIXED_NODES) // NODES_PER_CELL)


def spec_text(cells: int, flat: bool) -> str:
    head = ["graphspec: 1", f"name: scale-{cells}", "seed: 0", "inputs:",
            "  x: [batch, 8]", "  y: [batch, 1]"]
    tail = ["  - {id: logit, op: linear, units: 1}", "outputs: [logit]", "loss:",
            "  - {op: mse, in: [logit, y]}"]
    if flat:
        body = ["graph:"]
        prev = "x"
        for i in range(cells):
            body += [f"  - {{id: h{i}, op: linear, in: {prev}, units: 8}}",
                     f"  - {{id: a{i}, op: tanh}}",
                     f"  - {{id: r{i}, op: add, in: [{prev}, a{i}]}}"]
            prev = f"r{i}"
        return "\n".join(head + body + tail) + "\n"
    blocks = ["blocks:", "  cell:", "    graph:", "      - {id: h, op: linear, units: 8}",
              "      - {id: a, op: tanh}", "      - {id: out, op: add, in: [$in, a]}",
              "graph:", f"  - {{id: body, block: cell, in: x, repeat: {cells}}}"]
    return "\n".join(head + blocks + tail) + "\n"


def _load_build(text: str) -> Any:
    return build(loads(text, "<generated>"))


def _allow(cells: int) -> int | None:
    """Raise the refusal bounds this size needs; returns the expander's old bound.

    ``graphspec.spec.expand.MAX_EXPANDED_NODES`` refuses specs that expand to more nodes
    than any real spec has, ``graphspec.spec.source.MAX_VALUES`` documents of more values
    (a flat listing of 1e5 nodes holds about 5e5); the compile-cost series measures the same
    code past them."""
    from graphspec.spec import expand, source

    source.MAX_VALUES = max(source.MAX_VALUES, cells * 40)  # a flat cell holds ~25 values
    need = cells * (NODES_PER_CELL - 1) + 16  # block instances and op nodes (no params)
    old = expand.MAX_EXPANDED_NODES
    if need <= old:
        return None
    expand.MAX_EXPANDED_NODES = need
    return old


def compile_cost(
    nodes: int, flat: bool, memory: bool = True, codegen: bool = False
) -> dict[str, Any]:
    cells = cell_count(nodes)
    text = spec_text(cells, flat)
    limit = _allow(cells)
    gc.collect()
    c0, w0 = time.process_time(), time.perf_counter()
    spec = loads(text, "<generated>")
    c1 = time.process_time()
    ir = build(spec)
    c2, w2 = time.process_time(), time.perf_counter()
    n = ir.graph.number_of_nodes()
    out: dict[str, Any] = {
        "style": "flat" if flat else "repeat", "nodes": n, "spec_bytes": len(text),
        "cpu_s": c2 - c0, "wall_s": w2 - w0, "load_cpu_s": c1 - c0, "build_cpu_s": c2 - c1,
        "us_per_node": (c2 - c0) / n * 1e6,
    }
    if limit is not None:
        out["raised_limit_from"] = limit
    if codegen:
        import graphspec

        gc.collect()
        c3 = time.process_time()
        graphspec.compile(ir, backend="numpy")
        out["codegen_cpu_s"] = time.process_time() - c3
    del ir, spec
    if memory:
        gc.collect()
        tracemalloc.start()
        try:
            ir = _load_build(text)
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        out["peak_bytes"] = peak
        out["kept_bytes"] = current
        out["peak_bytes_per_node"] = peak / n
        out["kept_bytes_per_node"] = current / n
        del ir
    return out


def exponents(rows: list[dict[str, Any]], key: str) -> list[tuple[int, int, float]]:
    """(nodes, next nodes, k) for successive sizes of one style: time ~ nodes^k between them."""
    out = []
    for a, b in zip(rows, rows[1:]):
        if key in a and key in b and a[key] > 0 and b[key] > 0:
            k = math.log(b[key] / a[key]) / math.log(b["nodes"] / a["nodes"])
            out.append((a["nodes"], b["nodes"], k))
    return out


STEPS = (("load_cpu_s", "load+validate"), ("build_cpu_s", "build"), ("codegen_cpu_s", "compile"))


def verify_gallery(specs: list[Path]) -> list[dict[str, Any]]:
    """Each gallery spec through ``graphspec.verify`` (the CLI's work minus interpreter start)."""
    from graphspec.verify import verify

    verify(str(ROOT / "specs" / "xor.yaml"))  # warm: imports, kernel registries, torch init
    rows = []
    for path in specs:
        t0 = time.perf_counter()
        try:
            report = verify(str(path))
            ok: Any = bool(getattr(report, "ok", True))
        except Exception as e:  # noqa: BLE001 - a benchmark reports, it does not stop
            ok = f"error: {type(e).__name__}: {str(e).splitlines()[0][:80]}"
        rows.append({"spec": path.name, "seconds": time.perf_counter() - t0, "ok": ok})
    return rows


def startup_seconds() -> float:
    """Wall time of a fresh interpreter importing graphspec and both backends: what each
    ``graphspec verify`` invocation pays before it verifies anything."""
    import subprocess

    code = "import graphspec, graphspec_numpy.program, graphspec_torch.program"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--flat-sizes", default="1000,10000")
    ap.add_argument("--memory-max", type=int, default=100000,
                    help="measure peak memory up to this many nodes")
    ap.add_argument("--codegen", action="store_true",
                    help="also time the numpy backend's compile (module generation)")
    ap.add_argument("--verify", action="store_true", help="also time verify on the gallery")
    ap.add_argument("--verify-specs", default="", help="comma-separated spec names (default all)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = []
    growth = []
    for flat, sizes in ((False, a.sizes), (True, a.flat_sizes)):
        style = [compile_cost(int(x), flat, memory=int(x) <= a.memory_max, codegen=a.codegen)
                 for x in sizes.split(",") if x]
        rows += style
        for key, what in STEPS:
            growth += [{"style": "flat" if flat else "repeat", "step": what, "from": n0,
                        "to": n1, "exponent": k} for n0, n1, k in exponents(style, key)]
    result: dict[str, Any] = {"compile": rows, "growth": growth}
    if a.verify:
        names = [x for x in a.verify_specs.split(",") if x]
        specs = sorted((ROOT / "specs").glob("*.yaml"))
        if names:
            specs = [p for p in specs if p.stem in names or p.name in names]
        result["startup_s"] = startup_seconds()
        result["verify"] = verify_gallery(specs)
    if a.json:
        print(json.dumps(result))
        return
    for r in rows:
        mem = (f", peak {r['peak_bytes_per_node'] / 1024:.1f} KiB/node" if "peak_bytes" in r
               else "")
        steps = ", ".join(f"{what} {r[key] / r['nodes'] * 1e6:.1f}" for key, what in STEPS
                          if key in r)
        print(f"{r['style']:6s} {r['nodes']:>7d} nodes: {r['cpu_s']:.2f} s CPU "
              f"({r['wall_s']:.2f} s wall), {r['us_per_node']:.1f} us/node{mem}; "
              f"us/node: {steps}")
    for g in growth:
        print(f"{g['style']:6s} {g['step']:14s} {g['from']:>7d} -> {g['to']:>7d} nodes: "
              f"time ~ nodes^{g['exponent']:.2f}")
    for v in result.get("verify", []):
        print(f"verify {v['spec']:28s} {v['seconds']:.2f} s  {v['ok']}")


if __name__ == "__main__":
    main()
