"""Losses an attack can ascend: cross-entropy, the Carlini–Wagner margin, TRADES' KL."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cw_margin(logits: torch.Tensor, y: torch.Tensor, kappa: float = 0.0) -> torch.Tensor:
    """Per-sample CW margin max_{j≠y} z_j − z_y, capped at ``kappa`` (higher = more adversarial).

    The cap stops pushing a point once it is misclassified with confidence ``kappa``; below it the gradient
    is that of the margin, so correctly classified points are attacked."""
    onehot = F.one_hot(y, logits.shape[1]).bool()
    correct = logits[onehot]
    other = logits.masked_fill(onehot, float("-inf")).amax(dim=1)
    return torch.clamp(other - correct, max=kappa)


def attack_loss(name: str, logits: torch.Tensor, y: torch.Tensor, clean_logits: torch.Tensor | None = None):
    """Summed per-sample loss (gradients of each sample independent of the batch size)."""
    if name == "ce":
        return F.cross_entropy(logits, y, reduction="sum")
    if name == "cw":
        return cw_margin(logits, y).sum()
    if name == "kl":
        if clean_logits is None:
            raise ValueError("the KL loss needs the clean logits")
        return F.kl_div(F.log_softmax(logits, dim=1), F.softmax(clean_logits, dim=1), reduction="sum")
    raise ValueError(f"unknown attack loss {name!r}")
