"""Property: for random valid graphs built from registry ops, numpy and torch agree on the
outputs, the loss terms and every gradient (float64, graphspec.verify's tolerances).

The graphs mix what single-op conformance cannot reach: values read twice (cotangents that
add up), broadcasting against parameters and [batch, 1] columns (gradients that must be
summed back), concatenation, reductions, and several loss terms over shared weights.
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphspec as gs
from graphspec.verify import verify

UNARY = ["tanh", "sigmoid", "relu", "softplus", "elu", "gelu", "leaky_relu", "square", "neg",
         "identity", "softmax", "log_softmax", "abs"]
BINARY = ["add", "sub", "mul", "maximum", "minimum"]
MAX_WIDTH = 8


@st.composite
def graphs(draw: Any) -> dict[str, Any]:
    """A spec: inputs x (and maybe z), 1-7 random nodes, a linear read-out, 1-3 loss terms."""
    widths: dict[str, int] = {"x": draw(st.integers(1, 4))}
    inputs: dict[str, Any] = {"x": ["batch", widths["x"]], "y": ["batch", 1]}
    if draw(st.booleans()):
        widths["z"] = draw(st.integers(1, 3))
        inputs["z"] = ["batch", widths["z"]]
    nodes: list[dict[str, Any]] = []

    def pick() -> str:
        return draw(st.sampled_from(sorted(widths)))

    for i in range(draw(st.integers(1, 7))):
        nid = f"n{i}"
        kind = draw(st.sampled_from(["unary", "linear", "binary", "broadcast", "concat",
                                     "reduce", "matmul", "add3"]))
        a = pick()
        w = widths[a]
        if kind == "unary":
            node = {"op": draw(st.sampled_from(UNARY)), "in": a}
        elif kind == "linear":
            w = draw(st.integers(1, 4))
            node = {"op": "linear", "in": a, "units": w, "bias": draw(st.booleans())}
        elif kind == "binary":  # same width, possibly the same value twice
            same = [k for k, v in widths.items() if v == w]
            node = {"op": draw(st.sampled_from(BINARY)), "in": [a, draw(st.sampled_from(same))]}
        elif kind == "broadcast":  # against a learned [w] vector or a [batch, 1] column
            if draw(st.booleans()):
                vec = f"v{i}"
                nodes.append({"id": vec, "op": "param", "shape": [w],
                              "init": {"value": {"name": "normal", "std": 1.0}}})
                other = vec
            else:
                cols = [k for k, v in widths.items() if v == 1]
                if not cols:
                    continue
                other = draw(st.sampled_from(cols))
            ops = draw(st.permutations([a, other]))
            node = {"op": draw(st.sampled_from(["add", "mul", "sub"])), "in": list(ops)}
        elif kind == "concat":
            b = pick()
            if w + widths[b] > MAX_WIDTH:
                continue
            w += widths[b]
            node = {"op": "concat", "in": [a, b]}
        elif kind == "reduce":
            w = 1
            node = {"op": draw(st.sampled_from(["sum", "mean"])), "in": a, "axis": -1,
                    "keepdims": True}
        elif kind == "matmul":
            mat = f"m{i}"
            u = draw(st.integers(1, 4))
            nodes.append({"id": mat, "op": "param", "shape": [w, u],
                          "init": {"value": "glorot_uniform"}})
            node = {"op": "matmul", "in": [a, mat]}
            w = u
        else:  # add of three values of one width
            same = [k for k, v in widths.items() if v == w]
            node = {"op": "add", "in": [draw(st.sampled_from(same)) for _ in range(3)]}
        nodes.append({"id": nid, **node})
        widths[nid] = w
    last = nodes[-1]["id"] if nodes else "x"
    nodes.append({"id": "logit", "op": "linear", "in": last, "units": 1})
    losses: list[dict[str, Any]] = [
        {"op": draw(st.sampled_from(["mse", "bce_with_logits"])), "in": ["logit", "y"]}]
    if draw(st.booleans()):
        losses.append({"op": "l2_penalty", "weight": 0.01})
    if draw(st.booleans()):  # a second term over an intermediate value: two cotangent paths
        mid = draw(st.sampled_from([n["id"] for n in nodes if n["op"] != "param"]))
        nodes.append({"id": "aux", "op": "mean", "in": mid, "axis": -1, "keepdims": True})
        losses.append({"op": "mse", "in": ["aux", "y"], "weight": 0.5})
    return {"graphspec": 1, "name": "random", "seed": draw(st.integers(0, 1000)),
            "inputs": inputs, "graph": nodes, "outputs": ["logit"], "loss": losses}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_backends_agree_on_random_graphs(spec):
    text = yaml.safe_dump(spec, sort_keys=False)
    ir = gs.build(gs.loads(text, "<random graph>"))
    report = verify(ir, steps=0, fd=False, blame=False)
    assert report.ok, text + "\n" + report.render(only_failures=True)
    grads = {r.tensor for r in report.rows if r.check == "grad"}
    assert set(ir.params) <= grads
