"""``graphspec verify``: do the backends compute the same numbers for a spec?

compare.py runs the backends and compares them (``verify``); finite_differences.py checks the
reference's gradients against its own loss; blame.py finds the node where a disagreement
starts; steps.py compares optimizer trajectories; inputs.py draws the batches and noise they
share; tolerances.py is the one tolerance table; report.py holds the rows and their rendering.
"""

from graphspec.verify.compare import DEFAULT_STEPS, full_precision, verify
from graphspec.verify.finite_differences import fd_exempt, gradient_cuts
from graphspec.verify.report import Report, Row, Tol
from graphspec.verify.tolerances import FD_EPS, TOLERANCES, op_tolerance, tolerance

__all__ = [
    "DEFAULT_STEPS", "FD_EPS", "TOLERANCES", "Report", "Row", "Tol", "fd_exempt",
    "full_precision", "gradient_cuts", "op_tolerance", "tolerance", "verify",
]
