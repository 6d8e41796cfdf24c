"""``torchrun --nproc_per_node=K -m generalist_bench.eval ...`` (same flags as ``generalist-bench eval``): every rank
evaluates one per-sample shard of the points, rank 0 merges them and writes ``--out``. Across nodes, torchrun's
``--nnodes``/``--rdzv-endpoint`` work the same way. The result equals a single-process run point for point."""

from __future__ import annotations

import sys


def main(argv=None) -> int:
    from .cli import main as cli_main

    return cli_main(["eval", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
