"""Kernels for graphspec.ops.embedding."""

import torch.nn.functional as F

from graphspec_torch.kernels import kernel


@kernel("embedding")
def embedding(ids, weight, *, padding_idx):
    # Token ids were checked against the vocabulary where the data entered (loading, the
    # programs' input check), so this kernel does not synchronize to check them again.
    return F.embedding(ids, weight, padding_idx)
