"""Threat models at the package's boundary: the norm names (a str enum) and the one eps parser."""

from __future__ import annotations

from enum import Enum
from typing import Any


class Norm(str, Enum):
    LINF = "Linf"
    L2 = "L2"


NORMS: tuple[str, ...] = tuple(n.value for n in Norm)


def normalize_norm(value: Any) -> str:
    """``"linf"``, ``"Linf"``, ``Norm.LINF`` → ``"Linf"``; an ``UnknownNameError`` for anything else."""
    key = str(getattr(value, "value", value)).strip().lower()
    for n in NORMS:
        if key == n.lower():
            return n
    from .errors import UnknownNameError

    raise UnknownNameError("threat model", str(value), NORMS)


def eps_arg(text: str) -> float:
    """``parse_eps`` as an argparse ``type``: a bad value is argparse's one-line usage error."""
    import argparse

    try:
        return parse_eps(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"eps must be a number like 0.1 or 8/255, got {text!r}") from None


def parse_eps(text: Any) -> float:
    """``"8/255"`` → 8/255, ``"0.1"`` → 0.1, a number → itself; ``ValueError`` (or ``ZeroDivisionError``) otherwise."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    num, sep, den = str(text).strip().partition("/")
    return float(num) / float(den) if sep else float(num)
