"""Validation during training: clean and PGD-k accuracy on a fixed subset of the VALIDATION split."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..attacks import PGD, model_mode


@torch.no_grad()
def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(1) == y


def validate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str, steps: int,
             batch_size: int = 500, seed: int = 0) -> dict[str, float]:
    """Clean and PGD-``steps`` (step eps/4, per-sample seeded uniform start) accuracy in percent, eval mode."""
    attack = PGD(eps=eps, steps=steps, step_size=eps / 4, norm=norm, start="uniform", bn_mode="eval")
    clean = robust = 0
    with model_mode(model, False):
        for i in range(0, len(y), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            ok = _correct(model, xb, yb)
            clean += int(ok.sum())
            if steps > 0 and eps > 0:
                xa = attack(model, xb, yb, indices=torch.arange(i, i + len(yb)), seed=seed)
                robust += int((ok & _correct(model, xa, yb)).sum())  # robust = correct on clean and attacked
    n = len(y)
    out = {"val_clean": 100.0 * clean / n}
    if steps > 0 and eps > 0:
        out["val_robust"] = 100.0 * robust / n
    return out


def score(metrics: dict[str, float], criterion: str, epoch: int) -> float:
    """Higher is better. ``last`` always prefers the latest epoch."""
    if criterion == "clean+robust":
        return metrics["val_clean"] + metrics.get("val_robust", 0.0)
    if criterion == "robust":
        return metrics.get("val_robust", 0.0)
    if criterion == "clean":
        return metrics["val_clean"]
    return float(epoch)
