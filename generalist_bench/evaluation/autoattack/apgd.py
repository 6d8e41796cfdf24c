"""APGD-CE, APGD-DLR and APGD-T (Croce & Hein 2020): the official code (``pyautoattack``) with per-sample starts.

``SeededAPGD`` / ``SeededAPGDTargeted`` run pyautoattack's ``perturb`` and ``attack_single_run`` unchanged; the
only difference is the random start. Upstream draws ``torch.rand(x.shape)`` for the whole batch after
``torch.manual_seed(seed)``, so a point's start depends on its batch. Here ``attack_single_run`` receives
``x_init`` built by the very same formula (``x + eps·normalize(2u − 1)`` for Linf, ``x + eps·normalize(n)``
for L2) from noise ``u``/``n`` drawn per sample from a generator seeded by ``(seed, index, tag)``, with
``tag`` naming the attack, the target class (APGD-T) and the restart. Everything else in APGD is per-sample
already (per-point step sizes and halving schedule), so a sample's result does not depend on its batch.

To know which samples a call of ``attack_single_run`` gets, the wrappers replay upstream's bookkeeping:
``perturb`` attacks the points the model classifies correctly, then (targeted: for each target class)
only those not yet fooled.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn as nn
from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

from ...attacks.base import per_sample_rand
from ...attacks.registry import register_attack

AA_LOGGER = "auto-attack"
RANDOMNESS = ("official pyautoattack code; the random start (the only random numbers APGD draws) comes from a "
              "generator seeded by (seed, index, attack/target/restart), via attack_single_run(x_init=...)")


def resolve_indices(row_indices, x: torch.Tensor) -> torch.Tensor:
    """``row_indices`` is a tensor (one index per row of ``x``), a callable ``x -> tensor`` or None (positions)."""
    idx = row_indices(x) if callable(row_indices) else row_indices
    idx = torch.arange(len(x)) if idx is None else torch.as_tensor(idx).cpu()
    if len(idx) != len(x):
        raise ValueError(f"{len(idx)} indices for {len(x)} points")
    return idx


def apgd_start(attack: APGDAttack, x: torch.Tensor, indices, seed: int, tag: str) -> torch.Tensor:
    """pyautoattack's APGD start for rows ``x``, with per-sample noise (call after ``init_hyperparam``)."""
    if attack.norm == "Linf":
        t = 2 * per_sample_rand(x.shape, indices, seed, tag).to(x.device) - 1
    elif attack.norm == "L2":
        t = per_sample_rand(x.shape, indices, seed, tag, "normal").to(x.device)
    else:
        raise ValueError(f"per-sample starts are implemented for Linf and L2, not {attack.norm}")
    return x + attack.eps * torch.ones_like(x).detach() * attack.normalize(t)


# recorded in every result's protocol.attacks[].params.impl, which is part of a result's identity (committed
# evaluation states resume only while it is unchanged): kept word for word, though compact.py moved under evaluation/
IMPLS = {"pyautoattack": "pyautoattack.{}",
         "compact": "generalist_bench compacting loop over pyautoattack.{} (same per-point arithmetic without the "
                    "work that cannot change a flag; see generalist_bench.attacks.compact)"}


def check_impl(impl: str) -> str:
    """``pyautoattack``: upstream's loops as published; ``compact``: ``evaluation.autoattack.compact`` (identical
    robust flags)."""
    if impl not in IMPLS:
        from ...errors import UnknownNameError

        raise UnknownNameError("AutoAttack implementation", str(impl), IMPLS)
    return impl


class _PerSampleStarts:
    """Mixin for pyautoattack's APGD classes. Set ``row_indices``, ``ps_seed`` and ``ps_tag`` before ``perturb``."""

    row_indices: Any = None
    ps_seed: int = 0
    ps_tag: str = "apgd"

    def perturb(self, x, y=None, *args, **kwargs):
        if args or kwargs.get("best_loss") or kwargs.get("x_init") is not None or y is None:
            raise NotImplementedError("per-sample starts support perturb(x, y) only")
        idx = resolve_indices(self.row_indices, x)
        # the points upstream's perturb attacks: those classified correctly (same forward, same grad mode)
        acc = self.model(x.detach().clone().float().to(self.device)).max(1)[1] == y.to(self.device)
        self._active, self._calls = idx[acc.detach().cpu()], 0
        try:
            return super().perturb(x, y)
        finally:
            self._active = None

    def _call_tag(self) -> str:
        k, r = self._calls, self._calls % self.n_restarts
        if isinstance(self, APGDAttack_targeted):
            tag = f"{self.ps_tag}/t{2 + k // self.n_restarts}"
        else:
            tag = self.ps_tag
        return tag + (f"/r{r}" if r else "")

    def attack_single_run(self, x, y, x_init=None):
        if x_init is None and getattr(self, "_active", None) is not None:
            if len(x) != len(self._active):
                raise RuntimeError(f"APGD bookkeeping lost track of the attacked points ({len(x)} rows, "
                                   f"{len(self._active)} expected)")
            x_init = apgd_start(self, x, self._active, self.ps_seed, self._call_tag())
        out = super().attack_single_run(x, y, x_init=x_init)
        if getattr(self, "_active", None) is not None:
            self._active = self._active[out[1].detach().cpu().bool()]  # still robust → attacked again next call
            self._calls += 1
        return out


class SeededAPGD(_PerSampleStarts, APGDAttack):
    pass


