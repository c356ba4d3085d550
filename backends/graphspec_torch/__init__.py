"""graphspec's PyTorch backend (CUDA when present): a generated nn.Module, native training."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphspec.backend import CompileOptions
from graphspec.ir.graph import IR

if TYPE_CHECKING:
    from graphspec_torch.program import TorchProgram


class TorchBackend:
    name = "torch"

    def compile(self, ir: IR, options: CompileOptions | None = None) -> TorchProgram:
        from graphspec_torch.program import TorchProgram

        return TorchProgram(ir, options or CompileOptions())

    @property
    def distributed(self) -> Any:
        """Data-parallel training (torchrun, DistributedDataParallel): graphspec.train.parallel
        calls ``launch`` and ``join``; imported only when asked for."""
        from graphspec_torch import distributed

        return distributed


backend = TorchBackend()
