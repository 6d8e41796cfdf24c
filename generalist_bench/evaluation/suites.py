"""Evaluation suites: a registry of names → attack lists, and the plan an evaluation runs.

- ``autoattack``: the official AutoAttack, standard version (APGD-CE, APGD-T, FAB-T, Square; 100 iterations,
  9 targets, 5,000 queries), run in order on the still-robust points (cumulative reporting).
- ``paper``: the Generalist paper's table — natural, PGD-20, PGD-100, MIM, CW∞, APGD-CE, APGD-DLR, APGD-T,
  FAB-T, Square, AutoAttack — each attack on every correctly classified point (individual reporting).
- ``quick``: natural + PGD-20 (validation during training).

An explicit list of attack names is a custom suite with individual reporting. Two pseudo-attacks are
understood everywhere: ``natural`` (clean accuracy) and ``autoattack`` (the standard chain).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..attacks.registry import build_attack, get_attack_info, list_attacks, normalize_name
from ..errors import ConfigError, UnknownNameError
from ..plugins import filler
from ..registry import Registry
from .result import AA_COMPONENTS

PSEUDO = ("natural", "autoattack")
IMPL_ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square")  # components with a compact and an upstream loop
_PSEUDO_ALIASES = {"clean": "natural", "nat": "natural", "aa": "autoattack", "auto-attack": "autoattack"}


@dataclass(frozen=True)
class SuiteInfo:
    name: str
    mode: str                                   # cumulative | individual
    attacks: Callable[[str], list[str]] = field(repr=False)  # norm → attack names
    description: str = ""


# this module's suites, then installed packages' (entry-point group generalist_bench.suites)
SUITES: Registry[SuiteInfo] = Registry("suite", fill=filler("suites"), origin=lambda info: info.attacks)


def register_suite(name: str, mode: str, description: str):
    def deco(fn: Callable[[str], list[str]]):
        SUITES.register(name, SuiteInfo(name, mode, fn, description))
        return fn
    return deco


@register_suite("autoattack", "cumulative", "official AutoAttack (standard): APGD-CE, APGD-T, FAB-T, Square")
def _autoattack(norm: str) -> list[str]:
    return list(AA_COMPONENTS)


@register_suite("paper", "individual", "natural, PGD-20, PGD-100, MIM, CW∞, APGD-CE, APGD-DLR, APGD-T, FAB-T, "
                                       "Square, AutoAttack (MIM is Linf-only: dropped for L2)")
def _paper(norm: str) -> list[str]:
    names = ["natural", "pgd-20", "pgd-100", "mim", "cw", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square",
             "autoattack"]
    return [n for n in names if n in PSEUDO or norm in get_attack_info(n).norms]


@register_suite("quick", "individual", "natural + PGD-20 (step eps/4)")
def _quick(norm: str) -> list[str]:
    return ["natural", "pgd-20"]


def list_suites() -> list[str]:
    return SUITES.names()


def valid_attack_names() -> list[str]:
    return sorted(PSEUDO) + list_attacks()


def canonical(name: str) -> str:
    key = normalize_name(name)
    key = _PSEUDO_ALIASES.get(key, key)
    if key in PSEUDO:
        return key
    try:
        return get_attack_info(key).name
    except UnknownNameError:
        raise UnknownNameError("attack", str(name), valid_attack_names()) from None


def _changes(overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Overrides that change what an attack computes (``impl`` only picks the code that computes it)."""
    out = {a: {k: v for k, v in p.items() if k != "impl"} for a, p in overrides.items()}
    return {a: p for a, p in out.items() if p}


@dataclass(frozen=True)
class Plan:
    suite: str
    mode: str
    entries: tuple[str, ...]                      # reported attacks, in order (pseudo-attacks included)
    atoms: tuple[str, ...]                        # attacks that actually run, in run order
    attacks: dict[str, Any] = field(repr=False)   # atom → built attack
    protocol_attacks: tuple[dict[str, Any], ...] = ()
    skipped: tuple[str, ...] = ()


def _parse_entry(item: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, Mapping):
        return item["name"], dict(item.get("params") or {})
    if isinstance(item, Sequence) and len(item) == 2 and isinstance(item[0], str):
        return item[0], dict(item[1] or {})
    raise ConfigError(f"bad attack entry {item!r}: use a name, (name, params) or {{'name': ..., 'params': ...}}")


def resolve_plan(suite: str | None, attacks: str | Sequence[Any] | None, *, norm: str, eps: float,
                 num_classes: int, attack_params: Mapping[str, Mapping[str, Any]] | None = None,
                 impl: str = "compact") -> Plan:
    """The suite (or explicit attack list) as a plan. ``attack_params`` overrides an attack's defaults by name
    (a suite with overridden parameters is renamed ``<suite>-custom``). ``impl`` picks the implementation of the
    AutoAttack components that have two (``compact`` or ``pyautoattack``; an ``impl`` in attack_params wins);
    it is not a parameter change: the suite keeps its name."""
    overrides: dict[str, dict[str, Any]] = {canonical(k): dict(v) for k, v in (attack_params or {}).items()}
    skipped: list[str] = []
    if attacks is not None:
        items = [a for a in attacks.split(",") if a.strip()] if isinstance(attacks, str) else list(attacks)
        if not items:
            raise ConfigError("the attack list is empty")
        suite_name, mode, entries = "custom", "individual", []
        for item in items:
            name, params = _parse_entry(item)
            name = canonical(name)
            if params:
                overrides.setdefault(name, {}).update(params)
            if name not in entries:
                entries.append(name)
    else:
        suite_name = str(suite or "autoattack").lower()
        info = SUITES.get(suite_name)
        mode, entries = info.mode, info.attacks(norm)
        if suite_name == "paper" and norm != "Linf":
            skipped.append("mim (torchattacks' MI-FGSM is Linf-only)")
        if _changes(overrides):
            suite_name += "-custom"
    atoms: list[str] = []
    for e in entries:
        for a in (AA_COMPONENTS if e == "autoattack" else () if e == "natural" else (e,)):
            if a not in atoms:
                atoms.append(a)
    unused = set(overrides) - set(atoms)
    if unused:
        raise ConfigError(f"attack_params for attack(s) not in the plan: {', '.join(sorted(unused))}")
    def params_for(a: str) -> dict[str, Any] | None:
        p = overrides.get(a)
        if a in IMPL_ATTACKS and (p is None or "impl" not in p):
            p = {**(p or {}), "impl": impl}
        return p

    built = {a: build_attack(a, norm=norm, eps=eps, num_classes=num_classes, params=params_for(a)) for a in atoms}
    proto = []
    for e in entries:
        if e == "natural":
            proto.append({"name": e, "params": {}})
        elif e == "autoattack":
            version = "custom" if any(c in _changes(overrides) for c in AA_COMPONENTS) else "standard"
            proto.append({"name": e, "params": {"version": version, "components": list(AA_COMPONENTS),
                                                "component_params": {c: built[c].params() for c in AA_COMPONENTS}}})
        else:
            proto.append({"name": e, "params": built[e].params()})
    if mode == "cumulative":  # the components themselves are the reported attacks
        proto = [{"name": a, "params": built[a].params()} for a in atoms]
    return Plan(suite_name, mode, tuple(entries), tuple(atoms), built, tuple(proto), tuple(skipped))
