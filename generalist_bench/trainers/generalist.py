"""Generalist (Wang & Wang, CVPR 2023): the global learner and its communication with the base learners.

θ_g ← α_k·θ_g + (1 − α_k)·Σ_i γ_i(t)·θ_i with α_k = min(α, (k+1)/(k+10)), over parameters AND floating
buffers (BatchNorm statistics). ``ema_mode="per_learner"`` reproduces the reference code: each learner
first has its own EMA (same decay), and the global learner mixes those EMAs; ``"mixed"`` mixes the raw
learners. Integer buffers (``num_batches_tracked``) are copied from the first source.

Redistribution copies θ_g (weights and buffers) into every base learner:
- ``"epoch"``: at the end of epochs t′ + c, t′ + 2c, … (``warmup_epochs`` t′, ``redistribute_every`` c);
- ``"reference"``: the published code — after EVERY iteration of epochs e ≥ round(0.625·E) with
  e % max(1, round(E/24)) == 0 (75 and 5 at E = 120);
- ``"never"``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from ..config import LearnerConfig, MergeConfig, interp_schedule
from ..registry import Style
from .registry import register_trainer

register_trainer("generalist", title="Generalist", style=Style("#d62728", "*"),
                 description="a natural and an adversarial learner merged by EMA into a global learner")


def mixing_weights(learners: tuple[LearnerConfig, ...], epoch: int, epochs: int) -> list[float]:
    """γ_i at 1-based ``epoch`` (evaluated at epoch/epochs, per epoch as the reference), normalised to sum 1."""
    w = [interp_schedule(ln.mix_schedule, epoch / epochs) for ln in learners]
    total = sum(w)
    return [v / total for v in w]


def epoch_redistributes(cfg: MergeConfig, epoch: int, epochs: int) -> bool:
    """Whether θ_g is copied into the learners at the END of 1-based ``epoch`` (``"epoch"`` mode)."""
    if cfg.redistribute != "epoch":
        return False
    return epoch > cfg.warmup_epochs and (epoch - cfg.warmup_epochs) % cfg.redistribute_every == 0


def iteration_redistributes(cfg: MergeConfig, epoch: int, epochs: int) -> bool:
    """Whether θ_g is copied into the learners after every iteration of 1-based ``epoch`` (``"reference"``)."""
    if cfg.redistribute != "reference":
        return False
    start, period = round(epochs * 75 / 120), max(1, round(epochs * 5 / 120))
    return epoch >= start and epoch % period == 0


def redistribution_epochs(cfg: MergeConfig, epochs: int) -> list[int]:
    """Epochs in which redistribution happens (at the boundary for ``epoch``, every iteration for ``reference``)."""
    return [e for e in range(1, epochs + 1)
            if epoch_redistributes(cfg, e, epochs) or iteration_redistributes(cfg, e, epochs)]


def _split_state(model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(floating tensors, integer tensors) of the state dict, in a fixed order, as live references."""
    flt, ints = [], []
    for t in model.state_dict(keep_vars=True).values():
        t = t.data if isinstance(t, nn.Parameter) else t
        (flt if t.is_floating_point() else ints).append(t)
    return flt, ints


class GlobalLearner:
    """The EMA of mixed learners; ``model`` is the trained model of a Generalist run."""

    def __init__(self, template: nn.Module, n_learners: int, cfg: MergeConfig):
        self.cfg = cfg
        self.model = copy.deepcopy(template).eval()
        self.emas = [copy.deepcopy(template).eval() for _ in range(n_learners)] if cfg.ema_mode == "per_learner" else []
        for m in [self.model, *self.emas]:
            m.requires_grad_(False)
        self.step = 0

    def decay(self) -> float:
        a = self.cfg.ema_decay
        return min(a, (self.step + 1) / (self.step + 10)) if self.cfg.ema_warmup else a

    @torch.no_grad()
    def update(self, learners: list[nn.Module], gammas: list[float]) -> float:
        """One merge step after the learners' optimiser steps; returns the decay used."""
        d = self.decay()
        sources = learners
        if self.emas:
            for ema, learner in zip(self.emas, learners, strict=True):
                (ef, ei), (lf, li) = _split_state(ema), _split_state(learner)
                torch._foreach_lerp_(ef, lf, 1.0 - d)   # ema = d·ema + (1−d)·θ_i
                if ei:
                    torch._foreach_copy_(ei, li)
            sources = self.emas
        gf, gi = _split_state(self.model)
        states = [_split_state(s) for s in sources]
        mix = torch._foreach_mul([t for t in states[0][0]], gammas[0])
        for (sf, _), g in zip(states[1:], gammas[1:], strict=True):
            torch._foreach_add_(mix, sf, alpha=g)
        torch._foreach_lerp_(gf, mix, 1.0 - d)           # θ_g = d·θ_g + (1−d)·Σ γ_i θ_i
        if gi:
            torch._foreach_copy_(gi, states[0][1])
        self.step += 1
        return d

    @torch.no_grad()
    def redistribute(self, learners: list[nn.Module], optimizers=None) -> None:
        """Copy θ_g (weights and buffers) into every base learner; optionally reset optimiser state."""
        state = self.model.state_dict()
        for learner in learners:
            learner.load_state_dict(state)
        if optimizers is not None and self.cfg.reset_optimizer:
            for opt in optimizers:
                opt.state.clear()

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "emas": [e.state_dict() for e in self.emas], "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        for e, s in zip(self.emas, state["emas"], strict=True):
            e.load_state_dict(s)
        self.step = int(state["step"])


def naive_merge(global_state: dict, sources: list[dict], gammas: list[float], decay: float) -> dict:
    """The formula written out key by key (the reference for tests)."""
    out = {}
    for k, g in global_state.items():
        if g.is_floating_point():
            out[k] = decay * g + (1 - decay) * sum(gm * s[k] for gm, s in zip(gammas, sources, strict=True))
        else:
            out[k] = sources[0][k].clone()
    return out
