"""``generalist_bench.train(preset_or_config, **overrides)``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import Config
from ..presets import resolve_config
from .trainer import Trainer, TrainResult

# keyword shortcuts → dotted config keys
SHORTCUTS = {
    "epochs": "train.epochs",
    "seed": "train.seed",
    "batch_size": "train.batch_size",
    "train_subset": "data.train_subset",
    "data_dir": "data.data_dir",
    "dataset": "data.dataset",
    "arch": "model.arch",
    "eps": "threat.eps",
    "amp": "train.amp",
    "channels_last": "train.channels_last",
    "n_val": "train.selection.n_val",
}


def train(preset_or_config: str | Config | Path | None = None, *, out_dir: str | Path | None = None,
          resume: bool = False, overrides: Sequence[str] | Mapping[str, Any] | None = None,
          config_file: str | Path | None = None, progress: bool = True, **kw: Any) -> TrainResult:
    """Train from a preset name, a ``Config`` or a TOML/YAML file; returns the selected model, history and paths.

    ``overrides``: ``["train.learners.0.optim.lr=0.1", ...]`` or a dict of dotted keys. Keyword shortcuts:
    ``epochs``, ``seed``, ``batch_size``, ``train_subset``, ``data_dir``, ``dataset``, ``arch``, ``eps``,
    ``amp``, ``channels_last``, ``n_val``; any other keyword may be a dotted key written with ``__``
    (``train__merge__warmup_epochs=2``).
    """
    ov: dict[str, Any] = {}
    if overrides:
        ov.update(overrides if isinstance(overrides, Mapping) else dict(_kv(o) for o in overrides))
    for k, v in kw.items():
        ov[SHORTCUTS.get(k, k.replace("__", "."))] = v
    cfg = resolve_config(preset_or_config, ov or None, config_file)
    return Trainer(cfg, out_dir, resume=resume, progress=progress).run()


def _kv(text: str) -> tuple[str, str]:
    from ..config import _split_override

    return _split_override(text)
