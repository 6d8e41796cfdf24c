"""The registries of objectives and trainers.

An **objective** maps a learner's config to the loss its updates minimise (``trainers/objectives.py``). A
**trainer** is what a card's ``trainer`` field names: how the model was obtained. Each single-learner objective is
also a trainer (one learner, that objective); ``generalist`` is Generalist's two learners and merge; ``submitted``
(``zoo/external.py``) is a model trained elsewhere, which cannot be trained here. A trainer carries its display
title and plot style, used by cards and the leaderboard.

Adding a training method is one file that defines its objective and registers both (see ``objectives.py``), plus
presets that use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..registry import Registry, Style

PROVIDERS = ("generalist_bench.trainers.objectives", "generalist_bench.trainers.generalist",
             "generalist_bench.zoo.external")


def _fill() -> None:
    for module in PROVIDERS:
        importlib.import_module(module)


@dataclass(frozen=True)
class TrainerInfo:
    name: str
    trainable: bool    # False: a card may name it, ``train.trainer`` may not (a model trained elsewhere)
    description: str


# name → builder(learner config, threat model) -> objective
OBJECTIVES: Registry[Callable[..., Any]] = Registry("objective", fill=_fill)
TRAINERS: Registry[TrainerInfo] = Registry("trainer", fill=_fill)


def register_objective(name: str, *, title: str | None = None):
    """Decorator for ``builder(learner_cfg, threat) -> objective``."""
    def deco(fn):
        return OBJECTIVES.register(name, fn, title=title)
    return deco


def register_trainer(name: str, *, title: str, style: Style | None = None, description: str = "",
                     trainable: bool = True) -> TrainerInfo:
    return TRAINERS.register(name, TrainerInfo(name, trainable, description), title=title, style=style)


def trainable() -> list[str]:
    """The trainers ``train.trainer`` may name."""
    return [n for n in TRAINERS.names() if TRAINERS.get(n).trainable]
