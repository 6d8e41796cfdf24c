"""generalist_bench: Generalist (Wang & Wang, CVPR 2023), PGD-AT and TRADES under one protocol,
evaluated with the official AutoAttack and torchattacks, published as RobustBench-compatible models.

Public API (imported lazily so that ``import generalist_bench`` stays cheap):

- ``load_dataset(name, split, data_dir=None)``
- ``create_model(name, num_classes=..., **kw)``, ``list_models()``
- ``train(preset_or_config, **overrides)``
- ``evaluate(model, dataset=..., threat_model="Linf", eps=..., suite="autoattack", ...)``
- ``load_model(name, dataset=..., threat_model=..., model_dir="model_zoo")``
- ``enable_robustbench_compat()``: lets robustbench 1.1.1 import and load our zoo (import hooks, opt-in)

Importing the package has no side effects outside it (no import hooks, no patched modules).
"""

from __future__ import annotations

from .utils.lazy import lazy_getattr

__version__ = "0.1.0"

_LAZY = {
    "load_dataset": "generalist_bench.data",
    "list_datasets": "generalist_bench.data",
    "create_model": "generalist_bench.models",
    "list_models": "generalist_bench.models",
    "register_model": "generalist_bench.models",
    "get_preset": "generalist_bench.presets",
    "list_presets": "generalist_bench.presets",
    "resolve_config": "generalist_bench.presets",
    "Config": "generalist_bench.config",
    "train": "generalist_bench.trainers.api",
    "evaluate": "generalist_bench.evaluation.api",
    "load_model": "generalist_bench.zoo.store",
    "enable_robustbench_compat": "generalist_bench.zoo.robustbench_compat",
}

__all__ = sorted(_LAZY) + ["__version__"]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
