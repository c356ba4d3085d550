"""graphspec's NumPy reference backend: hand-written backprop, op by op."""

from __future__ import annotations

from graphspec.backend import CompileOptions
from graphspec.ir.graph import IR


class NumpyBackend:
    name = "numpy"

    def compile(self, ir: IR, options: CompileOptions | None = None) -> NumpyProgram:  # noqa: F821
        from graphspec_numpy.program import NumpyProgram

        return NumpyProgram(ir, options or CompileOptions())


backend = NumpyBackend()
