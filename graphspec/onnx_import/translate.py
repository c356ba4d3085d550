"""ONNX nodes to graphspec nodes: one handler per ONNX op type (:data:`HANDLERS`).

Every ONNX value is one of four kinds while translating:

- a constant (an initializer, a ``Constant``, or a node whose inputs are all constants,
  folded by onnx's reference evaluator): weights become parameters of the op reading them;
- a symbolic shape (``Shape`` of a tensor and the integer arithmetic exporters build on it:
  a list of sizes and dimension names such as ``batch``), which ``Reshape`` turns into a
  graphspec ``reshape`` with named dimensions;
- zeros of a symbolic shape (``ConstantOfShape`` with value 0), which a recurrent op's
  initial state may be: graphspec's recurrent ops start from zeros;
- a tensor, produced by a graphspec node (or a spec input).

A node or attribute graphspec cannot express is recorded with its ONNX name, op type and
why; :func:`translate` raises one error listing all of them, never an approximation.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphspec.ops.conv import rows_in_no_window

Dim = int | str
Shape = tuple[Dim | None, ...]


class Unsupported(Exception):
    """A node graphspec cannot express; the message says which op or attribute and why."""


@dataclass
class Node:
    """One graphspec node: ``op`` over ``inputs`` (ONNX value names, or spec input names),
    producing the value ``output``; ``params`` are its parameters and state buffers by
    graphspec's short names (``weight``, ``running_mean``)."""

    op: str
    inputs: list[str]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    base: str = ""  # the id it wants (from the ONNX node's name, else the op)
    onnx: str = ""  # "'name' (OpType)", for messages
    shape: Shape | None = None  # of the output, where known

    def signature(self) -> tuple[Any, ...]:
        """What two nodes share when one may stand for the other in a block: op, attributes
        and parameter shapes."""
        return (
            self.op,
            repr(sorted(self.attrs.items())),
            tuple((k, v.shape) for k, v in sorted(self.params.items())),
        )


@dataclass
class SymShape:
    """A 1-D integer tensor computed from tensor shapes: sizes and dimension names."""

    dims: list[Dim]


@dataclass
class Zeros:
    """``ConstantOfShape`` of a symbolic shape with value 0."""

    dims: list[Dim]


@dataclass
class Graph:
    """The translation: spec inputs (name -> (shape, dtype)), nodes, outputs."""

    inputs: dict[str, tuple[list[Dim], str]]
    nodes: list[Node]
    outputs: list[str]  # ONNX value names of the graph outputs


Handler = Callable[["Context", Any], None]
HANDLERS: dict[str, Handler] = {}


def handles(*op_types: str) -> Callable[[Handler], Handler]:
    def register(f: Handler) -> Handler:
        for t in op_types:
            HANDLERS[t] = f
        return f

    return register


class Context:
    """What the handlers read and write while walking the graph in order."""

    def __init__(self, model: Any) -> None:
        import onnx  # deferred: optional dependency (reader.require_onnx checked it)

        self.onnx = onnx
        self.model = model
        graph = model.graph
        self.consts: dict[str, np.ndarray] = {
            t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer
        }
        self.values: dict[str, Any] = {}  # SymShape / Zeros values
        self.alias: dict[str, str] = {}  # a value that is another (Identity, Dropout)
        self.nodes: list[Node] = []
        self.producer: dict[str, Node] = {}
        self.problems: list[tuple[str, str, str]] = []  # (node name, op type, why)
        self.uses = Counter(name for n in graph.node for name in n.input if name)
        self.uses.update(o.name for o in graph.output)
        self.outputs = {o.name for o in graph.output}
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        self.shapes: dict[str, Shape] = {}
        for v in list(inferred.graph.value_info) + list(graph.input) + list(graph.output):
            if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape"):
                self.shapes[v.name] = tuple(_dim(d) for d in v.type.tensor_type.shape.dim)
        self.node: Any = None  # the ONNX node being translated

    # ---- reading a node's inputs and attributes ----------------------------------------

    def name(self, value: str) -> str:
        while value in self.alias:
            value = self.alias[value]
        return value

    def const(self, value: str) -> np.ndarray | None:
        return self.consts.get(self.name(value)) if value else None

    def need_const(self, i: int, what: str) -> np.ndarray:
        c = self.const(self.input(i))
        if c is None:
            raise Unsupported(f"its {what} (input {i}) must be a constant")
        return c

    def input(self, i: int) -> str:
        ins = self.node.input
        return self.name(ins[i]) if i < len(ins) and ins[i] else ""

    def tensor(self, i: int) -> str:
        """Input ``i``, which must be a tensor a graphspec node or input produces."""
        name = self.input(i)
        if name in self.consts or name in self.values:
            raise Unsupported(f"input {i} must be computed from the model's inputs, not a constant")
        return name

    def shape(self, value: str) -> Shape | None:
        node = self.producer.get(value)
        if node is not None and node.shape is not None:
            return node.shape
        return self.shapes.get(value)

    def attr(self, name: str, default: Any = None) -> Any:
        for a in self.node.attribute:
            if a.name == name:
                value = self.onnx.helper.get_attribute_value(a)
                if isinstance(value, list):  # strings come as bytes
                    return [v.decode() if isinstance(v, bytes) else v for v in value]
                return value.decode() if isinstance(value, bytes) else value
        return default

    def only(self, allowed: dict[str, Any]) -> None:
        """Refuse attributes outside ``allowed`` (name -> the one value graphspec can
        express, or None for any value)."""
        for a in self.node.attribute:
            if a.name not in allowed:
                raise Unsupported(f"attribute '{a.name}' is not supported")
            want = allowed[a.name]
            if want is not None and _plain(self.attr(a.name)) != want:
                raise Unsupported(
                    f"attribute {a.name}={_plain(self.attr(a.name))!r} is not "
                    f"supported (only {want!r})"
                )

    # ---- writing --------------------------------------------------------------------------

    def emit(
        self,
        op: str,
        inputs: list[str],
        attrs: dict[str, Any] | None = None,
        params: dict[str, np.ndarray] | None = None,
        output: str | None = None,
        shape: Shape | None = None,
    ) -> Node:
        out = output if output is not None else self.node.output[0]
        node = Node(
            op,
            inputs,
            out,
            dict(attrs or {}),
            dict(params or {}),
            base=_base(self.node, op),
            onnx=_describe(self.node),
            shape=shape if shape is not None else self.shapes.get(out),
        )
        self.nodes.append(node)
        self.producer[out] = node
        return node

    def fresh(self, hint: str) -> str:
        """A value name no ONNX value has, for a node the translation adds."""
        n = 0
        while f"{hint}__{n}" in self.shapes or f"{hint}__{n}" in self.producer:
            n += 1
        return f"{hint}__{n}"

    def sole_user(self, value: str) -> bool:
        return self.uses[value] == 1 and value not in self.outputs


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


