"""graphspec's PyTorch backend (CUDA when present): a generated nn.Module, native training."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from graphspec.backend import (
    Arrays,
    Capabilities,
    CompileOptions,
    DistributedTraining,
    OnnxExporter,
)
from graphspec.ir.graph import IR

if TYPE_CHECKING:
    from graphspec_torch.program import TorchProgram


def write_initial_params(ir: IR, params: Arrays, module_path: Path) -> Path:
    """``graphspec compile``: the parameters beside the module as ``<module>.pt``."""
    from graphspec_torch import codegen  # deferred: imports torch, only when asked

    return codegen.write_initial_params(ir, params, module_path)


def data_parallel() -> DistributedTraining:
    """Data-parallel training (torchrun, DistributedDataParallel): graphspec.train.parallel
    calls ``launch`` and ``join``."""
    from graphspec_torch import distributed  # deferred: torch, only for data-parallel runs

    return distributed


def onnx_exporter() -> OnnxExporter:
    """``graphspec export --onnx``: the forward graph as an ONNX model (torch.onnx)."""
    from graphspec_torch import export  # deferred: imports torch and onnx, only when asked

    return export.export_onnx


class TorchBackend:
    name = "torch"
    capabilities = Capabilities(
        noise_injection=True,
        write_initial_params=write_initial_params,
        distributed=data_parallel,
        onnx_export=onnx_exporter,
    )

    def compile(self, ir: IR, options: CompileOptions | None = None) -> TorchProgram:
        from graphspec_torch.program import TorchProgram  # deferred: imports torch

        return TorchProgram(ir, options or CompileOptions())


backend = TorchBackend()
