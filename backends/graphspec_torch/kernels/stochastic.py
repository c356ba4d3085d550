"""Kernels for graphspec.ops.stochastic.

Straight-through samples are written ``hard + (soft - soft.detach())``: the added term is
exactly zero in the forward pass (so the value is the sample, bit for bit) and carries the
gradient of ``soft`` in the backward pass.  REINFORCE samples are detached: their gradient
comes from the ``log_prob`` surrogate the compiler adds.
"""

import torch
import torch.nn.functional as F

from graphspec_torch.kernels import kernel


@kernel("gaussian_sample")
def gaussian_sample(mu, scale, *, parameterization, estimator, noise):
    if parameterization == "log_sigma":
        sigma = torch.exp(scale)
    elif parameterization == "log_var":
        sigma = torch.exp(0.5 * scale)
    else:
        sigma = scale
    z = mu + noise * sigma
    return z.detach() if estimator == "reinforce" else z


@kernel("bernoulli_sample")
def bernoulli_sample(p, *, logits, estimator, noise):
    prob = torch.sigmoid(p) if logits else p
    z = (noise < prob).to(p.dtype)
    if estimator == "straight_through":
        z = z + (prob - prob.detach())
    return z


@kernel("categorical_sample")
def categorical_sample(logits, *, estimator, noise):
    idx = torch.argmax(logits.detach() - torch.log(-torch.log(noise)), dim=-1)
    z = F.one_hot(idx, logits.shape[-1]).to(logits.dtype)
    if estimator == "straight_through":
        a = torch.softmax(logits, dim=-1)
        z = z + (a - a.detach())
    return z


@kernel("log_prob")
def log_prob(z, theta, scale=None, *, dist, parameterization, logits):
    if dist == "normal":
        if parameterization == "log_sigma":
            log_sigma = scale
        elif parameterization == "log_var":
            log_sigma = 0.5 * scale
        else:
            log_sigma = torch.log(scale)
        r = (z - theta) * torch.exp(-log_sigma)
        lp = -0.5 * r * r - log_sigma - 0.9189385332046727  # log(2π) / 2
    elif dist == "bernoulli":
        if logits:
            # softplus as max(x, 0) + log1p(exp(-|x|)): F.softplus switches to x above 20,
            # which differs from the exact value by more than float64's forward tolerance.
            lp = z * theta - (torch.clamp(theta, min=0) + torch.log1p(torch.exp(-theta.abs())))
        else:
            lp = z * torch.log(theta) + (1 - z) * torch.log1p(-theta)
    else:
        lp = z * torch.log_softmax(theta, dim=-1)
    return lp.sum(dim=-1)


@kernel("leave_one_out_mean")
def leave_one_out_mean(x, *, axis):
    n = x.shape[axis]
    if n < 2:
        return torch.zeros_like(x)
    return (x.sum(dim=axis, keepdim=True) - x) / (n - 1)