def _dim(d: Any) -> Dim | None:
    if d.HasField("dim_value"):
        return int(d.dim_value)
    if d.HasField("dim_param") and not d.dim_param.startswith("unk__"):
        return dim_name(d.dim_param)
    return None


def dim_name(text: str) -> str:
    """An ONNX dimension name as a graphspec symbolic dimension (an identifier)."""
    out = re.sub(r"\W", "_", text)
    return out if out and not out[0].isdigit() else f"d_{out}"


def _describe(node: Any) -> str:
    return f"'{node.name}' ({node.op_type})" if node.name else f"a {node.op_type} node"


# Exporter-made node names carry nothing the op does not say: torch.export's ``node_Gemm_3``,
# ``node_convolution_1``; those nodes get op-based ids (conv1, relu2).  torch.jit's
# ``/encoder/conv1/Conv`` names say where the op sits in the module: ``encoder_conv1``.
_GENERATED = re.compile(r"^(node_|val_|_*$)|^[A-Za-z]+(_\d+)?$")


def _base(node: Any, op: str) -> str:
    name = node.name or ""
    if "/" in name:
        parts = [p for p in name.split("/") if p]
        if parts and parts[-1].split("_")[0] == node.op_type:
            parts = parts[:-1]  # the op type closing a torch.jit scope name
        name = "_".join(parts)
    if not name or _GENERATED.match(name) or name.lower() == node.op_type.lower():
        return ""
    out = re.sub(r"\W+", "_", name).strip("_")
    return out if out and not out[0].isdigit() else ""


# ---- the walk ---------------------------------------------------------------------------------


def translate(model: Any) -> Graph:
    """The graphspec nodes of ``model``'s graph; Unsupported problems are collected in
    ``ctx.problems`` and raised by the caller as one error (see write.py)."""
    ctx = Context(model)
    graph = model.graph
    inputs: dict[str, tuple[list[Dim], str]] = {}
    for i, v in enumerate(graph.input):
        if v.name in ctx.consts:
            continue  # old exporters list initializers among the inputs
        tt = v.type.tensor_type
        dims = [_dim(d) for d in tt.shape.dim]
        fixed: list[Dim] = [
            d if d is not None else ("batch" if k == 0 else f"d{i}_{k}") for k, d in enumerate(dims)
        ]
        kind = "int" if tt.elem_type in _INT_TYPES else "float"
        if tt.elem_type not in _INT_TYPES | _FLOAT_TYPES:
            ctx.problems.append(
                (v.name, "graph input", f"element type {tt.elem_type} is neither float nor integer")
            )
        inputs[v.name] = (fixed, kind)
        ctx.shapes[v.name] = tuple(fixed)
    for node in graph.node:
        ctx.node = node
        try:
            if _fold(ctx, node):
                continue
            handler = HANDLERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
            if handler is None:
                domain = f" of domain '{node.domain}'" if node.domain not in ("", "ai.onnx") else ""
                raise Unsupported(f"graphspec has no op for {node.op_type}{domain}")
            handler(ctx, node)
        except Unsupported as e:
            ctx.problems.append((node.name, node.op_type, str(e)))
    outputs = [ctx.name(o.name) for o in graph.output]
    for o in graph.output:
        v = ctx.name(o.name)
        if v in ctx.consts or v in ctx.values:
            ctx.problems.append(
                (o.name, "graph output", "is a constant, not computed from the inputs")
            )
    if ctx.problems:
        raise Problems(ctx.problems)
    return Graph(inputs, ctx.nodes, outputs)


class Problems(Exception):
    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        super().__init__(f"{len(problems)} unsupported")
        self.problems = problems


_FLOAT_TYPES = {1, 10, 11, 16}  # float, float16, double, bfloat16
_INT_TYPES = {2, 3, 4, 5, 6, 7, 12, 13}  # the (u)int kinds

# Ops folded when every input is a constant (onnx's reference evaluator computes them).
_FOLDABLE = {
    "Identity",
    "Cast",
    "Transpose",
    "Reshape",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Slice",
    "Gather",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Neg",
    "Sqrt",
    "Flatten",
    "Expand",
    "Range",
    "ConstantOfShape",
    "Shape",
    "Split",
    "Tile",
    "Pow",
    "Reciprocal",
}