class SeededAPGDTargeted(_PerSampleStarts, APGDAttack_targeted):
    pass


class Component:
    """An AutoAttack component: ``build`` makes the pyautoattack attack object (per-sample seeded starts)."""

    name: str

    def build(self, model: nn.Module, device, seed: int):
        raise NotImplementedError

    def prepare(self, model: nn.Module, x: torch.Tensor, indices, seed: int):
        """The attack object for one batch: built for ``x``'s device, told the batch rows' split indices."""
        atk = self.build(model, x.device, seed)
        atk.row_indices = indices
        return atk


class APGD(Component):
    """APGD on CE or DLR, AutoAttack's standard settings (100 iterations, 1 restart, rho 0.75)."""

    def __init__(self, *, norm: str, eps: float, loss: str = "ce", n_iter: int = 100, n_restarts: int = 1,
                 rho: float = 0.75, eot_iter: int = 1, impl: str = "compact"):
        self.name = f"apgd-{loss}"
        self.norm, self.eps, self.loss = norm, eps, loss
        self.n_iter, self.n_restarts, self.rho, self.eot_iter = n_iter, n_restarts, rho, eot_iter
        self.impl = check_impl(impl)

    def build(self, model: nn.Module, device, seed: int) -> SeededAPGD:
        atk = SeededAPGD(model, n_iter=self.n_iter, norm=self.norm, n_restarts=self.n_restarts, eps=self.eps,
                         seed=seed, loss=self.loss, eot_iter=self.eot_iter, rho=self.rho, verbose=False,
                         device=device, logger=logging.getLogger(AA_LOGGER))
        atk.ps_seed, atk.ps_tag = seed, self.name
        return atk

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, indices=None,
                 seed: int = 0) -> torch.Tensor:
        atk = self.prepare(model, x, indices, seed)
        with torch.no_grad():  # as AutoAttack.run_standard_evaluation calls it (gradients: enable_grad inside)
            if self.impl == "compact":
                from .compact import apgd_perturb

                return apgd_perturb(atk, x, y, indices, seed, self.name).detach()
            return atk.perturb(x, y).detach()

    def params(self) -> dict[str, Any]:
        return {"impl": IMPLS[self.impl].format("APGDAttack"), "norm": self.norm, "eps": self.eps,
                "loss": self.loss,
                "n_iter": self.n_iter, "n_restarts": self.n_restarts, "rho": self.rho, "eot_iter": self.eot_iter,
                "randomness": RANDOMNESS}


class APGDT(APGD):
    """APGD on the targeted DLR loss, AutoAttack's standard settings (9 target classes, 100 iterations)."""

    def __init__(self, *, norm: str, eps: float, num_classes: int = 10, n_target_classes: int | None = None,
                 n_iter: int = 100, n_restarts: int = 1, rho: float = 0.75, eot_iter: int = 1, impl: str = "compact"):
        super().__init__(norm=norm, eps=eps, loss="dlr-targeted", n_iter=n_iter, n_restarts=n_restarts, rho=rho,
                         eot_iter=eot_iter, impl=impl)
        self.name = "apgd-t"
        self.n_target_classes = min(9, num_classes - 1) if n_target_classes is None else n_target_classes

    def build(self, model: nn.Module, device, seed: int) -> SeededAPGDTargeted:
        atk = SeededAPGDTargeted(model, n_iter=self.n_iter, norm=self.norm, n_restarts=self.n_restarts,
                                 eps=self.eps, seed=seed, eot_iter=self.eot_iter, rho=self.rho,
                                 n_target_classes=self.n_target_classes, verbose=False, device=device,
                                 logger=logging.getLogger(AA_LOGGER))
        atk.ps_seed, atk.ps_tag = seed, self.name
        return atk

    def params(self) -> dict[str, Any]:
        return {"impl": IMPLS[self.impl].format("APGDAttack_targeted"), "norm": self.norm, "eps": self.eps,
                "loss": "dlr-targeted",
                "n_iter": self.n_iter, "n_restarts": self.n_restarts, "n_target_classes": self.n_target_classes,
                "rho": self.rho, "eot_iter": self.eot_iter, "randomness": RANDOMNESS}


@register_attack("apgd-ce", norms=("Linf", "L2"), source="pyautoattack", aliases=("apgdce", "apgd"),
                 description="APGD on cross-entropy, 100 iterations (AutoAttack standard)", randomness=RANDOMNESS)
def _apgd_ce(*, norm: str, eps: float, num_classes: int, **kw) -> APGD:
    return APGD(norm=norm, eps=eps, loss="ce", **kw)


@register_attack("apgd-dlr", norms=("Linf", "L2"), source="pyautoattack", aliases=("apgddlr",),
                 description="APGD on the DLR loss, 100 iterations", randomness=RANDOMNESS)
def _apgd_dlr(*, norm: str, eps: float, num_classes: int, **kw) -> APGD:
    return APGD(norm=norm, eps=eps, loss="dlr", **kw)


@register_attack("apgd-t", norms=("Linf", "L2"), source="pyautoattack", aliases=("apgdt", "apgd-dlr-t"),
                 description="APGD on the targeted DLR loss, 9 targets × 100 iterations (AutoAttack standard)",
                 randomness=RANDOMNESS)
def _apgd_t(*, norm: str, eps: float, num_classes: int, **kw) -> APGDT:
    return APGDT(norm=norm, eps=eps, num_classes=num_classes, **kw)
