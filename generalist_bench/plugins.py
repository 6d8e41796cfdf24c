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


def registered(kind: str) -> list[str]:
    """The names registered for ``kind`` so far (without loading anything)."""
    if kind == "attacks":
        from .attacks.registry import _ATTACKS as reg
    elif kind == "models":
        from .models.registry import _MODELS as reg
    elif kind == "datasets":
        from .data.registry import _DATASETS as reg
    else:
        from .evaluation.suites import _SUITES as reg
    return sorted(reg)


def same_origin(a: object, b: object) -> bool:
    """Whether two registered objects are the same definition: a module imported again re-registers its names,
    which replaces the entries; another definition under a taken name stays an error."""
    return (getattr(a, "__module__", None), getattr(a, "__qualname__", None)) == \
        (getattr(b, "__module__", None), getattr(b, "__qualname__", None))


def group(kind: str) -> str:
    return f"generalist_bench.{kind}"


def once(kind: str):
    """The loader a registry module keeps: the first call imports the providers of ``kind``; later calls do nothing.
    The flag lives in the returned function, so it lives and dies with the registry module that holds it."""
    done: list[bool] = []

    def load_once() -> None:
        if not done:
            done.append(True)
            load(kind)
    return load_once


def ensure(kind: str) -> None:
    """Fill the registry of ``kind`` (each registry calls ``load`` once in its module's lifetime, and keeps that
    flag itself, so that a re-imported registry is filled again)."""
    if kind == "attacks":
        from .attacks.registry import _ensure_registered as fill
    elif kind == "models":
        from .models.registry import _load_plugins as fill
    elif kind == "datasets":
        from .data.registry import _load_plugins as fill
    elif kind == "suites":
        from .evaluation.suites import _load_plugins as fill
    else:
        raise ValueError(f"unknown registry kind {kind!r}; kinds: {', '.join(KINDS)}")
    fill()


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