def _fold(ctx: Context, node: Any) -> bool:
    """Constants and symbolic shapes; True when the node was one of those."""
    if node.op_type == "Constant":
        ctx.consts[node.output[0]] = (
            ctx.onnx.numpy_helper.to_array(ctx.attr("value"))
            if ctx.attr("value") is not None
            else _constant_attr(ctx)
        )
        return True
    ins = [ctx.name(i) for i in node.input if i]
    if node.op_type in _FOLDABLE and all(i in ctx.consts for i in ins):
        from onnx.reference import ReferenceEvaluator  # deferred: optional dependency

        outs = ReferenceEvaluator(node).run(None, {i: ctx.consts[i] for i in ins})
        for name, value in zip(node.output, outs):
            ctx.consts[name] = np.asarray(value)
        return True
    if node.op_type in ("Identity", "Dropout") and ins and ins[0] not in ctx.consts:
        # Dropout is the identity in inference, which is what an ONNX graph computes.
        if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
            raise Unsupported("its mask output is not supported")
        ctx.alias[node.output[0]] = ins[0]
        return True
    return _symbolic(ctx, node, ins)


def _constant_attr(ctx: Context) -> np.ndarray:
    for key in ("value_float", "value_int", "value_floats", "value_ints"):
        v = ctx.attr(key)
        if v is not None:
            return np.asarray(v, dtype=np.float32 if "float" in key else np.int64)
    raise Unsupported("a Constant of this kind (sparse or string) is not supported")


# Ops that keep zeros zeros (whatever their other inputs select).
_ZERO_KEEPING = {
    "Slice",
    "Reshape",
    "Unsqueeze",
    "Squeeze",
    "Transpose",
    "Expand",
    "Identity",
    "Cast",
    "Gather",
}


def _sym(ctx: Context, name: str) -> list[Dim] | None:
    """A symbolic shape or an integer constant vector as a list of dims, else None."""
    v = ctx.values.get(name)
    if isinstance(v, SymShape):
        return list(v.dims)
    c = ctx.consts.get(name)
    if c is not None and c.dtype.kind in "iu" and c.ndim <= 1:
        return [int(x) for x in np.atleast_1d(c)]
    return None


def _symbolic(ctx: Context, node: Any, ins: list[str]) -> bool:
    """Shape arithmetic over dimension names (what exporters emit for dynamic batch
    sizes); True when the node was evaluated so."""
    op = node.op_type
    out = node.output[0]
    if op == "Shape" and ins[0] not in ctx.consts:
        shape = ctx.shape(ins[0])
        if shape is None or any(d is None for d in shape):
            return False
        start, end = ctx.attr("start", 0), ctx.attr("end", len(shape))
        ctx.values[out] = SymShape(list(shape[start:end]))  # type: ignore[arg-type]
        return True
    if ins and isinstance(ctx.values.get(ins[0]), Zeros) and op in _ZERO_KEEPING:
        shape = ctx.shapes.get(out)
        ctx.values[out] = Zeros(list(shape) if shape is not None else [])  # type: ignore[arg-type]
        return True
    args = [_sym(ctx, i) for i in ins]
    if not ins or any(a is None for a in args) or not any(i in ctx.values for i in ins):
        return False
    a = [x for x in args if x is not None]
    result: list[Dim] | None = None
    if op == "Concat":
        result = [d for x in a for d in x]
    elif op in ("Unsqueeze", "Squeeze", "Identity", "Reshape", "Flatten", "Cast"):
        result = a[0]
    elif op == "Slice":
        axes = a[3] if len(a) > 3 else [0]
        steps = a[4] if len(a) > 4 else [1]
        if axes not in ([0], [-1]) or any(isinstance(x, str) for x in a[1] + a[2] + steps):
            return False
        result = a[0][int(a[1][0]) : int(a[2][0]) : int(steps[0])]
    elif op == "Gather":
        result = [a[0][int(i)] for i in a[1]]  # type: ignore[call-overload]
    elif op == "Mul" and len(a[0]) == len(a[1]):
        result = []
        for x, y in zip(a[0], a[1]):
            if isinstance(x, int) and isinstance(y, int):
                result.append(x * y)
            elif x == 1 or y == 1:
                result.append(y if x == 1 else x)
            else:
                return False
    elif op == "ConstantOfShape":
        value = ctx.attr("value")
        v = ctx.onnx.numpy_helper.to_array(value) if value is not None else np.zeros(1)
        if np.any(v != 0):
            return False
        ctx.values[out] = Zeros(a[0])
        return True
    if result is None:
        return False
    ctx.values[out] = SymShape(result)
    return True


# ---- handlers -----------------------------------------------------------------------------


_ACTIVATIONS = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Exp": "exp",
    "Neg": "neg",
    "Abs": "abs",
    "Sqrt": "sqrt",
    "Softsign": None,
}


@handles("Relu", "Sigmoid", "Tanh", "Exp", "Neg", "Abs", "Sqrt")
def _unary(ctx: Context, node: Any) -> None:
    ctx.only({})
    ctx.emit(_ACTIVATIONS[node.op_type] or "", [ctx.tensor(0)])


@handles("Log")
def _log(ctx: Context, node: Any) -> None:
    ctx.only({})
    ctx.emit("log", [ctx.tensor(0)], {"eps": 0.0})  # graphspec's log adds eps by default


@handles("LeakyRelu")
def _leaky_relu(ctx: Context, node: Any) -> None:
    ctx.only({"alpha": None})
    ctx.emit("leaky_relu", [ctx.tensor(0)], {"slope": _f(ctx.attr("alpha", 0.01))})


@handles("Elu")
def _elu(ctx: Context, node: Any) -> None:
    ctx.only({"alpha": None})
    ctx.emit("elu", [ctx.tensor(0)], {"alpha": _f(ctx.attr("alpha", 1.0))})


@handles("Softplus")
def _softplus(ctx: Context, node: Any) -> None:
    # graphspec's (torch's) softplus is x itself above threshold 20: log1p(exp(x)) - x is
    # below 2.1e-9 there, under float32's resolution of such values (decisions.md).
    ctx.only({})
    ctx.emit("softplus", [ctx.tensor(0)])


