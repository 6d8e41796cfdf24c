"""Training objectives, all driven by one training loop (``Trainer``): each maps (model, x, y) to
``{"loss": tensor, ...logged terms}``.

``model`` is what the update's forward pass goes through (a DDP wrapper in distributed runs);
``attack_model`` is the bare module the inner maximisation attacks (no gradient sync, no buffer broadcast).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..attacks import PGD
from ..config import AttackConfig, LearnerConfig, ThreatModel
from ..registry import Style
from .registry import OBJECTIVES, register_objective, register_trainer

Objective = Callable[..., dict[str, torch.Tensor]]


def build_attack(acfg: AttackConfig, threat: ThreatModel, loss: str = "ce", start: str | None = None) -> PGD:
    return PGD(eps=threat.eps if acfg.eps is None else acfg.eps, steps=acfg.steps, step_size=acfg.step_size,
               norm=acfg.norm or threat.norm, start=start or ("uniform" if acfg.random_start else "none"),
               loss=loss, bn_mode=acfg.bn_mode)


class Standard:
    """Cross-entropy on clean images."""

    name = "standard"

    def __call__(self, model, attack_model, x, y, generator=None) -> dict[str, torch.Tensor]:
        model.train()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        return {"loss": loss, "acc": (logits.argmax(1) == y).float().mean()}


class PGDAT:
    """Madry et al. (2018): cross-entropy on PGD-k examples from a uniform random start in the eps-ball."""

    name = "pgd_at"

    def __init__(self, attack: PGD):
        self.attack = attack

    def __call__(self, model, attack_model, x, y, generator=None) -> dict[str, torch.Tensor]:
        x_adv = self.attack(attack_model, x, y, generator=generator)
        model.train()
        logits = model(x_adv)
        loss = F.cross_entropy(logits, y)
        return {"loss": loss, "adv_acc": (logits.argmax(1) == y).float().mean()}


class TRADES:
    """Zhang et al. (2019): CE(f(x), y) + β·KL(p(x) ‖ p(x′)), x′ maximising the KL by PGD from x + 0.001·N(0, I)."""

    name = "trades"

    def __init__(self, attack: PGD, beta: float = 6.0):
        self.attack, self.beta = attack, beta

    def __call__(self, model, attack_model, x, y, generator=None) -> dict[str, torch.Tensor]:
        x_adv = self.attack(attack_model, x, y, generator=generator)
        model.train()
        clean, adv = model(x), model(x_adv)  # two passes, as the TRADES code (BatchNorm statistics per pass)
        natural = F.cross_entropy(clean, y)
        robust = F.kl_div(F.log_softmax(adv, dim=1), F.softmax(clean, dim=1), reduction="sum") / len(x)
        return {"loss": natural + self.beta * robust, "natural": natural, "robust_kl": robust,
                "acc": (clean.argmax(1) == y).float().mean()}


# ------------------------------------------------------------------------------------------ registrations
@register_objective("standard", title="Standard")
def _standard(cfg: LearnerConfig, threat: ThreatModel) -> Objective:
    return Standard()


@register_objective("pgd_at", title="PGD-AT")
def _pgd_at(cfg: LearnerConfig, threat: ThreatModel) -> Objective:
    return PGDAT(build_attack(cfg.attack, threat, "ce"))


@register_objective("trades", title="TRADES")
def _trades(cfg: LearnerConfig, threat: ThreatModel) -> Objective:
    return TRADES(build_attack(cfg.attack, threat, "kl", start="normal"), cfg.trades_beta)


# every objective is also a single-learner trainer
register_trainer("standard", title="Standard", style=Style("#7f7f7f", "D"), description="one learner, clean CE")
register_trainer("pgd_at", title="PGD-AT", style=Style("#1f77b4", "o"), description="one learner, PGD-AT (Madry)")
register_trainer("trades", title="TRADES", style=Style("#2ca02c", "s"), description="one learner, TRADES (Zhang)")


def build_objective(cfg: LearnerConfig, threat: ThreatModel) -> Objective:
    return OBJECTIVES.get(cfg.objective)(cfg, threat)


__all__ = ["PGDAT", "TRADES", "Standard", "build_attack", "build_objective"]
