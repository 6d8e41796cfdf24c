"""Trainers: one training loop (trainer.py, ``Trainer``), objectives plugged into it (objectives.py), Generalist's merge
(generalist.py), AMP and distributed helpers."""

from .generalist import GlobalLearner, mixing_weights, naive_merge, redistribution_epochs
from .objectives import PGDAT, TRADES, Standard, build_objective
from .trainer import Trainer, TrainResult

__all__ = ["Trainer", "GlobalLearner", "PGDAT", "Standard", "TRADES", "TrainResult", "build_objective",
           "mixing_weights", "naive_merge", "redistribution_epochs"]
