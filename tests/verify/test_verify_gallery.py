"""Every spec in the gallery passes ``graphspec verify``: numpy against torch in float64, with
optimizer steps, and the reference against finite differences."""

from __future__ import annotations

import pytest
from paths import GALLERY

from graphspec.verify import verify

STEPS = 5  # enough to exercise the optimizer state; tests/train/test_trajectories.py runs longer


@pytest.mark.parametrize("path", GALLERY, ids=[p.stem for p in GALLERY])
def test_gallery_spec_verifies(path):
    report = verify(path, steps=STEPS)
    assert report.ok, report.render(only_failures=True)
    checks = {r.check for r in report.rows}
    assert "output" in checks
    if "loss" in checks:
        assert {"grad", "fd"} <= checks, checks
