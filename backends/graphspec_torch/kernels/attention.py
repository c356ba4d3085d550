"""Kernels for graphspec.ops.attention."""

import torch
import torch.nn.functional as F

from graphspec_torch.kernels import kernel


@kernel("soft_attention")
def soft_attention(x, weight, bias=None, *, output):
    s = x @ weight + bias if bias is not None else x @ weight
    a = torch.softmax(s, dim=-1)
    y = (a.unsqueeze(-1) if x.dim() == 3 else a) * x
    return y.sum(dim=1, keepdim=x.dim() == 2) if output == "sum" else y


@kernel("scaled_dot_product_attention")
def scaled_dot_product_attention(q, k, v, *, causal, scale):
    # torch's is_causal masks j > i (top-left aligned), as the op documents.
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)


@kernel("hard_attention")
def hard_attention(x, weight, bias=None, *, k, estimator, sample, training, noise=None):
    s = x @ weight + bias if bias is not None else x @ weight
    p = s
    if sample and training:  # Gumbel-top-k: the top k of s + Gumbel noise draw k positions
        p = s - torch.log(-torch.log(noise[..., 0] if x.dim() == 3 else noise))
    top = torch.topk(p.detach(), k, dim=-1).indices
    mask = torch.zeros_like(s, requires_grad=False).scatter_(-1, top, 1.0)
    if estimator == "straight_through":
        # Forward value: exactly the k-hot mask; backward: that of k * softmax(s).
        a = k * torch.softmax(s, dim=-1)
        mask = mask + (a - a.detach())
    return x * (mask.unsqueeze(-1) if x.dim() == 3 else mask)
