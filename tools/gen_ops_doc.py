"""Regenerate docs/ops.md from the op registry (``--check``: exit 1 when it is stale).

python tools/gen_ops_doc.py           # rewrite docs/ops.md
python tools/gen_ops_doc.py --check   # CI-style: fail if docs/ops.md differs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from graphspec.ops.docs import ops_markdown

OPS_MD = Path(__file__).resolve().parent.parent / "docs" / "ops.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    parser.add_argument("-o", "--output", type=Path, default=OPS_MD)
    args = parser.parse_args(argv)
    text = ops_markdown()
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current != text:
            print(f"{args.output} is stale: run 'python tools/gen_ops_doc.py'", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
