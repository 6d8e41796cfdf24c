"""CW∞ (Carlini & Wagner's margin, maximised by PGD, as in Madry et al./TRADES evaluations).

The objective per sample is ``min(max_{j≠y} z_j − z_y, kappa)``: it rises while the point is classified
correctly and is flat once it is misclassified with margin ``kappa``. (``losses.cw_margin`` clamps the other
side, ``max(·, −kappa)``, which has zero gradient on every correctly classified point, so ``PGD(loss="cw")``
does not attack; this file does not use it.) Steps as ``PGD``: signed (Linf) or L2-normalised gradient of size
eps/4, projection onto the eps-ball and [0, 1]; the uniform random start is drawn per sample.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import ascent_step, model_mode, random_start
from .registry import attack_seed, register_attack

RANDOMNESS = "uniform start in the eps-ball drawn per sample from a generator seeded by (attack seed, index)"


def cw_objective(logits: torch.Tensor, y: torch.Tensor, kappa: float = 0.0) -> torch.Tensor:
    """Per-sample ``min(max_{j≠y} z_j − z_y, kappa)`` (higher = more adversarial)."""
    onehot = F.one_hot(y, logits.shape[1]).bool()
    correct = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(onehot, float("-inf")).amax(dim=1)
    return torch.clamp(other - correct, max=kappa)


class CW:
    def __init__(self, *, norm: str, eps: float, steps: int = 20, step_size: float | None = None,
                 kappa: float = 0.0, start: str = "uniform"):
        if steps < 1 or eps < 0 or start not in ("uniform", "none"):
            raise ValueError(f"bad CW parameters (steps={steps}, eps={eps}, start={start!r})")
        self.name, self.norm, self.eps, self.steps, self.kappa, self.start = "cw", norm, eps, steps, kappa, start
        self.step_size = eps / 4 if step_size is None else step_size

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, indices=None,
                 seed: int = 0) -> torch.Tensor:
        x = x.detach()
        idx = torch.arange(len(x)) if indices is None else indices
        with model_mode(model, False):
            if self.start == "uniform" and self.eps > 0:
                x_adv = random_start(x, self.norm, self.eps, indices=idx, seed=attack_seed(seed, self.name))
            else:
                x_adv = x.clone()
            for _ in range(self.steps):
                x_adv.requires_grad_(True)
                with torch.enable_grad():
                    loss = cw_objective(model(x_adv), y, self.kappa).sum()
                    (grad,) = torch.autograd.grad(loss, x_adv)
                x_adv = ascent_step(x, x_adv, grad, self.norm, self.eps, self.step_size)
        return x_adv.detach()

    def params(self) -> dict[str, Any]:
        return {"impl": "generalist_bench.attacks.cw.CW", "norm": self.norm, "eps": self.eps, "steps": self.steps,
                "step_size": self.step_size, "loss": "min(max_{j!=y} z_j - z_y, kappa)", "kappa": self.kappa,
                "start": self.start, "randomness": RANDOMNESS}


@register_attack("cw", norms=("Linf", "L2"), source="generalist_bench", aliases=("cw-inf", "cwinf", "cw-linf"),
                 description="CW∞: PGD-20 on the Carlini–Wagner margin, step eps/4, uniform random start",
                 randomness=RANDOMNESS)
def _cw(*, norm: str, eps: float, num_classes: int, **kw) -> CW:
    return CW(norm=norm, eps=eps, **kw)
