"""FAB-T (Croce & Hein 2020): the official targeted FAB (``pyautoattack.FABAttack_PT``), AutoAttack's settings.

With one restart FAB draws no random numbers (upstream uses a random start only for restarts after the
first), and every step is computed per point, so a sample's result does not depend on its batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from pyautoattack.fab_pt import FABAttack_PT

from ...attacks.registry import register_attack
from .apgd import IMPLS, check_impl


class FABT:
    def __init__(self, *, norm: str, eps: float, num_classes: int = 10, n_target_classes: int | None = None,
                 n_iter: int = 100, alpha_max: float = 0.1, eta: float = 1.05, beta: float = 0.9,
                 impl: str = "compact"):
        self.name = "fab-t"
        self.impl = check_impl(impl)
        self.norm, self.eps, self.n_iter, self.alpha_max, self.eta, self.beta = norm, eps, n_iter, alpha_max, eta, beta
        self.n_target_classes = min(9, num_classes - 1) if n_target_classes is None else n_target_classes

    def build(self, model: nn.Module, device, seed: int) -> FABAttack_PT:
        atk = FABAttack_PT(model, norm=self.norm, n_restarts=1, n_iter=self.n_iter, eps=self.eps,
                           alpha_max=self.alpha_max, eta=self.eta, beta=self.beta, verbose=False, seed=seed,
                           targeted=True, device=device, n_target_classes=self.n_target_classes)
        return atk

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, indices=None,
                 seed: int = 0) -> torch.Tensor:
        atk = self.build(model, x.device, seed)
        with torch.no_grad():  # as AutoAttack.run_standard_evaluation calls it (gradients: enable_grad inside)
            if self.impl == "compact":
                from .compact import fab_targeted_perturb

                return fab_targeted_perturb(atk, x, y).detach()
            return atk.perturb(x, y).detach()

    def params(self) -> dict[str, Any]:
        return {"impl": IMPLS[self.impl].format("FABAttack_PT"), "norm": self.norm, "eps": self.eps, "targeted": True,
                "n_restarts": 1, "n_iter": self.n_iter, "n_target_classes": self.n_target_classes,
                "alpha_max": self.alpha_max, "eta": self.eta, "beta": self.beta,
                "randomness": "none (one restart: no random start)"}


@register_attack("fab-t", norms=("Linf", "L2"), source="pyautoattack", aliases=("fabt", "fab"),
                 description="targeted FAB, 9 targets × 100 iterations (AutoAttack standard)",
                 randomness="none (one restart: no random start)")
def _fab_t(*, norm: str, eps: float, num_classes: int, **kw) -> FABT:
    return FABT(norm=norm, eps=eps, num_classes=num_classes, **kw)
