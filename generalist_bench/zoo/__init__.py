"""Model zoo: ``model_zoo/<dataset>/<threat_model>/<Name>.pt`` (a state dict) next to ``<Name>.json`` (its card).

- ``card``: ``ModelCard`` (typed dataclass ↔ JSON, RobustBench's model_info fields plus our provenance)
  and ``make_card`` (fills a card from a resolved config and evaluation results).
- ``store``: ``save_to_zoo``, ``load_model``, ``list_zoo``, ``verify_zoo`` (sha256-checked, lock-protected).
- ``robustbench_compat``: ``enable_robustbench_compat()`` lets ``robustbench`` 1.1.1 import, load our CIFAR models
  and benchmark them (opt-in).
- ``external``: submissions of models trained elsewhere.

Names are imported lazily, so that importing the package does not pull in torch.
"""

from __future__ import annotations

from ..utils.lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
