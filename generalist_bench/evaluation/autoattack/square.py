"""Square Attack (Andriushchenko et al. 2020): the official code (``pyautoattack.SquareAttack``), 5,000 queries,
AutoAttack's settings, with per-sample random numbers.

Upstream draws two kinds of random numbers after ``torch.manual_seed(seed)``:

- per point: the initial vertical stripes (Linf) or the signs of the initial and proposed windows (L2),
  ``random_choice([n_points, ...])``: a point's values depend on its row in the batch;
- shared by every point: the square's size schedule, position and (Linf) sign at each query, and (L2) the
  orientation of the window pattern.

``SeededSquare`` keeps every line of upstream's attack and only reroutes the per-point draws to one generator per
point, seeded by ``(seed, index, "square")`` and advanced once per draw the point takes part in. The shared draws
stay on torch's global generator, which upstream re-seeds with ``seed`` at every ``perturb`` call, so every batch
sees the same sequence (as upstream does whenever its seed is fixed). Which points take part in a draw is
replayed from the margins (a point leaves the attack at its first query with margin ≤ 0). A sample's result
therefore depends on (seed, index) only, not on its batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from pyautoattack.square import SquareAttack

from ...attacks.base import sample_seed
from ...attacks.registry import register_attack
from .apgd import IMPLS, Component, check_impl, resolve_indices

RANDOMNESS = ("official pyautoattack code; per-point draws from generators seeded by (seed, index, 'square'), "
              "draws shared by all points (square position/size/sign per query) from torch's generator re-seeded "
              "with seed at each call, as upstream")


class SeededSquare(SquareAttack):
    row_indices: Any = None
    ps_seed: int = 0
    ps_tag: str = "square"
    _gens: list[torch.Generator] | None = None

    def perturb(self, x, y=None):
        if y is None or self.targeted or self.loss != "margin" or self.n_restarts != 1:
            raise NotImplementedError("SeededSquare supports the untargeted margin loss with one restart")
        idx = resolve_indices(self.row_indices, x)
        acc = self.predict(x).max(1)[1] == y  # the points upstream's perturb attacks (same forward, same mode)
        rows = idx[acc.detach().cpu()].tolist()
        self._gens = [torch.Generator().manual_seed(sample_seed(self.ps_seed, i, self.ps_tag)) for i in rows]
        self._active = torch.arange(len(rows))
        try:
            return super().perturb(x, y)
        finally:
            self._gens = self._active = None

    def random_choice(self, shape):
        if self._gens is None or len(shape) != 4:  # a draw shared by all points
            return super().random_choice(shape)
        if shape[0] != len(self._active):
            raise RuntimeError(f"Square bookkeeping lost track of the attacked points ({shape[0]} rows, "
                               f"{len(self._active)} expected)")
        rest = tuple(shape[1:])
        t = [2 * torch.rand(rest, generator=self._gens[i]) - 1 for i in self._active.tolist()]
        t = torch.stack(t) if t else torch.empty(tuple(shape))
        return torch.sign(t).to(self.device)

    def margin_and_loss(self, x, y):
        margin, loss = super().margin_and_loss(x, y)
        if self._gens is not None:
            if len(margin) != len(self._active):
                raise RuntimeError("Square bookkeeping lost track of the attacked points")
            self._active = self._active[(margin > 0).cpu()]  # upstream: a point stays while its best margin > 0
        return margin, loss


class CompactSquare(SeededSquare):
    """``SeededSquare`` whose Linf loop skips queries that propose the current best image (``compact``)."""

    def attack_single_run(self, x, y):
        if self.norm != "Linf":
            return super().attack_single_run(x, y)
        from .compact import square_linf_run

        return square_linf_run(self, x, y)


class Square(Component):
    def __init__(self, *, norm: str, eps: float, n_queries: int = 5000, p_init: float = 0.8, impl: str = "compact"):
        self.name, self.norm, self.eps, self.n_queries, self.p_init = "square", norm, eps, n_queries, p_init
        self.impl = check_impl(impl)

    def build(self, model: nn.Module, device, seed: int) -> SeededSquare:
        cls = CompactSquare if self.impl == "compact" else SeededSquare
        atk = cls(model, norm=self.norm, n_queries=self.n_queries, eps=self.eps, p_init=self.p_init,
                           n_restarts=1, seed=seed, verbose=False, targeted=False, loss="margin",
                           resc_schedule=False, device=device)
        atk.ps_seed, atk.ps_tag = seed, self.name
        return atk

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, indices=None,
                 seed: int = 0) -> torch.Tensor:
        atk = self.prepare(model, x, indices, seed)
        with torch.no_grad():  # as AutoAttack.run_standard_evaluation calls it
            return atk.perturb(x, y).detach()

    def params(self) -> dict[str, Any]:
        return {"impl": IMPLS[self.impl].format("SquareAttack"), "norm": self.norm, "eps": self.eps,
                "n_queries": self.n_queries,
                "p_init": self.p_init, "n_restarts": 1, "loss": "margin", "resc_schedule": False,
                "randomness": RANDOMNESS}


@register_attack("square", norms=("Linf", "L2"), source="pyautoattack",
                 description="Square Attack, 5,000 queries, p_init 0.8 (AutoAttack standard)", randomness=RANDOMNESS)
def _square(*, norm: str, eps: float, num_classes: int, **kw) -> Square:
    return Square(norm=norm, eps=eps, **kw)
