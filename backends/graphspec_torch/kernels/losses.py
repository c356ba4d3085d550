"""Kernels for graphspec.ops.losses."""

import torch
import torch.nn.functional as F

from graphspec_torch.kernels import kernel


@kernel("bce_with_logits")
def bce_with_logits(z, t):
    return F.binary_cross_entropy_with_logits(z, t.to(z.dtype))


@kernel("l2_penalty")
def l2_penalty(*params):
    return 0.5 * sum((p * p).sum() for p in params)
