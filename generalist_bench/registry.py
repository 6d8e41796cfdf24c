"""One registry type for everything looked up by name: data sets, architectures, attacks, suites, objectives,
trainers and presets.

A ``Registry`` maps a name to an ``Entry``: the registered object, its display title (cards, the leaderboard) and,
where it is drawn, its plot style. A registry fills itself on first use by calling its ``fill`` function once (the
built-in provider modules, then installed plugins: ``plugins.filler(kind)``), so that importing a registry module
registers nothing by side effect beyond its own definitions.

Registering a name twice is allowed only for the same definition with the same title and style (a module imported
again re-registers its names, replacing the entries); anything else under a taken name is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Style:
    """How a name is drawn on the leaderboard's trade-off plot (matplotlib colour and marker)."""

    colour: str
    marker: str


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    value: T
    title: str                 # display name; the name itself unless registered with one
    style: Style | None = None


def same_origin(a: object, b: object) -> bool:
    """Whether two registered objects are the same definition (module and qualified name)."""
    ka = (getattr(a, "__module__", None), getattr(a, "__qualname__", None))
    return None not in ka and ka == (getattr(b, "__module__", None), getattr(b, "__qualname__", None))


class Registry(Generic[T]):
    """Name → ``Entry``. ``label`` names the kind in messages ("attack", "dataset", ...); ``fill`` is called once,
    before the first lookup, to import whatever registers into it; ``origin(value)`` is the object whose definition
    decides whether a second registration of a name is the same one (by default: an equal value, or a function
    of the same definition)."""

    def __init__(self, label: str, *, fill: Callable[[], None] | None = None,
                 origin: Callable[[T], object] | None = None):
        self.label = label
        self._fill = fill
        self._filled = fill is None
        self._origin = origin
        self._entries: dict[str, Entry[T]] = {}

    # ---------------------------------------------------------------- registration
    def register(self, name: str, value: T, *, title: str | None = None, style: Style | None = None) -> T:
        old = self._entries.get(name)
        if old is not None and (not self._same(old.value, value) or (old.title, old.style) != (title or name, style)):
            raise ValueError(f"{self.label} {name!r} is already registered")
        self._entries[name] = Entry(name, value, title or name, style)
        return value

    def _same(self, a: T, b: T) -> bool:
        if self._origin is not None:
            return same_origin(self._origin(a), self._origin(b))
        return a == b or same_origin(a, b)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    # ---------------------------------------------------------------- lookup
    def fill(self) -> None:
        """Import the providers (once in this registry's lifetime)."""
        if not self._filled:
            self._filled = True
            self._fill()

    def entry(self, name: str) -> Entry[T]:
        if name not in self._entries:
            self.fill()
        if name not in self._entries:
            raise UnknownNameError(self.label, str(name), self._entries)
        return self._entries[name]

    def get(self, name: str) -> T:
        return self.entry(name).value

    def title(self, name: str) -> str:
        """The display title of ``name``; the name itself for one that is not registered (e.g. an old card's)."""
        if name not in self._entries:
            self.fill()
        e = self._entries.get(name)
        return e.title if e is not None else name

    def style(self, name: str) -> Style | None:
        if name not in self._entries:
            self.fill()
        e = self._entries.get(name)
        return e.style if e is not None else None

    def names(self, *, fill: bool = True) -> list[str]:
        """Registered names, sorted (``fill=False``: what is registered so far, without importing anything)."""
        if fill:
            self.fill()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        if name not in self._entries:
            self.fill()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


# ------------------------------------------------------------------------------------------ display lookups
# where each registry lives (imported on first use: modules that only display names, such as cards and the
# leaderboard, stay free of torch until they need a title)
LOCATIONS = {"attacks": ("generalist_bench.attacks.registry", "ATTACKS"),
             "models": ("generalist_bench.models.registry", "MODELS"),
             "datasets": ("generalist_bench.data.registry", "DATASETS"),
             "suites": ("generalist_bench.evaluation.suites", "SUITES"),
             "objectives": ("generalist_bench.trainers.registry", "OBJECTIVES"),
             "trainers": ("generalist_bench.trainers.registry", "TRAINERS"),
             "presets": ("generalist_bench.presets", "PRESETS")}
_TITLED = {"architecture": "models", "dataset": "datasets", "trainer": "trainers"}  # title(kind, ...) → registry


def registry_of(kind: str) -> Registry:
    """The registry of ``kind`` (a key of ``LOCATIONS``, or "architecture", "dataset", "trainer")."""
    import importlib

    module, attr = LOCATIONS[_TITLED.get(kind, kind)]
    return getattr(importlib.import_module(module), attr)


def title(kind: str, name: str) -> str:
    """The display title registered for ``name`` (the name itself if it has none or is unknown)."""
    return registry_of(kind).title(name)


def trainer_style(trainer: str) -> Style | None:
    """The plot style of a trainer given by name or by display title (leaderboard rows hold titles)."""
    reg = registry_of("trainer")
    for name in reg.names():
        e = reg.entry(name)
        if trainer in (name, e.title):
            return e.style
    return None


UNSTYLED = Style("#9467bd", "^")  # how every plot draws a trainer registered without a plot style


def plot_style(trainer: str) -> Style:
    """``trainer_style``, or ``UNSTYLED`` for a trainer without one: what the leaderboard and tuning plots draw."""
    return trainer_style(trainer) or UNSTYLED
