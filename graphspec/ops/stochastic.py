"""Stochastic nodes: sampling with a declared gradient estimator, log-probabilities, baselines.

A sample has no derivative with respect to its distribution's parameters (a Bernoulli or
categorical draw is piecewise constant), so each sampler declares how gradients cross it:

* ``reparameterized`` (``gaussian_sample``): ``z = mu + eps * sigma`` with ``eps`` the
  op's noise: the pathwise derivative (Kingma & Welling, 2014);
* ``straight_through``: the backward pass treats the sample as its mean (``p``, or
  ``softmax(logits)``), so the cotangent passes through it (Bengio et al., 2013);
* ``reinforce``: no gradient through the sample; the compiler adds the score-function
  surrogate ``stop_gradient(cost - baseline) * log_prob(z)`` to the objective
  (``graphspec.ir.estimators``; Williams, 1992; Schulman et al., 2015).  ``cost`` names a
  per-example cost node (``[batch]``) and ``baseline: mean`` subtracts the other examples'
  mean cost; both only apply to ``reinforce``.

Noise comes from the core (verification) or the backend (training): standard normal for
``gaussian_sample``, uniform on [0, 1) for the others, shaped like the first input.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import model_validator

from graphspec.ops.registry import (
    Attrs,
    Input,
    Noise,
    Sample,
    ShapeError,
    TensorType,
    broadcast,
    op,
)

Scale = Literal["log_sigma", "log_var", "sigma"]
SCALE_DOC = "log σ (``log_sigma``, the default), log σ² (``log_var``) or σ > 0 (``sigma``)"


class Sampler(Attrs):
    """Base of the sample ops: the estimator and, for ``reinforce``, the cost and baseline.

    ``log_prob_attrs()`` gives the ``log_prob`` attributes of the sampled distribution,
    whose parameters are the op's inputs in order: the REINFORCE pass builds
    ``log_prob(z, *inputs)`` from it.
    """

    estimator: str
    cost: str | None = None
    baseline: Literal["none", "mean"] = "none"
    graph_only: ClassVar[frozenset[str]] = frozenset({"cost", "baseline"})

    @model_validator(mode="after")
    def _reinforce_only(self) -> Sampler:
        # Judged by value, not by which keys were written: a dumped model must validate.
        if self.estimator != "reinforce":
            for key, unset in (("cost", None), ("baseline", "none")):
                if getattr(self, key) != unset:
                    raise ValueError(
                        f"'{key}' applies to estimator: reinforce only "
                        f"(this sample is {self.estimator})"
                    )
        return self

    def log_prob_attrs(self) -> dict[str, Any]:  # pragma: no cover - always overridden
        raise NotImplementedError

    @property
    def fd_exempt(self) -> str | None:
        # A discrete REINFORCE sample needs no exemption: its zero VJP is its derivative
        # away from the thresholds (the surrogate's stop_gradient exempts the graph's loss).
        if self.estimator == "straight_through":
            return "straight-through: the backward pass treats the sample as its mean"
        return None

    def noise(self) -> Noise | None:
        return Noise("uniform", 0)


@op("gaussian_sample", inputs=["mu", "scale"], stochastic=True)
class GaussianSample(Sampler):
    """A normal sample ``z = mu + eps * sigma``, ``eps ~ N(0, 1)`` (reparameterized).

    ``scale`` gives σ as log σ (``parameterization: log_sigma``, the default: any real
    value is valid), log σ² (``log_var``) or σ > 0 itself (``sigma``); it may broadcast to
    ``mu``'s shape (a learned ``[d]`` scale for a ``[batch, d]`` mean); next to
    ``kl_normal``, which takes log σ², use ``log_var``.  The default
    ``estimator: reparameterized`` differentiates the path: ``dz/dmu = 1``,
    ``dz/dsigma = eps``.  ``estimator: reinforce`` blocks that path and trains ``mu`` and
    ``scale`` through the score-function surrogate instead (to compare the two estimators'
    variance on one model).

    REINFORCE options: ``cost: NODE`` names a per-example cost (``[batch]``, e.g. the loss
    before its mean over the batch) for the objective ``mean_i cost_i``; without it the
    cost is the total loss.  ``baseline: mean`` subtracts the other examples' mean cost.
    """

    parameterization: Scale = "log_sigma"
    estimator: Literal["reparameterized", "reinforce"] = "reparameterized"

    def infer(self, mu: TensorType, scale: TensorType) -> TensorType:
        _float("gaussian_sample", mu, scale)
        try:
            shape = broadcast(mu, scale)
        except ShapeError:
            raise ShapeError(f"scale {scale} does not broadcast to mu {mu}") from None
        if shape != mu.shape:
            raise ShapeError(f"scale {scale} would broadcast mu {mu} to a new shape")
        return mu

    def noise(self) -> Noise | None:
        return Noise("normal", 0)

    @property
    def fd_exempt(self) -> str | None:
        if self.estimator == "reinforce":
            return "REINFORCE: no pathwise gradient; the score-function surrogate trains it"
        return None

    def log_prob_attrs(self) -> dict[str, Any]:
        return {"dist": "normal", "parameterization": self.parameterization}

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"mu": rng.normal(size=(4, 3)), "scale": rng.normal(size=(4, 3))})
        yield Sample({"mu": rng.normal(size=(4, 3)), "scale": rng.uniform(0.5, 2.0, size=3)},
                     {"parameterization": "sigma"}, note="sigma, broadcast over the batch")
        yield Sample({"mu": rng.normal(size=(2, 3)), "scale": rng.normal(size=(2, 3))},
                     {"parameterization": "log_var"}, note="log variance")
        yield Sample({"mu": rng.normal(size=(4, 3)), "scale": rng.normal(size=(4, 3))},
                     {"estimator": "reinforce"},
                     note="REINFORCE: no pathwise gradient")


@op("bernoulli_sample", inputs=["p"], stochastic=True)
class BernoulliSample(Sampler):
    """A 0/1 sample ``z = (u < p)``, ``u ~ U[0, 1)``, as floats of ``p``'s shape.

    ``logits: true`` reads ``p`` as a logit (``P(z = 1) = sigmoid(p)``), which stays
    exact where probabilities saturate.  ``estimator`` (required): ``straight_through``
    passes the cotangent to the probability unchanged (``dz/dP = 1``; through the sigmoid
    with ``logits: true``); ``reinforce`` gives ``p`` no gradient through the sample and
    adds the score-function surrogate to the objective.

    REINFORCE options: ``cost: NODE`` names a per-example cost (``[batch]``, e.g. the loss
    before its mean over the batch) for the objective ``mean_i cost_i``; without it the
    cost is the total loss.  ``baseline: mean`` subtracts the other examples' mean cost.
    """

    logits: bool = False
    estimator: Literal["reinforce", "straight_through"]

    def infer(self, p: TensorType) -> TensorType:
        _float("bernoulli_sample", p)
        return p

    def log_prob_attrs(self) -> dict[str, Any]:
        return {"dist": "bernoulli", "logits": self.logits}

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        def away(p: np.ndarray) -> np.ndarray:  # u at least 0.05 from p: no flips under FD
            u = rng.uniform(size=p.shape)
            return np.where(np.abs(u - p) < 0.05, (p + 0.5) % 1.0, u)

        p = rng.uniform(0.1, 0.9, size=(4, 3))
        yield Sample({"p": p, "noise": away(p)}, {"estimator": "reinforce"})
        p = rng.uniform(0.1, 0.9, size=(4, 3))
        yield Sample({"p": p, "noise": away(p)}, {"estimator": "straight_through"},
                     note="straight-through")
        t = rng.normal(size=(3, 2)) * 2
        yield Sample({"p": t, "noise": away(1 / (1 + np.exp(-t)))},
                     {"estimator": "straight_through", "logits": True},
                     note="logits, straight-through")
        t = rng.normal(size=(5,))
        yield Sample({"p": t, "noise": away(1 / (1 + np.exp(-t)))},
                     {"estimator": "reinforce", "logits": True}, note="logits")


@op("categorical_sample", inputs=["logits"], stochastic=True)
class CategoricalSample(Sampler):
    """A one-hot sample from ``softmax(logits)`` over the last axis (Gumbel-max).

    ``z = one_hot(argmax(logits - log(-log u)))`` with ``u ~ U[0, 1)`` shaped like
    ``logits``.  ``estimator`` (required): ``straight_through`` backpropagates as if ``z``
    were ``softmax(logits)`` (its mean); ``reinforce`` gives the logits no gradient through
    the sample and adds the score-function surrogate to the objective.

    REINFORCE options: ``cost: NODE`` names a per-example cost (``[batch]``, e.g. the loss
    before its mean over the batch) for the objective ``mean_i cost_i``; without it the
    cost is the total loss.  ``baseline: mean`` subtracts the other examples' mean cost.
    """

    estimator: Literal["reinforce", "straight_through"]

    def infer(self, logits: TensorType) -> TensorType:
        _float("categorical_sample", logits)
        if logits.rank < 1:
            raise ShapeError(f"categorical_sample needs logits with a class axis, got {logits}")
        return logits

    def log_prob_attrs(self) -> dict[str, Any]:
        return {"dist": "categorical"}

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        def separated(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
            while True:  # perturbed logits 0.05 apart: finite differences never flip the argmax
                logits, u = rng.normal(size=shape), rng.uniform(0.02, 0.98, size=shape)
                top2 = np.sort(logits - np.log(-np.log(u)), axis=-1)[..., -2:]
                if np.min(top2[..., 1] - top2[..., 0]) > 0.05:
                    return logits, u

        logits, u = separated((4, 5))
        yield Sample({"logits": logits, "noise": u}, {"estimator": "reinforce"})
        logits, u = separated((4, 5))
        yield Sample({"logits": logits, "noise": u}, {"estimator": "straight_through"},
                     note="straight-through")
        logits, u = separated((2, 3, 4))
        yield Sample({"logits": logits, "noise": u}, {"estimator": "straight_through"},
                     note="rank 3, straight-through")


@op("log_prob", inputs=[Input("z", differentiable=False, dtype="any"), "theta",
                        Input("scale", optional=True)])
class LogProb(Attrs):
    """Log-density of a value ``z`` under a distribution, summed over the last (event) axis.

    ``dist: normal``, inputs ``(z, mu, scale)``:
    ``sum(-((z - mu) / σ)² / 2 - log σ - log(2π) / 2)``, with ``scale`` giving σ as in
    ``gaussian_sample`` (``parameterization``: log σ by default, ``log_var``, ``sigma``).

    ``dist: bernoulli``, inputs ``(z, p)``: ``sum(z log p + (1 - z) log(1 - p))`` for
    ``0 < p < 1``; with ``logits: true``, ``sum(z p - softplus(p))`` for a logit ``p``.

    ``dist: categorical``, inputs ``(z, logits)`` with ``z`` one-hot:
    ``sum(z * log_softmax(logits))``.

    The inputs broadcast; a ``[batch, n]`` value gives ``[batch]``.  Differentiable in the
    distribution's parameters, not in ``z`` (a sample: the score function's ``∇ log p``).
    """

    dist: Literal["normal", "bernoulli", "categorical"]
    parameterization: Scale = "log_sigma"
    logits: bool = False

    @model_validator(mode="after")
    def _options_fit_dist(self) -> LogProb:
        if self.parameterization != "log_sigma" and self.dist != "normal":
            raise ValueError("'parameterization' applies to dist: normal only")
        if self.logits and self.dist != "bernoulli":
            raise ValueError("'logits' applies to dist: bernoulli only (categorical always "
                             "takes logits)")
        return self

    def infer(self, z: TensorType, theta: TensorType, *scale: TensorType) -> TensorType:
        _float("log_prob", z, theta, *scale)
        want = 3 if self.dist == "normal" else 2
        if 2 + len(scale) != want:
            inputs = "(z, mu, scale)" if self.dist == "normal" else (
                "(z, p)" if self.dist == "bernoulli" else "(z, logits)")
            raise ShapeError(f"log_prob with dist: {self.dist} takes the inputs {inputs}, "
                             f"got {2 + len(scale)}")
        try:
            shape = broadcast(z, theta, *scale)
        except ShapeError:
            shapes = ", ".join(str(t) for t in (z, theta, *scale))
            raise ShapeError(f"log_prob's inputs do not broadcast: {shapes}") from None
        if len(shape) < 1:
            raise ShapeError("log_prob sums over the last (event) axis; the inputs are scalars")
        return TensorType(shape[:-1])

    def flops(self, *types: TensorType, out: TensorType) -> int:
        return 6 * max(t.numel() for t in types)

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        n = {"dist": "normal"}
        yield Sample({"z": rng.normal(size=(4, 3)), "theta": rng.normal(size=(4, 3)),
                      "scale": rng.normal(size=(4, 3))}, n)
        yield Sample({"z": rng.normal(size=(4, 3)), "theta": rng.normal(size=(4, 3)),
                      "scale": rng.uniform(0.5, 2.0, size=3)},
                     {**n, "parameterization": "sigma"}, note="sigma, broadcast")
        yield Sample({"z": rng.normal(size=(2, 2, 3)), "theta": rng.normal(size=(2, 1, 3)),
                      "scale": rng.normal(size=())},
                     {**n, "parameterization": "log_var"}, note="log variance, broadcast")
        z = (rng.uniform(size=(4, 3)) < 0.5).astype(float)
        yield Sample({"z": z, "theta": rng.uniform(0.1, 0.9, size=(4, 3))},
                     {"dist": "bernoulli"}, note="bernoulli")
        yield Sample({"z": z, "theta": rng.normal(size=(4, 3)) * 3},
                     {"dist": "bernoulli", "logits": True}, note="bernoulli logits")
        z = np.eye(5)[rng.integers(0, 5, size=4)]
        yield Sample({"z": z, "theta": rng.normal(size=(4, 5))}, {"dist": "categorical"},
                     note="categorical")
        yield Sample({"z": z, "theta": rng.normal(size=(5,))}, {"dist": "categorical"},
                     note="categorical, logits shared by the batch")


@op("leave_one_out_mean", inputs=["x"])
class LeaveOneOutMean(Attrs):
    """``y_i = (sum_j x_j - x_i) / (n - 1)`` along ``axis``: the mean of the other entries.

    REINFORCE's ``baseline: mean``: each example's baseline is the mean cost of the other
    examples in the batch, independent of its own sample, so the estimator stays unbiased
    (a mean including the example itself scales the expected gradient by ``(n - 1) / n``).
    ``y = 0`` when ``n == 1``.
    """

    axis: int = 0

    def infer(self, x: TensorType) -> TensorType:
        _float("leave_one_out_mean", x)
        if not -x.rank <= self.axis < x.rank:
            raise ShapeError(f"axis {self.axis} is out of range for a rank-{x.rank} tensor {x}")
        return x

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        yield Sample({"x": rng.normal(size=(5,))})
        yield Sample({"x": rng.normal(size=(3, 4))}, {"axis": -1}, note="last axis")
        yield Sample({"x": rng.normal(size=(1, 2))}, note="one entry: zero baseline")


def _float(name: str, *types: TensorType) -> None:
    for t in types:
        if t.dtype != "float":
            raise ShapeError(f"{name} takes float tensors, got {t}")
