"""graphspec's NumPy reference backend: hand-written backprop, op by op."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graphspec.backend import Arrays, Capabilities, CompileOptions
from graphspec.ir.graph import IR

if TYPE_CHECKING:
    from graphspec_numpy.program import NumpyProgram


def write_initial_params(ir: IR, params: Arrays, module_path: Path) -> Path:
    """``graphspec compile``: the parameters beside the module as ``<module>.npz`` with keys
    ``param/<name>`` (no pickle), which the module's ``load_initial_params`` reads."""
    path = Path(module_path).with_suffix(".npz")
    # (typed Any: numpy's stubs would take an ndarray value for savez's allow_pickle)
    arrays: dict[str, Any] = {f"param/{k}": np.asarray(v) for k, v in params.items()}
    with path.open("wb") as f:
        np.savez(f, **arrays)
    return path


class NumpyBackend:
    name = "numpy"
    capabilities = Capabilities(
        noise_injection=True,
        locate_nonfinite=True,
        reference=True,
        write_initial_params=write_initial_params,
        single_process="is graphspec's single-process reference (hand-written backprop, no "
        "process group)",
    )

    def compile(self, ir: IR, options: CompileOptions | None = None) -> NumpyProgram:
        # deferred: the program imports the kernels and the code generator
        from graphspec_numpy.program import NumpyProgram

        return NumpyProgram(ir, options or CompileOptions())


backend = NumpyBackend()
