"""MIM / MI-FGSM (Dong et al. 2018): ``torchattacks.MIFGSM(decay=1.0)``, 20 steps of eps/4.

torchattacks' MI-FGSM starts at the clean image (the Generalist reference code adds a random start); with no
random numbers at all it is per-sample deterministic.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from .registry import register_attack


class MIM:
    def __init__(self, *, eps: float, steps: int = 20, step_size: float | None = None, decay: float = 1.0):
        self.name, self.eps, self.steps, self.decay = "mim", eps, steps, decay
        self.step_size = eps / 4 if step_size is None else step_size

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, indices=None,
                 seed: int = 0) -> torch.Tensor:
        import torchattacks

        atk = torchattacks.MIFGSM(model, eps=self.eps, alpha=self.step_size, steps=self.steps, decay=self.decay)
        return atk(x, y).detach()

    def params(self) -> dict[str, Any]:
        return {"impl": "torchattacks.MIFGSM", "norm": "Linf", "eps": self.eps, "steps": self.steps,
                "step_size": self.step_size, "decay": self.decay, "random_start": False, "randomness": "none"}


@register_attack("mim", norms=("Linf",), source="torchattacks", aliases=("mifgsm", "mi-fgsm"),
                 description="momentum iterative FGSM, 20 steps of eps/4, decay 1.0, no random start",
                 randomness="none")
def _mim(*, norm: str, eps: float, num_classes: int, steps: int = 20, step_size: float | None = None,
         decay: float = 1.0) -> MIM:
    return MIM(eps=eps, steps=steps, step_size=step_size, decay=decay)
