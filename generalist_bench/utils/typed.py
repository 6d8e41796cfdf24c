"""The one coercion layer: typed dataclasses to and from JSON-like dicts, checked against their type hints.

Every hand-off that crosses a file (``Config``, ``TrainSummary``, ``ModelCard``) is a frozen dataclass built by
``from_dict`` from what was parsed, and written by ``to_dict``. Why the standard library's dataclasses and not
pydantic: the configs and cards are small, flat and ours; their error messages are part of the CLI's contract
(``docs/RELIABILITY.md``); and a dependency of pydantic's weight would be the only reason to leave dataclasses.

Two modes, one implementation:

- ``strict=False`` (config files and ``key=value`` overrides, written by people): strings are parsed into the
  declared type (``"3"`` → 3, ``"true"`` → True, ``"8/255"`` → 0.0314…).
- ``strict=True`` (files this package writes: cards, summaries): a value must already have its JSON type; an int is
  accepted where a float is declared; floats must be finite.

A mismatch raises ``TypeMismatch`` (where, what was expected, the value); each caller words its own error
(``ConfigError: train.epochs: expected an integer, got 'x'`` / ``ModelCardError: field 'epochs' must be an
integer``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any


class TypeMismatch(Exception):
    def __init__(self, where: str, expected: str, value: Any, detail: str | None = None):
        super().__init__(detail or f"{where}: expected {expected}, got {value!r}")
        self.where, self.expected, self.value = where, expected, value


class UnknownKeys(Exception):
    def __init__(self, where: str, unknown: list[str], valid: list[str]):
        super().__init__(f"{where}unknown key(s) {', '.join(unknown)}")
        self.where, self.unknown, self.valid = where, unknown, valid


class MissingKeys(Exception):
    def __init__(self, where: str, missing: list[str]):
        super().__init__(f"{where}missing key(s) {', '.join(missing)}")
        self.where, self.missing = where, missing


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def describe(tp: Any) -> str:
    """``int | None`` → ``"an integer or null"``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else describe(a) for a in typing.get_args(tp))
    if origin is dict or tp is dict or dataclasses.is_dataclass(tp):
        return "an object"
    if origin in (tuple, list) or tp in (tuple, list):
        return "a list"
    return {str: "a string", int: "an integer", float: "a number", bool: "true/false"}.get(tp, str(tp))


def coerce(tp: Any, value: Any, where: str = "", *, strict: bool = False, require: bool = False) -> Any:
    """``value`` as type ``tp`` (nested dataclasses built by ``from_dict``, with ``require`` passed on), or
    ``TypeMismatch``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        first: TypeMismatch | None = None
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(a, value, where, strict=strict, require=require)
            except TypeMismatch as e:
                first = first or e
        if strict or first is None:
            raise TypeMismatch(where, describe(tp), value)
        raise first
    if dataclasses.is_dataclass(tp):
        if isinstance(tp, type) and isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise TypeMismatch(where, "a table/mapping", value)
        return from_dict(tp, value, f"{where}." if where else "", strict=strict, require=require)
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise TypeMismatch(where, "a list", value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(args[0], v, f"{where}[{i}]", strict=strict) for i, v in enumerate(value))
        if len(args) != len(value):
            raise TypeMismatch(where, f"{len(args)} items", value)
        return tuple(coerce(a, v, f"{where}[{i}]", strict=strict) for i, (a, v) in enumerate(zip(args, value,
                                                                                                   strict=True)))
    if origin is dict or tp is dict:
        if not (isinstance(value, Mapping) and all(isinstance(k, str) for k in value)):
            raise TypeMismatch(where, "an object", value)
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if not strict and isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise TypeMismatch(where, "true/false", value)
    if tp is int:
        if strict:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            raise TypeMismatch(where, "an integer", value)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeMismatch(where, "an integer", value)
        try:
            f = float(value)
        except ValueError:
            raise TypeMismatch(where, "an integer", value) from None
        if not f.is_integer():
            raise TypeMismatch(where, "an integer", value)
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise TypeMismatch(where, "a number", value)
        if strict:
            if isinstance(value, int | float) and math.isfinite(value):
                return float(value)
            raise TypeMismatch(where, "a number", value)
        if isinstance(value, str) and "/" in value:  # "8/255"
            from ..threat import parse_eps

            try:
                return parse_eps(value)
            except (ValueError, ZeroDivisionError):
                raise TypeMismatch(where, "a number", value) from None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise TypeMismatch(where, "a number", value) from None
    if tp is str:
        if not isinstance(value, str):
            raise TypeMismatch(where, "a string", value)
        return value
    return value


def check_keys(cls: type, data: Mapping[str, Any], where: str = "", *, require: bool = False) -> None:
    """``UnknownKeys`` for a key ``cls`` has no field for; with ``require``, ``MissingKeys`` for a field without a
    default that ``data`` lacks."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UnknownKeys(where, [where + k for k in unknown], sorted(fields))
    if require:
        missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise MissingKeys(where, missing)


def from_dict(cls: type, data: Mapping[str, Any], where: str = "", *, strict: bool = False,
              require: bool = False):
    """Dataclass ``cls`` from ``data``: unknown keys are errors (typos must not pass silently); ``require``: keys
    without a default must be present (else ``MissingKeys``; without it the dataclass's own TypeError)."""
    check_keys(cls, data, where, require=require)
    h = hints(cls)
    return cls(**{k: coerce(h[k], v, f"{where}{k}", strict=strict, require=require) for k, v in data.items()})


def to_dict(obj: Any) -> Any:
    """A dataclass (nested) as plain dicts and lists, in field order."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
