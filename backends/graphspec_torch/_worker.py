"""``python -m graphspec_torch._worker DIR``: one worker that ``graphspec train --nproc``
started (graphspec_torch.distributed.launch); DIR holds its payload."""

import sys

from graphspec_torch.distributed import worker_main

if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1]))
