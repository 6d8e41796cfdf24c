"""Projected gradient descent (Madry et al. 2018) in Linf or L2, on CE, CW margin or TRADES' KL."""

from __future__ import annotations

import torch
import torch.nn as nn

from .base import ascent_step, model_mode, random_start
from .losses import attack_loss


class PGD:
    """``PGD(eps, steps, step_size)(model, x, y) -> x_adv`` with x, x_adv in [0, 1].

    ``start``: ``"uniform"`` (uniform in the eps-ball), ``"normal"`` (x + 0.001·N(0, I), TRADES) or ``"none"``.
    ``bn_mode``: mode of the model while attacking (``"eval"`` or ``"train"``); the old mode is restored.
    ``indices``/``seed`` on a call make each sample's random start depend only on (seed, index).
    """

    def __init__(self, eps: float, steps: int = 10, step_size: float | None = None, norm: str = "Linf",
                 start: str = "uniform", loss: str = "ce", bn_mode: str = "eval"):
        if eps < 0 or steps < 0:
            raise ValueError(f"eps and steps must be ≥ 0 (eps={eps}, steps={steps})")
        self.eps, self.steps, self.norm, self.start, self.loss, self.bn_mode = eps, steps, norm, start, loss, bn_mode
        self.step_size = step_size if step_size is not None else 2.5 * eps / max(steps, 1)

    def __repr__(self) -> str:
        return (f"PGD(norm={self.norm}, eps={self.eps:.6g}, steps={self.steps}, step_size={self.step_size:.6g}, "
                f"start={self.start}, loss={self.loss})")

    def init(self, x: torch.Tensor, generator=None, indices=None, seed: int = 0) -> torch.Tensor:
        if self.start == "uniform" and self.eps > 0:
            return random_start(x, self.norm, self.eps, generator=generator, indices=indices, seed=seed)
        if self.start == "normal":
            if indices is not None:
                from .base import per_sample_rand

                noise = per_sample_rand(x.shape, indices, seed, "normal", "normal").to(x.device)
            else:
                noise = torch.randn(x.shape, generator=generator).to(x.device)
            return (x + 0.001 * noise).clamp(0, 1)
        return x.clone()

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, generator=None, indices=None,
                 seed: int = 0, clean_logits: torch.Tensor | None = None) -> torch.Tensor:
        x = x.detach()
        with model_mode(model, self.bn_mode == "train"):
            if self.loss == "kl" and clean_logits is None:
                with torch.no_grad():
                    clean_logits = model(x)
            x_adv = self.init(x, generator, indices, seed)
            for _ in range(self.steps):
                x_adv.requires_grad_(True)
                with torch.enable_grad():
                    loss = attack_loss(self.loss, model(x_adv), y, clean_logits)
                    (grad,) = torch.autograd.grad(loss, x_adv)
                x_adv = ascent_step(x, x_adv, grad, self.norm, self.eps, self.step_size)
        return x_adv.detach()
