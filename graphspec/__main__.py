"""``python -m graphspec``: the same as the ``graphspec`` command."""

import sys

from graphspec.cli import main

if __name__ == "__main__":
    sys.exit(main())
