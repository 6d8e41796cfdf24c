"""Batched augmentation on resident tensors (airbench style): no per-sample Python."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    mask = torch.rand(x.shape[0], generator=generator) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1).to(x.device), x.flip(3), x)


def crop(x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with zero padding (torchvision ``RandomCrop(size, padding)``), one offset per image."""
    n, c, h, w = x.shape
    p = padding
    padded = F.pad(x, (p, p, p, p))
    dy = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(x.device)
    rows = (dy.view(n, 1, 1, 1) + torch.arange(h, device=x.device).view(1, 1, h, 1)).expand(n, c, h, w + 2 * p)
    out = padded.gather(2, rows)
    cols = (dx.view(n, 1, 1, 1) + torch.arange(w, device=x.device).view(1, 1, 1, w)).expand(n, c, h, w)
    return out.gather(3, cols)


def augment(x: torch.Tensor, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    if kind == "none":
        return x
    if kind == "flip":
        return flip(x, generator)
    if kind == "crop":
        return crop(x, generator=generator)
    if kind == "crop_flip":
        return flip(crop(x, generator=generator), generator)
    raise ValueError(f"unknown augmentation {kind!r}")
