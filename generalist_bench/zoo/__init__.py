"""Model zoo: ``model_zoo/<dataset>/<threat_model>/<Name>.pt`` (a state dict) next to ``<Name>.json`` (its card).

- ``card``: ``ModelCard`` (typed dataclass ↔ JSON, RobustBench's model_info fields plus our provenance)
  and ``make_card`` (fills a card from a resolved config and evaluation results).
- ``store``: ``save_to_zoo``, ``load_model``, ``list_zoo``, ``verify_zoo`` (sha256-checked, lock-protected).
- ``robustbench_compat``: lets ``robustbench`` 1.1.1 import, load our CIFAR models and benchmark them.

Names are imported lazily: ``import generalist_bench`` imports this package to install the (cheap)
RobustBench import hooks, and must not pull in torch.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "ModelCard": "generalist_bench.zoo.card",
    "ModelCardError": "generalist_bench.zoo.card",
    "make_card": "generalist_bench.zoo.card",
    "format_eps": "generalist_bench.zoo.card",
    "save_to_zoo": "generalist_bench.zoo.store",
    "load_model": "generalist_bench.zoo.store",
    "list_zoo": "generalist_bench.zoo.store",
    "verify_zoo": "generalist_bench.zoo.store",
    "ZooEntry": "generalist_bench.zoo.store",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'generalist_bench.zoo' has no attribute {name!r}")