@handles("Gelu")
def _gelu(ctx: Context, node: Any) -> None:
    ctx.only({"approximate": None})
    ctx.emit("gelu", [ctx.tensor(0)], {"approximate": ctx.attr("approximate", "none")})


@handles("Softmax", "LogSoftmax")
def _softmax(ctx: Context, node: Any) -> None:
    ctx.only({"axis": None})
    op = "softmax" if node.op_type == "Softmax" else "log_softmax"
    ctx.emit(op, [ctx.tensor(0)], {"axis": int(ctx.attr("axis", -1))})


@handles("Clip")
def _clip(ctx: Context, node: Any) -> None:
    ctx.only({})
    bounds = {}
    for i, key in ((1, "min"), (2, "max")):
        if ctx.input(i):
            c = ctx.need_const(i, key)
            if c.size != 1:
                raise Unsupported(f"its {key} must be a scalar")
            bounds[key] = _f(c.reshape(()))
    if not bounds:
        ctx.alias[node.output[0]] = ctx.tensor(0)
        return
    ctx.emit("clip", [ctx.tensor(0)], bounds)


@handles("Max", "Min")
def _max(ctx: Context, node: Any) -> None:
    if len(node.input) != 2:
        raise Unsupported("only two inputs are supported")
    ctx.emit("maximum" if node.op_type == "Max" else "minimum", _operands(ctx))


@handles("Pow")
def _pow(ctx: Context, node: Any) -> None:
    e = ctx.need_const(1, "exponent")
    if e.size != 1:
        raise Unsupported("its exponent must be a scalar")
    value = float(e.reshape(()))
    if value == 2.0:
        ctx.emit("square", [ctx.tensor(0)])
    else:
        ctx.emit("pow", [ctx.tensor(0)], {"exponent": value})


@handles("Add", "Sub", "Mul", "Div")
def _arith(ctx: Context, node: Any) -> None:
    op = node.op_type.lower()
    a, b = ctx.input(0), ctx.input(1)
    ca, cb = ctx.const(a), ctx.const(b)
    if op == "add" and cb is not None and _fold_bias(ctx, a, cb):
        return
    if op == "add" and ca is not None and _fold_bias(ctx, b, ca):
        return
    scalar = cb if cb is not None and cb.size == 1 else None
    if op in ("mul", "div") and scalar is not None and ca is None:
        s = float(scalar.reshape(()))
        if op == "div" and s == 0:
            raise Unsupported("it divides by the constant 0")
        ctx.emit("scale", [ctx.tensor(0)], {"factor": s if op == "mul" else 1.0 / s})
        return
    if op == "mul" and ca is not None and ca.size == 1 and cb is None:
        ctx.emit("scale", [ctx.tensor(1)], {"factor": float(ca.reshape(()))})
        return
    ctx.emit(op, _operands(ctx))


def _operands(ctx: Context) -> list[str]:
    """Both inputs as tensors; a constant operand becomes a ``param`` node holding it."""
    out = []
    for i in range(len(ctx.node.input)):
        c = ctx.const(ctx.input(i))
        if c is None:
            out.append(ctx.tensor(i))
            continue
        if c.dtype.kind not in "f":
            raise Unsupported(f"input {i} is an integer constant")
        name = ctx.input(i)
        if name not in ctx.producer:
            if c.ndim == 0:
                ctx.emit("constant", [], {"value": float(c)}, output=name, shape=())
            else:
                ctx.emit(
                    "param",
                    [],
                    {"shape": list(c.shape)},
                    {"value": c},
                    output=name,
                    shape=tuple(c.shape),
                )
            ctx.producer[name].base = _param_base(name)
        out.append(name)
    return out


def _param_base(name: str) -> str:
    out = re.sub(r"\W+", "_", name.split("/")[-1]).strip("_")
    return out if out and not out[0].isdigit() and not _GENERATED.match(out) else ""


def _fold_bias(ctx: Context, value: str, bias: np.ndarray) -> bool:
    """``Add(linear without bias, b)`` -> the linear's bias, when b is its per-unit vector
    and nothing else reads the linear's output."""
    node = ctx.producer.get(value)
    if node is None or node.op != "linear" or "bias" in node.params:
        return False
    units = node.attrs["units"]
    if bias.size != units or bias.shape[-1:] != (units,) or not ctx.sole_user(value):
        return False
    if any(d != 1 for d in bias.shape[:-1]) or bias.ndim > len(node.shape or ()):
        return False
    node.params["bias"] = bias.reshape(units)
    node.attrs.pop("bias", None)
    ctx.producer.pop(node.output)
    node.output = ctx.node.output[0]
    node.shape = ctx.shapes.get(node.output, node.shape)
    ctx.producer[node.output] = node
    return True


@handles("MatMul")
def _matmul(ctx: Context, node: Any) -> None:
    w = ctx.const(ctx.input(1))
    if w is not None and w.ndim == 2 and ctx.const(ctx.input(0)) is None:
        ctx.emit(
            "linear", [ctx.tensor(0)], {"units": int(w.shape[1]), "bias": False}, {"weight": w}
        )
        return
    ctx.emit("matmul", _operands(ctx))


