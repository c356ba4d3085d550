"""Helpers torch kernels may share (none are needed yet).

Define a helper here as a plain function over ``torch``, ``F``, ``nn`` and ``math`` and call it
from a kernel (``from graphspec_torch.kernels._prelude import helper``): the code generator
copies every helper a kernel reads into the generated module (graphspec.codegen.kernels).
"""
