"""Where the registries' entries come from: this package's own provider modules, then installed plugins.

A registry kind (``attacks``, ``models``, ``datasets``, ``suites``) is filled on first use by importing, in order,
the built-in provider modules of ``BUILTIN`` and every entry point of the group ``generalist_bench.<kind>`` that an
installed distribution declares, e.g. in its ``pyproject.toml``::

    [project.entry-points."generalist_bench.attacks"]
    my_attack = "my_package.attacks"      # a module that calls generalist_bench.attacks.register_attack(...)

A built-in provider that fails to import is this package's bug and raises. A plugin that fails is reported by
name (a warning now, ``broken(kind)`` later, the CLI's listings) and the rest keeps working.
"""

from __future__ import annotations

import argparse
import importlib
import warnings
from importlib.metadata import entry_points

KINDS = ("attacks", "models", "datasets", "suites")
BUILTIN: dict[str, tuple[str, ...]] = {
    "attacks": ("generalist_bench.attacks.cw", "generalist_bench.attacks.fgsm", "generalist_bench.attacks.mim",
                "generalist_bench.attacks.pgd_family", "generalist_bench.evaluation.autoattack"),
    "models": ("generalist_bench.models",),
    "datasets": ("generalist_bench.data",),
    "suites": ("generalist_bench.evaluation.suites",),
}
_broken: dict[str, dict[str, str]] = {k: {} for k in KINDS}
_plugins: dict[str, dict[str, str]] = {k: {} for k in KINDS}
_added: dict[str, dict[str, list[str]]] = {k: {} for k in KINDS}  # plugin → the names it registered


def registry(kind: str):
    """The ``Registry`` that holds ``kind``."""
    from .registry import registry_of

    if kind not in KINDS:
        raise ValueError(f"unknown registry kind {kind!r}; kinds: {', '.join(KINDS)}")
    return registry_of(kind)


def registered(kind: str) -> list[str]:
    """The names registered for ``kind`` so far (without loading anything)."""
    return registry(kind).names(fill=False)


def group(kind: str) -> str:
    return f"generalist_bench.{kind}"


def filler(kind: str):
    """The ``fill`` function of the registry of ``kind``: imports its providers when the registry is first used (the
    once-only flag is the registry's own, so it lives and dies with the registry module that holds it)."""
    return lambda: load(kind)


def ensure(kind: str) -> None:
    """Fill the registry of ``kind`` (once in its lifetime)."""
    registry(kind).fill()


def load(kind: str) -> None:
    """Import the providers of ``kind``: the built-in modules, then every installed entry point of its group.
    Called by the registry of ``kind`` on its first use; use ``ensure`` elsewhere."""
    if kind not in KINDS:
        raise ValueError(f"unknown registry kind {kind!r}; kinds: {', '.join(KINDS)}")
    for module in BUILTIN[kind]:
        importlib.import_module(module)
    for ep in entry_points(group=group(kind)):
        if ep.name in _plugins[kind] or ep.name in _broken[kind]:
            continue
        dist = getattr(ep.dist, "name", None) or "?"
        before = set(registered(kind))
        try:
            ep.load()
        except Exception as e:  # noqa: BLE001  a third party's bug must not break the built-ins
            _broken[kind][ep.name] = f"{type(e).__name__}: {e}"
            warnings.warn(f"generalist_bench: plugin {ep.name!r} ({ep.value}, from {dist}) in group {group(kind)} "
                          f"failed to load and is skipped: {type(e).__name__}: {e}", stacklevel=2)
        else:
            _plugins[kind][ep.name] = f"{ep.value} (from {dist})"
            _added[kind][ep.name] = sorted(set(registered(kind)) - before)


def plugins(kind: str) -> dict[str, str]:
    """The plugins of ``kind`` that loaded: entry-point name → ``module (from distribution)``."""
    ensure(kind)
    return dict(_plugins[kind])


def broken(kind: str) -> dict[str, str]:
    """The plugins of ``kind`` that failed to load: entry-point name → the error."""
    ensure(kind)
    return dict(_broken[kind])


def reset() -> None:
    """Forget the plugin bookkeeping (registrations stay in their registries)."""
    for d in (*_broken.values(), *_plugins.values(), *_added.values()):
        d.clear()


# ------------------------------------------------------------------------------------- `generalist-bench plugins`
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kinds", nargs="*", metavar="KIND", help=f"what to list: {', '.join(KINDS)} (default: all)")


def run(args: argparse.Namespace) -> int:
    from .errors import UnknownNameError

    for kind in args.kinds:
        if kind not in KINDS:
            raise UnknownNameError("registry kind", kind, KINDS)
    for kind in args.kinds or KINDS:
        ensure(kind)
        from_plugin = {n: ep for ep, names in _added[kind].items() for n in names}
        print(f"{kind}:")
        for name in registered(kind):
            origin = f"  [plugin {from_plugin[name]}: {_plugins[kind][from_plugin[name]]}]" if name in from_plugin \
                else ""
            print(f"  {name}{origin}")
        for ep, err in _broken[kind].items():
            print(f"  BROKEN plugin {ep!r} (group {group(kind)}): {err}")
    return 0
