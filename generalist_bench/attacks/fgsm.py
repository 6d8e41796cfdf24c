"""FGSM (Goodfellow et al. 2015): ``torchattacks.FGSM``, deterministic (no random numbers)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from .registry import register_attack


class FGSM:
    def __init__(self, *, eps: float):
        self.name, self.eps = "fgsm", eps

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, indices=None,
                 seed: int = 0) -> torch.Tensor:
        import torchattacks

        return torchattacks.FGSM(model, eps=self.eps)(x, y).detach()

    def params(self) -> dict[str, Any]:
        return {"impl": "torchattacks.FGSM", "norm": "Linf", "eps": self.eps, "randomness": "none"}


@register_attack("fgsm", norms=("Linf",), source="torchattacks", description="one signed-gradient step of size eps",
                 randomness="none")
def _fgsm(*, norm: str, eps: float, num_classes: int) -> FGSM:
    return FGSM(eps=eps)
