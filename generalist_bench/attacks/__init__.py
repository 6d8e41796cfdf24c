"""Attacks: one small class per file; pixels in [0, 1]; the model is passed on every call."""

from .base import model_mode, per_sample_rand, project, random_start, sample_seed
from .losses import attack_loss, cw_margin
from .pgd import PGD

__all__ = ["PGD", "attack_loss", "cw_margin", "model_mode", "per_sample_rand", "project", "random_start",
           "sample_seed"]
