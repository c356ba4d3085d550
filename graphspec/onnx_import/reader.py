"""Load an ONNX file: bounded read, protobuf parse, onnx's checker, opset range."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graphspec import regular_file
from graphspec.errors import Location
from graphspec.onnx_import.errors import OnnxImportError

# protobuf cannot serialize a message over 2 GiB: a larger .onnx keeps its weights in
# external data files, which the importer does not follow (see load_model).
MAX_ONNX_BYTES = 2 * 2**30
# The opsets whose semantics the translation table was written against: 13 moved Softmax
# to one axis and ReduceSum's axes to an input, 18 the other reductions' axes; 21 is the
# newest checked.  A model of another opset is refused rather than read by guesses.
MIN_OPSET, MAX_OPSET = 13, 21


def require_onnx() -> Any:
    """The onnx module, or a clear error naming the extra to install."""
    try:
        import onnx  # deferred: an optional dependency, needed only to import models
    except ImportError:
        raise OnnxImportError(
            "graphspec import needs the onnx package",
            hint="pip install 'graphspec[onnx]'",
        ) from None
    return onnx


def read_bytes(path: Path, limit: int = MAX_ONNX_BYTES) -> bytes:
    where = Location(str(path))
    try:
        with regular_file.open_regular(path) as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise OnnxImportError(f"no such file: {path}", where) from None
    except regular_file.NotARegularFile as e:
        raise OnnxImportError(f"{path} is {e.kind}, not an ONNX file", where) from None
    except OSError as e:
        raise OnnxImportError(f"cannot read {path}: {e.strerror or e}", where) from None
    if len(data) > limit:
        raise OnnxImportError(
            f"{path} is over the {limit:,}-byte limit of an ONNX file",
            where,
            hint="a model this large keeps its weights in external data, which "
            "graphspec import does not read",
        )
    return data


def load_model(path: str | Path, limit: int = MAX_ONNX_BYTES) -> Any:
    """The checked ModelProto of ``path``; OnnxImportError for anything else."""
    onnx = require_onnx()
    path = Path(path)
    where = Location(str(path))
    data = read_bytes(path, limit)
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and its relatives
        raise OnnxImportError(
            f"{path} is not an ONNX model (or it is truncated): {_first_line(e)}", where
        ) from None
    if not model.HasField("graph") or not model.opset_import:
        raise OnnxImportError(
            f"{path} is not an ONNX model (or it is truncated): it has no graph or no opset",
            where,
        )
    _load_external(onnx, model, path, limit - len(data))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
        raise OnnxImportError(
            f"{path} uses ONNX opset {opset}; graphspec import supports opsets "
            f"{MIN_OPSET} to {MAX_OPSET}",
            where,
            hint=f"convert it with onnx.version_converter.convert_version(model, {MAX_OPSET})",
        )
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # noqa: BLE001 - ValidationError, InferenceError
        raise OnnxImportError(
            f"{path} fails onnx's checker (a corrupt or truncated file?): {_first_line(e)}",
            where,
        ) from None
    return model


def _load_external(onnx: Any, model: Any, path: Path, budget: int) -> None:
    """Read the weights a model keeps in files beside it (torch.onnx.export writes
    ``model.onnx.data``): each named file must lie in the model's folder (no absolute path,
    no ``..``), be a regular file, and all of them together stay within the byte limit."""
    where = Location(str(path))
    files: set[str] = set()
    for t in model.graph.initializer:
        if int(t.data_location) != 1:  # TensorProto.EXTERNAL
            continue
        info = {e.key: e.value for e in t.external_data}
        name = info.get("location", "")
        if not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise OnnxImportError(
                f"{path}: initializer '{t.name}' names external data '{name}' outside the "
                "model's folder",
                where,
            )
        files.add(name)
    total = 0
    for name in sorted(files):
        total += len(read_bytes(path.parent / name, budget))
        if total > budget:
            raise OnnxImportError(
                f"{path} and its external data are over the byte limit of an ONNX model",
                where,
            )
    if files:
        try:
            onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
        except Exception as e:  # noqa: BLE001 - a short or missing data file
            raise OnnxImportError(
                f"{path}: cannot read its external data: {_first_line(e)}", where
            ) from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]