@handles("Gemm")
def _gemm(ctx: Context, node: Any) -> None:
    ctx.only({"alpha": None, "beta": None, "transA": 0, "transB": None})
    w = ctx.need_const(1, "weight B")
    if ctx.attr("transB", 0):
        w = w.T
    w = w * np.asarray(ctx.attr("alpha", 1.0), dtype=w.dtype)
    params = {"weight": w}
    attrs: dict[str, Any] = {"units": int(w.shape[1])}
    if ctx.input(2):
        c = ctx.need_const(2, "bias C") * np.asarray(ctx.attr("beta", 1.0), dtype=w.dtype)
        if c.size == 1:
            c = np.broadcast_to(c.reshape(()), (w.shape[1],))
        if c.size != w.shape[1]:
            raise Unsupported(f"its bias C has shape {list(c.shape)}, not one per unit")
        params["bias"] = c.reshape(-1)
    else:
        attrs["bias"] = False
    ctx.emit("linear", [ctx.tensor(0)], attrs, params)


def _spatial_attrs(ctx: Context, rank: int, kernel: tuple[int, ...]) -> dict[str, Any]:
    """kernel, stride, padding, dilation of a Conv/pool node with ``rank`` spatial axes."""
    pads = list(ctx.attr("pads", [0] * (2 * rank)))
    auto = ctx.attr("auto_pad", "NOTSET")
    strides = list(ctx.attr("strides", [1] * rank))
    dil = list(ctx.attr("dilations", [1] * rank))
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if any(s != 1 for s in strides) or any((d * (k - 1)) % 2 for k, d in zip(kernel, dil)):
            raise Unsupported(
                f"auto_pad {auto} with a stride or an even kernel pads "
                "unevenly, which graphspec's symmetric padding cannot express"
            )
        padding: Any = "same"
    elif auto == "VALID":
        padding = 0
    else:
        if pads[:rank] != pads[rank:]:
            raise Unsupported(
                f"its pads {pads} differ at the two ends of an axis; graphspec pads both ends alike"
            )
        padding = pads[:rank]
    return {
        "kernel": _compact(list(kernel)),
        "stride": _compact(strides),
        "padding": padding if isinstance(padding, str) else _compact(padding),
        "dilation": _compact(dil),
    }


def _compact(values: list[int]) -> Any:
    """``[3, 3]`` as ``3``; distinct values stay a list."""
    return int(values[0]) if len(set(values)) == 1 else [int(v) for v in values]


def _pairs(value: Any, rank: int) -> list[int]:
    return [value] * rank if isinstance(value, int) else list(value)


@handles("Conv")
def _conv(ctx: Context, node: Any) -> None:
    ctx.only(
        {
            "kernel_shape": None,
            "strides": None,
            "pads": None,
            "dilations": None,
            "group": None,
            "auto_pad": None,
        }
    )
    w = ctx.need_const(1, "weight W")
    rank = w.ndim - 2
    if rank not in (1, 2):
        raise Unsupported(f"a {rank}-D convolution is not supported (conv1d and conv2d are)")
    attrs: dict[str, Any] = {"channels": int(w.shape[0])}
    attrs |= _spatial_attrs(ctx, rank, tuple(w.shape[2:]))
    if rank == 1:
        attrs = {k: (v[0] if isinstance(v, list) else v) for k, v in attrs.items()}
    groups = int(ctx.attr("group", 1))
    if groups != 1:
        attrs["groups"] = groups
    if _drops_input(ctx.shape(ctx.input(0)), attrs, rank):
        attrs["drop_remainder"] = True  # ONNX, as torch, floors the output size
    _emit_conv(ctx, "conv1d" if rank == 1 else "conv2d", attrs, w)


def _drops_input(shape: Shape | None, attrs: dict[str, Any], rank: int) -> bool:
    """Does the floor in the output size drop input rows (graphspec's drop_remainder)?
    Unknown sizes: assume so when a stride is over 1."""
    if attrs["padding"] == "same":
        return False
    k, s = _pairs(attrs["kernel"], rank), _pairs(attrs["stride"], rank)
    p, d = _pairs(attrs["padding"], rank), _pairs(attrs["dilation"], rank)
    if shape is None or len(shape) != rank + 2:
        return any(x > 1 for x in s)
    for n, kk, ss, pp, dd in zip(shape[2:], k, s, p, d):
        if not isinstance(n, int):
            if ss > 1:
                return True
            continue
        if rows_in_no_window(n, kk, ss, dd, pp) > 0:
            return True
    return False


@handles("ConvTranspose")
def _conv_transpose(ctx: Context, node: Any) -> None:
    ctx.only(
        {
            "kernel_shape": None,
            "strides": None,
            "pads": None,
            "dilations": None,
            "group": None,
            "output_padding": None,
            "auto_pad": "NOTSET",
        }
    )
    w = ctx.need_const(1, "weight W")
    if w.ndim != 4:
        raise Unsupported("only 2-D transposed convolutions are supported")
    groups = int(ctx.attr("group", 1))
    attrs: dict[str, Any] = {"channels": int(w.shape[1]) * groups}
    attrs |= _spatial_attrs(ctx, 2, tuple(w.shape[2:]))
    attrs["output_padding"] = _compact(list(ctx.attr("output_padding", [0, 0])))
    if groups != 1:
        attrs["groups"] = groups
    _emit_conv(ctx, "conv_transpose2d", attrs, w)


def _emit_conv(ctx: Context, op: str, attrs: dict[str, Any], w: Any) -> None:
    """Emit a convolution: input 2 is the optional bias B (without it the layer has none);
    the spatial attributes at graphspec's defaults (stride and dilation 1, paddings 0) are
    left out, so the spec reads as one would write it."""
    params = {"weight": w}
    if ctx.input(2):
        params["bias"] = ctx.need_const(2, "bias B")
    else:
        attrs["bias"] = False
    attrs = {
        k: v
        for k, v in attrs.items()
        if not (k in ("dilation", "stride") and v == 1)
        and not (k in ("padding", "output_padding") and v == 0)
    }
    ctx.emit(op, [ctx.tensor(0)], attrs, params)


