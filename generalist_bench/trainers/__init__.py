"""Trainers: one engine (engine.py), objectives plugged into it (objectives.py), Generalist's merge
(generalist.py), AMP and distributed helpers."""

from .engine import Engine, TrainResult
from .generalist import GlobalLearner, mixing_weights, naive_merge, redistribution_epochs
from .objectives import PGDAT, TRADES, Standard, build_objective

__all__ = ["Engine", "GlobalLearner", "PGDAT", "Standard", "TRADES", "TrainResult", "build_objective",
           "mixing_weights", "naive_merge", "redistribution_epochs"]
