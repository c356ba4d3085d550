"""Regenerate the gallery's pictures and measured outcomes (docs/gallery.md, docs/gallery/).

For each spec of specs/ (or the stems named on the command line) this runs the commands
docs/gallery.md lists, on both backends::

    graphspec train specs/<stem>.yaml --plot --out runs/gallery/numpy/<stem>
    graphspec train specs/<stem>.yaml --backend torch --out runs/gallery/torch/<stem>

copies the pictures of the numpy run (the reference) to docs/gallery/<stem>/, re-encoded
as palette PNGs so that each stays small, and prints, per spec and variant, each claim of
the spec's ``expect:`` with the number measured on each backend: the tables of
docs/gallery.md.

    .venv/bin/python tools/gallery.py                 # every spec
    .venv/bin/python tools/gallery.py attention vae   # some
    .venv/bin/python tools/gallery.py --no-train      # tables and pictures of earlier runs
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "gallery"
PICTURES = ROOT / "docs" / "gallery"
BACKENDS = ("numpy", "torch")
# Pictures that show nothing: `train --plot` draws a decision boundary for any model with a
# 2-feature input and a [batch, k] output, the VAE's reconstruction included.
SKIP = {"vae": {"boundary.png"}}
# What `train --plot` draws of a convolutional model (graphspec.analysis.pictures).
VARIANT_PICTURES = {"conv_filters.png", "feature_maps.png"}
COLORS = 96  # palette size: the boundary shading survives, files shrink five- to tenfold
# fewer colours for a picture still larger (tests/gallery/test_gallery.py: 150 kB)
MAX_BYTES = 140_000


def train(stem: str, backend: str) -> None:
    out = RUNS / backend / stem
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        str(ROOT / ".venv" / "bin" / "graphspec"),
        "train",
        f"specs/{stem}.yaml",
        "--out",
        str(out.relative_to(ROOT)),
    ]
    cmd += ["--plot"] if backend == "numpy" else ["--backend", backend]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    print("$", " ".join(cmd[2:]), file=sys.stderr, flush=True)
    done = subprocess.run(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if done.returncode != 0:
        print(done.stdout[-3000:], file=sys.stderr)
        raise SystemExit(f"{stem} on {backend} failed")


def copy_pictures(stem: str) -> list[Path]:
    from PIL import Image

    src = RUNS / "numpy" / stem
    dst = PICTURES / stem
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    written = []
    # A spec with variants: the comparison figures are in its folder, and the pictures of
    # one model (VARIANT_PICTURES) in each variant's, copied as <variant>_<name>.png.
    variant_pngs = [p for p in sorted(src.glob("*/*.png")) if p.name in VARIANT_PICTURES]
    for png in sorted(src.glob("*.png")) + variant_pngs:
        if png.name in SKIP.get(stem, ()):
            continue
        name = png.name if png.parent == src else f"{png.parent.name}_{png.name}"
        with Image.open(png) as im:
            rgb = im.convert("RGB")
        for colors in (COLORS, 64, 48, 32):
            small = rgb.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
            small.save(dst / name, optimize=True)
            if (dst / name).stat().st_size < MAX_BYTES:
                break
        written.append(dst / name)
    return written


def outcomes(stem: str) -> str:
    """A markdown table: each variant's claims with the numbers measured per backend."""
    from graphspec.spec.variants import expand_variants
    from graphspec.train.expect import evaluate, quantities

    lines = [
        "| variant | claim | " + " | ".join(BACKENDS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in BACKENDS) + " |",
    ]
    for name, spec in expand_variants(ROOT / "specs" / f"{stem}.yaml").items():
        label = name if spec.variant is not None else "—"
        runs = {b: RUNS / b / stem / (spec.variant or "") for b in BACKENDS}
        values = {b: quantities(d) for b, d in runs.items()}
        for claim in spec.expect:
            cells = []
            for b in BACKENDS:
                o = evaluate(claim, values[b])
                if len(o.values) == 1:
                    shown = ", ".join(f"{v:.4g}" for v in o.values.values())
                else:
                    shown = ", ".join(f"{k} {v:.4g}" for k, v in o.values.items())
                cells.append(f"{shown} {'✓' if o.held else '✗ FAILS'}")
            lines.append(f"| {label} | `{claim}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stems", nargs="*", help="spec file stems (default: every spec)")
    ap.add_argument("--no-train", action="store_true", help="reuse the runs under runs/gallery")
    args = ap.parse_args()
    stems = args.stems or sorted(p.stem for p in (ROOT / "specs").glob("*.yaml"))
    for stem in stems:
        if not args.no_train:
            for backend in BACKENDS:
                train(stem, backend)
        pictures = copy_pictures(stem)
        print(f"\n### {stem}\n")
        print(outcomes(stem))
        for p in pictures:
            print(f"\n![{p.stem}](gallery/{stem}/{p.name})  ({p.stat().st_size // 1024} KB)")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
