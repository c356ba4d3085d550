"""Procedures run on a model's initial or trained parameters, declared in the spec.

``analysis:`` lists them; the training driver runs ``at: init`` entries before the first
step and ``at: end`` entries on the final parameters, writing their results into the run
directory (indexed by ``analysis.json``), which ``graphspec report`` draws::

    analysis:
      - {procedure: grad_norms, at: init}
      - {procedure: fgsm, epsilons: [0, 0.05, 0.1, 0.2]}
      - {procedure: mc_predict, samples: 100}
      - {procedure: decision_boundary}
      - {procedure: estimator_variance, samples: 200, params: [mu, log_sigma]}
      - {procedure: state_grads}                     # an rnn or lstm: ‖∂L/∂h_t‖ over t

Each procedure is one module here, registered in :mod:`graphspec.analysis.registry`, and
runs through the backend-agnostic Program interface.
"""

from __future__ import annotations

# Importing a procedure's module registers it.
from graphspec.analysis import (  # noqa: F401
    decision_boundary,
    estimator_variance,
    fgsm,
    grad_norms,
    mc_predict,
    state_grads,
)
from graphspec.analysis.checks import check_adversarial, plan
from graphspec.analysis.registry import REGISTRY, Entry, Procedure
from graphspec.analysis.runner import INDEX, read_index, run_stage

__all__ = ["INDEX", "REGISTRY", "Entry", "Procedure", "check_adversarial", "plan",
           "read_index", "run_stage"]
