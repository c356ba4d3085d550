"""Paths every test area uses: the project root, the gallery, the XOR spec."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR = ROOT / "specs"
GALLERY = sorted(SPEC_DIR.glob("*.yaml"))  # every gallery spec, by name
XOR = SPEC_DIR / "xor.yaml"
