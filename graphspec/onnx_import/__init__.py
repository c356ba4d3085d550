"""``graphspec import model.onnx -o model.yaml``: an ONNX graph as a readable spec.

reader.py loads the file (bounded, checked by onnx's checker, opset in range); translate.py
maps each ONNX node to graphspec nodes by a per-op table, folding constants and collecting
every node it cannot express; simplify.py drops the layout shuffles that cancel; blocks.py
finds repeated runs of nodes and makes them a block with ``repeat``; write.py emits the
YAML and the parameter file and checks that the spec it wrote loads and fits the parameters.
onnx is imported only here and below, and only when a command imports a model.
"""

from graphspec.onnx_import.errors import OnnxImportError
from graphspec.onnx_import.write import Imported, import_onnx

__all__ = ["Imported", "OnnxImportError", "import_onnx"]
