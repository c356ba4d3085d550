"""Every op's samples through the generated text: each op's kernels as a generated module
holds them (copied with their helpers, under the module's imports) compute what the
registered functions compute, bit for bit, on both backends.

Tests that call kernels in-process cannot see a kernel whose copy in a module would fail
(a helper the copy left behind: a NameError in every generated module); these can.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conformance import all_cases, missing_pieces

from graphspec_numpy import kernels
from graphspec_numpy.codegen import kernel_module
from graphspec_torch.codegen import kernel_module as torch_kernel_module
from graphspec_torch.kernels import KERNELS as TORCH

CASES = all_cases(lambda d: not missing_pieces(d))


def _flat(value):
    if isinstance(value, (tuple, list)):
        return [v for item in value for v in _flat(item)]
    return [value]


def _same(a, b, what):
    fa, fb = _flat(a), _flat(b)
    assert len(fa) == len(fb), what
    for x, y in zip(fa, fb):
        if x is None or y is None:
            assert x is None and y is None, what
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=what)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_numpy_kernels_run_from_the_generated_text(case):
    op = case.opdef.name
    module = kernel_module(op)
    copied = getattr(module, kernels.KERNELS[op].__name__)
    out, res = kernels.forward(op, case.args, case.kwargs, save=True)
    out2, res2 = kernels.forward(op, case.args, case.kwargs, save=True, fn=copied)
    _same(out, out2, f"{case.id}: forward")
    _same(res, res2, f"{case.id}: residuals")
    if op not in kernels.VJPS or not any(case.diff):
        return
    y = out[0] if case.opdef.has_state else out
    g = np.random.default_rng(1).standard_normal(np.shape(y))
    vjp = getattr(module, kernels.VJPS[op].__name__)
    _same(
        kernels.backward(op, g, y, case.args, case.kwargs, res),
        kernels.backward(op, g, y, case.args, case.kwargs, res2, fn=vjp),
        f"{case.id}: VJP",
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_torch_kernels_run_from_the_generated_text(case):
    op = case.opdef.name
    copied = getattr(torch_kernel_module(op), TORCH[op].__name__)
    kw = dict(case.kwargs)
    if "noise" in kw:
        kw["noise"] = torch.tensor(kw["noise"])
    args = [torch.tensor(a) for a in case.args]
    _same(
        [t.numpy() for t in _flat(TORCH[op](*args, **kw))],
        [t.numpy() for t in _flat(copied(*args, **kw))],
        f"{case.id}: torch forward",
    )
