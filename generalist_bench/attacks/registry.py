"""Attack registry for evaluation: names → builders (timm's ``register_model`` pattern).

Every built attack has the same call: ``attack(model, x, y, *, indices=None, seed=0) -> x_adv`` with x, x_adv in
[0, 1], and ``attack.params()`` (a JSON-able dict recorded in results). ``indices`` are the samples' indices in
their data split: every random number an attack draws for sample i comes from a generator seeded by
``(seed, i, tag)``, so a sample's result does not depend on the batch it is attacked in (see each attack's
``randomness`` entry for the exact statement).

``pgd-<k>`` is a family: any positive k works (``pgd-20``, ``pgd-100`` are the paper's).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn as nn

from ..errors import ConfigError, UnknownNameError
from ..plugins import filler
from ..registry import Registry
from .base import sample_seed


class EvalAttack(Protocol):
    name: str

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, indices=None,
                 seed: int = 0) -> torch.Tensor: ...

    def params(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class AttackInfo:
    name: str
    builder: Callable[..., EvalAttack] = field(repr=False)
    norms: tuple[str, ...]
    source: str          # the library whose code runs: pyautoattack | torchattacks | generalist_bench
    description: str
    randomness: str      # how the attack's random numbers are drawn (per-sample statement)


# the built-in attack modules (AutoAttack's under evaluation/), then installed plugins
ATTACKS: Registry[AttackInfo] = Registry("attack", fill=filler("attacks"), origin=lambda info: info.builder)
_ALIASES: dict[str, str] = {}
_PGD_RE = re.compile(r"^pgd-?(\d+)$")


def register_attack(name: str, *, norms: tuple[str, ...], source: str, description: str, randomness: str,
                    aliases: tuple[str, ...] = ()):
    """Decorator for a builder ``fn(*, norm, eps, num_classes, **params) -> attack``. The attack is called as
    ``attack(model, x, y, *, indices, seed)`` and returns adversarial pixels in [0, 1]; ``model`` is a
    ``ModelCall`` (``attacks.model_call``), ``indices`` the points' indices in their split (for per-sample seeding)."""

    def deco(fn):
        ATTACKS.register(name, AttackInfo(name, fn, norms, source, description, randomness))
        for a in aliases:
            _ALIASES[a] = name
        return fn

    return deco


def normalize_name(name: str) -> str:
    """``"PGD_20"`` → ``"pgd-20"``; aliases (``"cw-inf"`` → ``"cw"``) resolved."""
    key = str(name).strip().lower().replace("_", "-").replace("∞", "-inf")
    key = _ALIASES.get(key, key)
    m = _PGD_RE.match(key)
    if m:
        key = f"pgd-{int(m.group(1))}"
    return key


def list_attacks() -> list[str]:
    return [n for n in ATTACKS.names() if n != "pgd-k"] + ["pgd-<k>"]


def get_attack_info(name: str) -> AttackInfo:
    key = normalize_name(name)
    if key in ATTACKS:
        return ATTACKS.get(key)
    m = _PGD_RE.match(key)
    if m and int(m.group(1)) > 0:
        base = ATTACKS.get("pgd-k")
        return AttackInfo(key, base.builder, base.norms, base.source, base.description, base.randomness)
    raise UnknownNameError("attack", str(name), list_attacks())


def build_attack(name: str, *, norm: str, eps: float, num_classes: int = 10,
                 params: Mapping[str, Any] | None = None) -> EvalAttack:
    """Build attack ``name`` for threat model (``norm``, ``eps``); ``params`` override its defaults."""
    info = get_attack_info(name)
    if norm not in info.norms:
        raise ConfigError(f"attack {info.name!r} supports norms {', '.join(info.norms)}, not {norm!r}")
    kw = dict(params or {})
    m = _PGD_RE.match(info.name)
    if m:
        if kw.setdefault("steps", int(m.group(1))) != int(m.group(1)):
            raise ConfigError(f"attack {info.name!r} has {m.group(1)} steps by name; got steps={kw['steps']}")
    try:
        attack = info.builder(norm=norm, eps=float(eps), num_classes=int(num_classes), **kw)
    except TypeError as e:  # an unknown parameter name
        raise ConfigError(f"attack {info.name!r}: bad parameters {sorted(kw)}: {e}") from None
    attack.name = info.name
    return attack


def attack_seed(seed: int, name: str) -> int:
    """The seed an attack named ``name`` passes to per-sample generators: distinct attacks draw independent
    noise for the same sample (PGD-20 and PGD-100 do not share a start)."""
    return sample_seed(int(seed), -1, normalize_name(name))
