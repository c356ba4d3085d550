"""Kernels for graphspec.ops.losses."""

import torch
import torch.nn.functional as F

from graphspec_torch.kernels import kernel


def _classes_second(x, axis=-1):
    # torch's classification losses want the class axis at 1; graphspec's is ``axis``.
    return x.movedim(axis, 1) if x.dim() >= 2 else x


def _weights(class_weights, like):
    return None if class_weights is None else torch.tensor(class_weights, dtype=like.dtype,
                                                           device=like.device)


def _class_indices(t, pred, axis):
    # Integer targets: the prediction's shape without its class axis (torch's layout too).
    ax = axis % pred.dim()
    return t.reshape(tuple(pred.shape[:ax]) + tuple(pred.shape[ax + 1 :])).long()


# F.cross_entropy and F.nll_loss take ignore_index=-100 as their "none"; graphspec's None
# means no value is ignored, and the data checks keep every label in 0..classes-1.
_NO_IGNORE = -100


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
def cross_entropy(z, t, *, class_weights=None, ignore_index=None, label_smoothing=0.0, axis=-1,
                  reduction="mean"):
    w = _weights(class_weights, z)
    if t.shape == z.shape:
        target = _classes_second(t.to(z.dtype), axis)
    else:
        target = _class_indices(t, z, axis)
    ignore = _NO_IGNORE if ignore_index is None else ignore_index
    return F.cross_entropy(_classes_second(z, axis), target, w, ignore_index=ignore,
                           reduction=reduction, label_smoothing=label_smoothing)


@kernel("nll")
def nll(log_p, t, *, class_weights=None, ignore_index=None, label_smoothing=0.0, axis=-1,
        reduction="mean"):
    w = _weights(class_weights, log_p)
    lp = _classes_second(log_p, axis)
    target = _class_indices(t, log_p, axis)
    ignore = _NO_IGNORE if ignore_index is None else ignore_index
    loss = F.nll_loss(lp, target, w, ignore_index=ignore, reduction=reduction)
    if not label_smoothing:
        return loss
    # F.nll_loss has no label_smoothing: F.cross_entropy's, written out (its
    # cross_entropy_loss_label_smoothing in aten/src/ATen/native/LossNLL.cpp).
    c = 1 if lp.dim() >= 2 else 0  # the class axis (an unbatched [classes] input: 0)
    keep = target != ignore
    weighted = lp if w is None else lp * w.reshape((-1,) + (1,) * (lp.dim() - c - 1))
    spread = -weighted.sum(c) * keep
    if reduction == "sum":
        smooth = spread.sum()
    elif w is None:
        smooth = spread.sum() / keep.sum()
    else:
        smooth = spread.sum() / (w[torch.where(keep, target, 0)] * keep).sum()
    return (1 - label_smoothing) * loss + smooth * (label_smoothing / lp.shape[c])


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
