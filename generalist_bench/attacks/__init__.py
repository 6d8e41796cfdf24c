"""Attacks: one small class per file; pixels in [0, 1]; the model is passed on every call, as a ``ModelCall``."""

from .base import model_mode, per_sample_rand, project, random_start, sample_seed
from .losses import attack_loss, cw_margin
from .model_call import ModelCall
from .pgd import PGD
from .registry import attack_seed, build_attack, get_attack_info, list_attacks, register_attack

__all__ = ["ModelCall", "PGD", "attack_loss", "attack_seed", "build_attack", "cw_margin", "get_attack_info",
           "list_attacks", "model_mode", "per_sample_rand", "project", "random_start", "register_attack", "sample_seed"]
