"""Checkpoints and analysis results are unpacked only within a bound read from the archive's
directory, so a small crafted .npz cannot make np.load allocate without limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphspec import regular_file
from graphspec.analysis.plots import _load_result
from graphspec.errors import CheckpointError, GraphspecError
from graphspec.train import checkpoint


def test_a_checkpoint_over_the_bound_is_refused_before_unpacking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.npz"
    np.savez(path, **{"param/w": np.zeros(1000)})  # 8,000 bytes of data
    assert checkpoint.load_params(path)["w"].shape == (1000,)
    monkeypatch.setattr(regular_file, "MAX_NPZ_BYTES", 4000)
    with pytest.raises(CheckpointError, match="unpacks to .* over the 4,000-byte limit"):
        checkpoint.load_params(path)


def test_an_analysis_result_over_the_bound_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    np.savez(tmp_path / "r.npz", a=np.zeros(1000))
    entry = {"files": ["r.npz"]}
    assert _load_result(tmp_path, entry)["a"].shape == (1000,)
    monkeypatch.setattr(regular_file, "MAX_NPZ_BYTES", 4000)
    with pytest.raises(GraphspecError, match="cannot read .*r.npz: it unpacks to"):
        _load_result(tmp_path, entry)