@handles("MaxPool", "AveragePool")
def _pool(ctx: Context, node: Any) -> None:
    allowed: dict[str, Any] = {
        "kernel_shape": None,
        "strides": None,
        "pads": None,
        "ceil_mode": None,
        "auto_pad": None,
    }
    if node.op_type == "MaxPool":
        allowed |= {"storage_order": 0, "dilations": None}
    else:
        allowed |= {"count_include_pad": None}
    ctx.only(allowed)
    if len(node.output) > 1 and node.output[1]:
        raise Unsupported("its Indices output is not supported")
    kernel = tuple(ctx.attr("kernel_shape"))
    rank = len(kernel)
    if rank not in (1, 2):
        raise Unsupported(f"{rank}-D pooling is not supported (1-D and 2-D are)")
    sp = _spatial_attrs(ctx, rank, kernel)
    if sp["dilation"] != 1:
        raise Unsupported("dilated pooling is not supported")
    if sp["padding"] == "same":
        raise Unsupported("auto_pad SAME is not supported for pooling")
    # ONNX's stride defaults to 1, graphspec's to the kernel: always written.
    attrs: dict[str, Any] = {"kernel": sp["kernel"], "stride": sp["stride"]}
    if sp["padding"] != 0:
        attrs["padding"] = sp["padding"]
    if ctx.attr("ceil_mode", 0):
        attrs["ceil_mode"] = True
    kind = "max" if node.op_type == "MaxPool" else "avg"
    if kind == "avg":
        attrs["count_include_pad"] = bool(ctx.attr("count_include_pad", 0))
    ctx.emit(f"{kind}_pool{rank}d", [ctx.tensor(0)], attrs)


