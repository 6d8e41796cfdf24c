"""``torchrun --nproc_per_node=N -m generalist_bench.train --preset NAME ...`` (same flags as
``generalist-bench train``). The module is also callable: ``generalist_bench.train(...)`` trains."""

from __future__ import annotations

import sys
import types


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from .trainers.api import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule


def main(argv=None) -> int:
    from .cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
