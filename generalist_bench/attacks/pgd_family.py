"""PGD-k as an evaluation attack: ``generalist_bench.attacks.PGD`` with per-sample seeded starts.

torchattacks has PGD, but its random start comes from torch's global generator (one draw for the whole batch),
so a sample's start would depend on its batch. Our PGD is the same update (sign step, clip to the eps-ball,
clip to [0, 1]; ``tests/test_attacks_eval.py`` pins bit-equality with ``torchattacks.PGD`` from the same start)
with the start drawn per sample.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from .pgd import PGD
from .registry import attack_seed, register_attack

_RANDOMNESS = "uniform start in the eps-ball drawn per sample from a generator seeded by (attack seed, index)"


class PGDAttack:
    def __init__(self, *, norm: str, eps: float, steps: int, step_size: float | None = None, loss: str = "ce",
                 start: str = "uniform", name: str = "pgd"):
        if steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {steps}")
        self.name = name
        self.pgd = PGD(eps=eps, steps=steps, step_size=eps / 4 if step_size is None else step_size, norm=norm,
                       start=start, loss=loss, bn_mode="eval")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, indices=None,
                 seed: int = 0) -> torch.Tensor:
        idx = torch.arange(len(x)) if indices is None else indices
        return self.pgd(model, x, y, indices=idx, seed=attack_seed(seed, self.name))

    def params(self) -> dict[str, Any]:
        p = self.pgd
        return {"impl": "generalist_bench.attacks.PGD", "norm": p.norm, "eps": p.eps, "steps": p.steps,
                "step_size": p.step_size, "loss": p.loss, "start": p.start, "randomness": _RANDOMNESS}


@register_attack("pgd-k", norms=("Linf", "L2"), source="generalist_bench",
                 description="PGD with k steps on cross-entropy, step eps/4, uniform random start",
                 randomness=_RANDOMNESS)
def _pgd(*, norm: str, eps: float, num_classes: int, steps: int, step_size: float | None = None,
         start: str = "uniform") -> PGDAttack:
    return PGDAttack(norm=norm, eps=eps, steps=steps, step_size=step_size, start=start, name=f"pgd-{steps}")
