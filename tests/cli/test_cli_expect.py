"""`graphspec train` checks the outcome a spec claims in its `expect:` section."""

from __future__ import annotations

from pathlib import Path

from graphspec.cli import main

SPEC = """\
graphspec: 1
name: tiny
inputs: {x: [batch, 2], y: [batch, 1]}
graph:
  - {id: logit, op: linear, in: x, units: 1}
loss:
  - {op: bce_with_logits, in: [logit, y]}
train:
  data: {source: blobs, samples: 64}
  epochs: 2
  metrics: [binary_accuracy]
expect:
  - "val_binary_accuracy >= 0"
  - "{claim}"
"""


def _run(tmp_path: Path, claim: str, *flags: str, capsys) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC.replace("{claim}", claim))
    # --overwrite: a test trains twice into one run directory
    code = main(["train", str(spec), "--out", str(tmp_path / "run"), "--overwrite", *flags])
    return code, capsys.readouterr().out


def test_claims_are_printed_after_training(tmp_path, capsys):
    code, out = _run(tmp_path, "epochs == 2", capsys=capsys)
    assert code == 0
    assert "expected outcome:" in out
    assert "ok   epochs == 2" in out


def test_a_failed_claim_is_shown_and_fails_only_with_check(tmp_path, capsys):
    code, out = _run(tmp_path, "val_binary_accuracy > 1", capsys=capsys)
    assert code == 0 and "FAIL val_binary_accuracy > 1" in out
    code, out = _run(tmp_path, "val_binary_accuracy > 1", "--check", capsys=capsys)
    assert code == 1 and "FAIL val_binary_accuracy > 1" in out