@handles("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx: Context, node: Any) -> None:
    ctx.only({})
    x = ctx.tensor(0)
    shape = ctx.shape(x)
    op = "global_avg_pool" if node.op_type == "GlobalAveragePool" else "global_max_pool"
    if shape is None or any(d is None for d in shape[:2]):
        raise Unsupported("its input's batch and channel sizes are unknown")
    pooled = ctx.emit(op, [x], output=ctx.fresh(node.output[0]), shape=tuple(shape[:2]))
    # ONNX keeps the spatial axes as ones; graphspec's global pools drop them.
    target = list(shape[:2]) + [1] * (len(shape) - 2)
    ctx.emit(
        "reshape", [pooled.output], {"shape": _reshape_dims(shape[:2], target)}, shape=tuple(target)
    )


@handles("BatchNormalization")
def _batch_norm(ctx: Context, node: Any) -> None:
    ctx.only({"epsilon": None, "momentum": None, "training_mode": 0})
    if len([o for o in node.output if o]) > 1:
        raise Unsupported("its running-statistics outputs (training mode) are not supported")
    scale, bias = ctx.need_const(1, "scale"), ctx.need_const(2, "bias B")
    mean, var = ctx.need_const(3, "input_mean"), ctx.need_const(4, "input_var")
    # ONNX: running = running * momentum + batch * (1 - momentum); graphspec as torch.
    attrs: dict[str, Any] = {
        "axis": 1,
        "eps": _f(ctx.attr("epsilon", 1e-5)),
        "momentum": round(1.0 - _f(ctx.attr("momentum", 0.9)), 12),
    }
    ctx.emit(
        "batch_norm",
        [ctx.tensor(0)],
        attrs,
        {"gamma": scale, "beta": bias, "running_mean": mean, "running_var": var},
    )


@handles("LayerNormalization")
def _layer_norm(ctx: Context, node: Any) -> None:
    ctx.only({"axis": None, "epsilon": None, "stash_type": None})
    if len([o for o in node.output if o]) > 1:
        raise Unsupported("its Mean and InvStdDev outputs are not supported")
    x = ctx.tensor(0)
    shape = ctx.shape(x)
    if shape is None:
        raise Unsupported("its input's rank is unknown")
    axis = int(ctx.attr("axis", -1))
    first = axis if axis < 0 else axis - len(shape)
    normalized = tuple(shape[first:])
    if any(not isinstance(d, int) for d in normalized):
        raise Unsupported("its normalized axes must have fixed sizes")
    gamma = np.broadcast_to(ctx.need_const(1, "scale"), normalized).copy()  # type: ignore[arg-type]
    beta = (
        np.broadcast_to(ctx.need_const(2, "bias B"), normalized).copy()  # type: ignore[arg-type]
        if ctx.input(2)
        else np.zeros(gamma.shape, dtype=gamma.dtype)
    )
    attrs: dict[str, Any] = {"eps": _f(ctx.attr("epsilon", 1e-5))}
    if first != -1:
        attrs["axes"] = list(range(first, 0))
    ctx.emit("layer_norm", [x], attrs, {"gamma": gamma, "beta": beta})


@handles("Flatten")
def _flatten(ctx: Context, node: Any) -> None:
    ctx.only({"axis": None})
    x = ctx.tensor(0)
    shape = ctx.shape(x)
    axis = int(ctx.attr("axis", 1))
    if shape is not None and axis < 0:
        axis += len(shape)
    if axis == 1:
        ctx.emit("flatten", [x], {"start_axis": 1}, shape=_flatten_shape(shape))
        return
    out = ctx.shapes.get(node.output[0])
    if shape is None or out is None or any(d is None for d in out):
        raise Unsupported(f"Flatten at axis {axis} needs known input and output shapes")
    ctx.emit("reshape", [x], {"shape": _reshape_dims(shape, list(out))})


def _size(dims: Any) -> int:
    """The element count of fixed sizes (the caller checked they are ints)."""
    return math.prod(int(d) for d in dims)


def _flatten_shape(shape: Shape | None) -> Shape | None:
    if shape is None or len(shape) < 2:
        return None
    rest = shape[1:]
    size = _size(rest) if all(isinstance(d, int) for d in rest) else None
    return (shape[0], size)


def _reshape_dims(src: Shape, target: list[Any]) -> list[Any]:
    """A graphspec reshape target: ONNX's 0 copies the input's size; a -1 at an axis where
    the input has a named dimension of the same extent becomes that name."""
    out = [src[i] if d == 0 and i < len(src) else d for i, d in enumerate(target)]
    for i, d in enumerate(out):
        if d == -1 and i < len(src) and isinstance(src[i], str):
            rest_in = [x for j, x in enumerate(src) if j != i]
            rest_out = [x for j, x in enumerate(out) if j != i]
            if (
                rest_in
                and all(isinstance(x, int) for x in rest_in + rest_out)
                and _size(rest_in) == _size(rest_out)
            ):
                out[i] = src[i]
    if any(d is None for d in out):
        raise Unsupported(f"its target shape {target} is not known")
    return out


@handles("Reshape", "Squeeze", "Unsqueeze")
def _reshape(ctx: Context, node: Any) -> None:
    if node.op_type == "Reshape":
        ctx.only({"allowzero": None})
    else:
        ctx.only({})
    x = ctx.tensor(0)
    src = ctx.shape(x)
    if node.op_type == "Reshape":
        target = _sym(ctx, ctx.input(1))
        if target is None:
            raise Unsupported("its shape input is computed in a way graphspec cannot follow")
        if ctx.attr("allowzero", 0) and 0 in target:
            raise Unsupported("allowzero with a 0 in the shape (an empty tensor)")
    else:
        out = ctx.shapes.get(node.output[0])
        if out is None or any(d is None for d in out):
            raise Unsupported("its output shape is not known")
        target = list(out)  # type: ignore[arg-type]
    if src is None:
        raise Unsupported("its input shape is not known")
    dims = _reshape_dims(src, list(target))
    shape = _known(src, dims)
    if len(src) > 2 and shape is not None and shape == _flatten_shape(src):
        ctx.emit("flatten", [x], {"start_axis": 1}, shape=shape)  # the readable form
        return
    ctx.emit("reshape", [x], {"shape": dims}, shape=shape)


def _known(src: Shape, dims: list[Any]) -> Shape | None:
    """The output shape of reshaping ``src`` to ``dims`` (a -1 resolved), where known."""
    if -1 not in dims:
        return tuple(dims)
    fixed_in = [d for d in src if isinstance(d, int)]
    if len(fixed_in) != len(src):
        names_in = sorted(d for d in src if isinstance(d, str))
        names_out = sorted(d for d in dims if isinstance(d, str))
        if names_in != names_out:
            return None
    rest = int(np.prod([d for d in dims if isinstance(d, int) and d != -1]))
    total = int(np.prod(fixed_in))
    return tuple(total // rest if d == -1 else d for d in dims)


@handles("Transpose")
def _transpose(ctx: Context, node: Any) -> None:
    ctx.only({"perm": None})
    x = ctx.tensor(0)
    src = ctx.shape(x)
    perm = ctx.attr("perm")
    if perm is None:
        if src is None:
            raise Unsupported("its input's rank is unknown")
        perm = list(range(len(src)))[::-1]
    shape = tuple(src[p] for p in perm) if src is not None else None
    ctx.emit("transpose", [x], {"axes": [int(p) for p in perm]}, shape=shape)


@handles("Concat")
def _concat(ctx: Context, node: Any) -> None:
    ctx.only({"axis": None})
    ctx.emit(
        "concat", [ctx.tensor(i) for i in range(len(node.input))], {"axis": int(ctx.attr("axis"))}
    )


@handles("ReduceSum", "ReduceMean")
def _reduce(ctx: Context, node: Any) -> None:
    ctx.only({"axes": None, "keepdims": None, "noop_with_empty_axes": 0})
    axes = ctx.attr("axes")
    if axes is None and ctx.input(1):
        axes = [int(a) for a in ctx.need_const(1, "axes").reshape(-1)]
    attrs: dict[str, Any] = {"keepdims": bool(ctx.attr("keepdims", 1))}
    if axes:
        attrs["axis"] = int(axes[0]) if len(axes) == 1 else [int(a) for a in axes]
    op = "sum" if node.op_type == "ReduceSum" else "mean"
    ctx.emit(op, [ctx.tensor(0)], attrs)


@handles("Gather")
def _gather(ctx: Context, node: Any) -> None:
    ctx.only({"axis": 0})
    table = ctx.need_const(0, "table (data)")
    if table.ndim != 2:
        raise Unsupported("only a 2-D table read by integer ids (an embedding) is supported")
    ctx.emit(
        "embedding",
        [ctx.tensor(1)],
        {"vocab": int(table.shape[0]), "dim": int(table.shape[1])},
        {"weight": table},
    )


# ---- recurrent layers --------------------------------------------------------------------------

# Gate blocks from ONNX's order to torch's (graphspec's): LSTM i,o,f,c -> i,f,g(c),o;
# GRU z,r,h -> r,z,n.
_GATES = {"LSTM": (4, [0, 2, 3, 1]), "GRU": (3, [1, 0, 2]), "RNN": (1, [0])}


@handles("LSTM", "GRU", "RNN")
def _recurrent(ctx: Context, node: Any) -> None:
    kind = node.op_type
    allowed: dict[str, Any] = {"hidden_size": None, "direction": None, "layout": None}
    if kind == "LSTM":
        allowed |= {"input_forget": 0}
    if kind == "GRU":
        allowed |= {"linear_before_reset": 1}  # torch's form of the reset gate
    allowed["activations"] = None
    ctx.only(allowed)
    gates, order = _GATES[kind]
    units = int(ctx.attr("hidden_size"))
    direction = ctx.attr("direction", "forward")
    if direction == "reverse":
        raise Unsupported(
            "direction 'reverse' alone is not supported (forward and bidirectional are)"
        )
    dirs = 2 if direction == "bidirectional" else 1
    attrs: dict[str, Any] = {"units": units}
    acts = ctx.attr("activations")
    if kind == "RNN":
        act = (acts or ["Tanh"])[0]
        if acts and any(a != act for a in acts) or act not in ("Tanh", "Relu"):
            raise Unsupported(f"activations {acts} are not supported (Tanh or Relu)")
        if act == "Relu":
            attrs["nonlinearity"] = "relu"
    else:
        default = ["Sigmoid", "Tanh", "Tanh"] if kind == "LSTM" else ["Sigmoid", "Tanh"]
        if acts and list(acts) != default * dirs:
            raise Unsupported(f"activations {acts} are not supported (only the default)")
    if dirs == 2:
        attrs["bidirectional"] = True
    if ctx.input(4):
        raise Unsupported("sequence_lens is not supported (export without padding)")
    for i, what in ((5, "initial_h"), (6, "initial_c")):
        v = ctx.input(i)
        c = ctx.const(v)
        if v and not isinstance(ctx.values.get(v), Zeros) and not (c is not None and not np.any(c)):
            raise Unsupported(f"a non-zero {what} is not supported")
    if kind == "LSTM" and ctx.input(7):
        raise Unsupported("peephole weights P are not supported")
    w, r = ctx.need_const(1, "W"), ctx.need_const(2, "R")
    b = (
        ctx.const(ctx.input(3))
        if ctx.input(3)
        else np.zeros((dirs, 2 * gates * units), dtype=w.dtype)
    )
    if b is None:
        raise Unsupported("its bias B (input 3) must be a constant")
    params: dict[str, np.ndarray] = {}
    for d, suffix in enumerate(("", "_reverse")[:dirs]):
        params["weight_ih" + suffix] = _reorder(w[d], gates, order)
        params["weight_hh" + suffix] = _reorder(r[d], gates, order)
        params["bias_ih" + suffix] = _reorder(b[d, : gates * units], gates, order)
        params["bias_hh" + suffix] = _reorder(b[d, gates * units :], gates, order)
    layout = int(ctx.attr("layout", 0))
    x = ctx.tensor(0)
    src = ctx.shape(x)
    if src is None or len(src) != 3:
        raise Unsupported("its input's shape is not known")
    seq, batch = (src[0], src[1]) if layout == 0 else (src[1], src[0])
    if layout == 0:  # [seq, batch, features] -> graphspec's batch first
        x = ctx.emit(
            "transpose", [x], {"axes": [1, 0, 2]}, output=ctx.fresh(x), shape=(batch, seq, src[2])
        ).output
    y, y_h = (ctx.name(v) if v and ctx.uses[v] else "" for v in (list(node.output) + ["", ""])[:2])
    if len(node.output) > 2 and node.output[2]:
        raise Unsupported("its Y_c output (the last cell state) is not supported")
    if y_h and dirs == 2:
        raise Unsupported("Y_h of a bidirectional layer is not supported")
    if y_h and not y:
        last = ctx.emit(
            kind.lower(),
            [x],
            attrs | {"returns": "last"},
            params,
            output=ctx.fresh(y_h),
            shape=(batch, units),
        )
        step = ctx.emit(
            "reshape",
            [last.output],
            {"shape": [batch, 1, units]},
            output=ctx.fresh(y_h),
            shape=(batch, 1, units),
        )
        _to_directions_first(ctx, step.output, y_h, batch, units)
        return
    seqs = ctx.emit(
        kind.lower(),
        [x],
        attrs,
        params,
        output=ctx.fresh(y or y_h),
        shape=(batch, seq, dirs * units),
    )
    if y_h:  # both used: Y_h is Y's last step (one direction, no padding)
        step = ctx.emit(
            "slice",
            [seqs.output],
            {"axis": 1, "start": -1},
            output=ctx.fresh(y_h),
            shape=(batch, 1, units),
        )
        _to_directions_first(ctx, step.output, y_h, batch, units)
    # ONNX's Y: [seq, dirs, batch, units] (layout 0) or [batch, seq, dirs, units].
    split = ctx.emit(
        "reshape",
        [seqs.output],
        {"shape": [batch, seq, dirs, units]},
        output=ctx.fresh(y),
        shape=(batch, seq, dirs, units),
    )
    if layout == 0:
        ctx.emit(
            "transpose",
            [split.output],
            {"axes": [1, 2, 0, 3]},
            output=y,
            shape=(seq, dirs, batch, units),
        )
    else:
        split.output = y
        ctx.producer[y] = split


def _to_directions_first(ctx: Context, value: str, out: str, batch: Any, units: int) -> None:
    """``[batch, 1, units]`` as ONNX's ``Y_h`` ``[1, batch, units]``: a transpose, since a
    reshape keeps a named dimension at its axis."""
    ctx.emit("transpose", [value], {"axes": [1, 0, 2]}, output=out, shape=(1, batch, units))


def _reorder(a: np.ndarray, gates: int, order: list[int]) -> np.ndarray:
    blocks = np.split(a, gates, axis=0)
    return np.concatenate([blocks[i] for i in order], axis=0)


def _f(value: Any) -> float:
    """A float attribute as the shortest decimal that reads back as the same float32
    (ONNX stores float32: 0.01 arrives as 0.009999999776482582)."""
    x = float(value)
    return (
        float(np.format_float_positional(np.float32(x), unique=True, trim="-"))
        if np.isfinite(x)
        else x
    )
