"""The error every problem with an ONNX file raises (exit 1, located at the file)."""

from __future__ import annotations

from graphspec.errors import GraphspecError


class OnnxImportError(GraphspecError):
    """An ONNX file that cannot be read, checked or expressed as a spec."""
