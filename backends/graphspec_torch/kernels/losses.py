"""Kernels for graphspec.ops.losses."""

import torch
import torch.nn.functional as F

from graphspec_torch.kernels import kernel


def _classes_second(z):
    # torch's classification losses want the class axis at 1; graphspec keeps it last.
    return z.movedim(-1, 1) if z.dim() >= 3 else z


@kernel("mse")
def mse(pred, t):
    # Not F.mse_loss: it warns when the target broadcasts; the mean of the squares is the same.
    return ((pred - t.to(pred.dtype)) ** 2).mean()


@kernel("bce")
def bce(p, t):
    return F.binary_cross_entropy(p, t.to(p.dtype).expand_as(p))


@kernel("bce_with_logits")
def bce_with_logits(z, t):
    return F.binary_cross_entropy_with_logits(z, t.to(z.dtype).expand_as(z))


@kernel("cross_entropy")
def cross_entropy(z, t):
    if t.shape == z.shape:
        return F.cross_entropy(_classes_second(z), _classes_second(t.to(z.dtype)))
    return F.cross_entropy(_classes_second(z), t.reshape(z.shape[:-1]).long())


@kernel("nll")
def nll(log_p, t):
    return F.nll_loss(_classes_second(log_p), t.reshape(log_p.shape[:-1]).long())


@kernel("l1_penalty")
def l1_penalty(*params):
    return sum(p.abs().sum() for p in params)


@kernel("l2_penalty")
def l2_penalty(*params):
    return 0.5 * sum((p * p).sum() for p in params)


@kernel("kl_normal")
def kl_normal(mu, log_var, prior_mu=None, prior_log_var=None):
    # torch.distributions' closed form is an independent check of the formula in the op.
    Normal = torch.distributions.Normal
    q = Normal(mu, torch.exp(0.5 * log_var), validate_args=False)
    if prior_mu is None:
        p = Normal(torch.zeros_like(mu), torch.ones_like(mu), validate_args=False)
    else:
        p = Normal(prior_mu, torch.exp(0.5 * prior_log_var), validate_args=False)
    kl = torch.distributions.kl_divergence(q, p)
    return kl.sum() / (mu.numel() // mu.shape[-1])
