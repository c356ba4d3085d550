"""ONNX export of the generated Model's forward pass (outputs only, evaluation mode).

``torch.onnx.export`` (the ``torch.export``-based exporter, which needs ``onnxscript``) traces
the very module ``graphspec compile`` writes.  Symbolic dimensions of the spec's inputs
(``batch``) stay dynamic in the ONNX graph; one name is one dimension.  Ops known not to
export are refused up front with their YAML locations; if the exporter fails anyway, each op
of the graph is exported alone on its registry sample to name the culprit.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphspec.backend import CompileOptions
from graphspec.errors import BackendError
from graphspec.ir.graph import IR
from graphspec.ir.plan import Plan
from graphspec.ops import REGISTRY, TensorType
from graphspec.ops.registry import iter_samples
from graphspec_torch.kernels import KERNELS
from graphspec_torch.program import TorchProgram

# Ops whose forward torch.onnx cannot express, with the reason shown to the user.  A slow
# test exports every op alone (``_probe``) and checks this table against the exporter.
NOT_EXPORTABLE: dict[str, str] = {
    "scaled_dot_product_attention": (
        "torch.onnx converts F.scaled_dot_product_attention only for 4-D (batch, heads, "
        "length, features) inputs, and graphspec's are 3-D"
    ),
}
# Ops that export unless one attribute is set: op -> (attribute, the reason shown).  The
# recurrent ops export as ONNX LSTM/GRU/RNN; their padded sequences (pack_padded_sequence)
# have data-dependent sizes, which torch.export refuses.
NOT_EXPORTABLE_WITH: dict[str, tuple[str, str]] = {
    op: ("lengths", "torch.onnx cannot export packed sequences (a 'lengths' input): their "
         "sizes depend on the data; export a spec without 'lengths'")
    for op in ("lstm", "gru", "rnn")
}
# The exporter builds opset 18 or newer and converts down from there; the conversion fails
# for some ops (ReduceMean's axes, graphs without nodes), so 18 is the default.
DEFAULT_OPSET = 18
EXTERNAL_DATA_BYTES = 1 << 30

# Example sizes for symbolic dimensions: distinct and > 1, so that torch.export neither
# specializes a dimension to 1 nor infers two different dimensions to be equal.
_EXAMPLE_SIZES = (3, 5, 7, 11, 13, 17)


def export_onnx(
    ir: IR, params: dict[str, np.ndarray], path: str | Path, opset: int = DEFAULT_OPSET,
    dtype: str = "float32",
) -> Path:
    """Write the forward graph of ``ir`` with ``params`` to ``path`` as ONNX (opset 17 or
    newer; the file is checked to carry the opset asked for)."""
    if opset < 17:
        raise BackendError(f"ONNX opset {opset} is too old", hint="use opset 17 or newer")
    _require_exporter()
    if not ir.outputs:
        raise BackendError("the spec has no outputs to export", hint="list them under outputs:")
    ops = Plan(ir).needed([f"output:{k}" for k in ir.outputs])
    why = {n: r for n in ops if (r := _refusal(ir, n)) is not None}
    if why:
        raise _op_error(ir, list(why), why)

    program = TorchProgram(ir, CompileOptions(dtype=dtype, device="cpu"))
    model = program.new_model()
    model.load_params(params)
    model.eval()
    read = {a for n in ops for a in ir.node(n).inputs}
    names = [i for i in ir.inputs if i in read]
    examples, dynamic = _examples(ir, names, program.dtype)
    wrapper = _Outputs(model, names)
    path = Path(path)
    try:
        _export(wrapper, examples, path, names, list(ir.outputs), opset, dynamic)
    except BackendError:
        raise
    except Exception as e:  # noqa: BLE001 - any exporter failure is reported below
        culprits = _culprits(ir, ops, program)
        if culprits:
            raise _op_error(ir, list(culprits), culprits) from None
        raise BackendError(f"ONNX export failed: {_short(e)}") from None
    _check_opset(path, opset)
    return path


def _refusal(ir: IR, nid: str) -> str | None:
    """Why op node ``nid`` cannot export (:data:`NOT_EXPORTABLE`, :data:`NOT_EXPORTABLE_WITH`),
    or None."""
    node = ir.node(nid)
    if node.op in NOT_EXPORTABLE:
        return NOT_EXPORTABLE[node.op]
    attr, reason = NOT_EXPORTABLE_WITH.get(node.op, ("", ""))
    return reason if attr and getattr(node.attrs, attr) else None


def _check_opset(path: Path, opset: int) -> None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    got = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if got != opset:
        path.unlink(missing_ok=True)
        raise BackendError(
            f"torch.onnx could not convert this graph to opset {opset} (it wrote {got})",
            hint=f"export with opset {DEFAULT_OPSET} or newer",
        )


class _Outputs(torch.nn.Module):
    """Positional inputs in, a tuple of outputs out: the calling convention ONNX wants."""

    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model(dict(zip(self.names, xs))).values())


def _examples(
    ir: IR, names: list[str], dtype: torch.dtype
) -> tuple[tuple[torch.Tensor, ...], Any]:
    sizes: dict[str, int] = {}
    dims: dict[str, Any] = {}
    tensors, shapes = [], []
    for name in names:
        t = ir.type(name)
        shape, dyn = [], {}
        for axis, d in enumerate(t.shape):
            if isinstance(d, str):
                sizes.setdefault(d, _EXAMPLE_SIZES[len(sizes) % len(_EXAMPLE_SIZES)])
                dims.setdefault(d, torch.export.Dim(d))
                dyn[axis] = dims[d]
                shape.append(sizes[d])
            else:
                shape.append(d)
        if t.dtype == "int":
            tensors.append(torch.zeros(shape, dtype=torch.int64))
        else:
            tensors.append(torch.randn(shape, generator=torch.Generator().manual_seed(0),
                                       dtype=dtype))
        shapes.append(dyn or None)
    # forward(*xs) takes one var-positional argument: its shapes nest one level down.
    return tuple(tensors), ((tuple(shapes),) if dims else None)


def _export(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str],
            outputs: list[str], opset: int, dynamic: Any) -> None:
    with _quiet():
        nbytes = sum(t.numel() * t.element_size() for t in module.state_dict().values())
        torch.onnx.export(
            module, args, str(path), input_names=inputs, output_names=outputs,
            opset_version=opset, dynamic_shapes=dynamic, dynamo=True, verbose=False,
            # One self-contained file unless protobuf's 2 GiB limit forces a side file.
            external_data=nbytes > EXTERNAL_DATA_BYTES,
        )


def _culprits(ir: IR, ops: list[str], program: Any) -> dict[str, str]:
    """Export each op alone on its first registry sample; the ops that fail, with why."""

    tried: dict[str, str | None] = {}
    out: dict[str, str] = {}
    for n in ops:
        op = ir.node(n).op
        if op not in tried:
            tried[op] = _probe(op, KERNELS[op], iter_samples, program.dtype)
        if tried[op] is not None:
            out[n] = tried[op]  # type: ignore[assignment]
    return out


def _probe(op: str, kernel: Any, iter_samples: Any, dtype: torch.dtype) -> str | None:
    """Why ``op`` alone fails to export on its first registry sample, or None."""


    opdef = REGISTRY[op]
    sample = next(iter(iter_samples(opdef.attrs)), None)
    if sample is None:
        return None
    attrs = opdef.attrs(**sample.attrs)
    args: list[Any] = []
    for inp in opdef.inputs:  # the kernel convention: inputs, then parameters, then state
        if inp.name in sample.inputs:
            value = sample.inputs[inp.name]
            args += list(value) if inp.variadic else [value]
    arrays = [np.asarray(a) for a in args]
    types = [TensorType(a.shape, "int" if a.dtype.kind in "iub" else "float") for a in arrays]
    extra = list(attrs.params(*types)) + list(attrs.state(*types))
    arrays += [np.asarray(sample.inputs[k], dtype=np.float64) for k in extra]
    tensors = [torch.as_tensor(a) for a in arrays]
    tensors = [t.to(dtype) if t.is_floating_point() else t for t in tensors]
    kw = attrs.kernel_attrs()
    if opdef.uses_training:
        kw["training"] = False
    noise = attrs.noise() if opdef.stochastic else None
    if noise is not None:
        kw["noise"] = torch.rand(tensors[noise.like].shape, dtype=dtype)

    class One(torch.nn.Module):
        def forward(self, *xs: torch.Tensor) -> Any:
            out = kernel(*xs, **kw)
            return out[0] if opdef.has_state else out

    with tempfile.TemporaryDirectory() as tmp:
        try:
            _export(One(), tuple(tensors), Path(tmp) / "op.onnx", [], [], DEFAULT_OPSET, None)
        except Exception as e:  # noqa: BLE001
            return _short(e)
    return None


def _op_error(ir: IR, nodes: list[str], why: dict[str, str]) -> BackendError:
    first = nodes[0]
    listed = ", ".join(f"'{n}' ({ir.node(n).op})" for n in nodes)
    notes = [(f"'{n}' ({ir.node(n).op}): {why[n]}", ir.node(n).src) for n in nodes]
    return BackendError(
        f"cannot export to ONNX: op{'s' if len(nodes) > 1 else ''} {listed} "
        f"{'have' if len(nodes) > 1 else 'has'} no ONNX form",
        ir.node(first).src, notes=notes,
        hint="export a spec whose outputs do not depend on these ops",
    )


def _require_exporter() -> None:
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        raise BackendError(
            "ONNX export needs the onnx and onnxscript packages",
            hint="pip install 'graphspec[onnx]'",
        ) from None


def _short(e: BaseException) -> str:
    """The innermost cause's first line: the exporter wraps the informative error twice."""
    while e.__cause__ is not None:
        e = e.__cause__
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


@contextlib.contextmanager
def _quiet() -> Any:
    """The exporter reports progress on stdout and through logging; keep the CLI clean."""
    names = ("torch.onnx", "torch.export", "torch._export", "torch._dynamo", "onnxscript")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
