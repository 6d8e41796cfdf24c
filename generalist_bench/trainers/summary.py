"""``TrainSummary``: what a finished training run hands to publishing (``summary.json`` beside its checkpoints)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..utils import typed


class SummaryError(CheckpointError):
    """A ``summary.json`` that is not valid JSON, lacks a field or has one of the wrong type."""


def _check(obj: Any, where: str = "") -> None:
    """Every field of a frozen summary dataclass strict-checked against its type (when it is made, so a bad value
    is an error where it is written, not a trial that looks unfinished when read back)."""
    h = typed.hints(type(obj))
    for f in dataclasses.fields(obj):
        try:
            value = typed.coerce(h[f.name], getattr(obj, f.name), where + f.name, strict=True)
        except typed.TypeMismatch as e:
            raise SummaryError(f"summary: field {e.where!r} must be {e.expected}, got {e.value!r:.80}") from None
        object.__setattr__(obj, f.name, value)


@dataclass(frozen=True)
class Selection:
    split: str                          # always "val": checkpoints are chosen on the validation split
    criterion: str
    n_val: int
    attack: str                         # e.g. "PGD-20 (Linf, eps 0.1, step eps/4, seeded uniform start)"
    chosen_epoch: int | None
    chosen: dict[str, Any] | None       # the chosen epoch's validation record

    def __post_init__(self) -> None:
        _check(self, "selection.")


@dataclass(frozen=True)
class TrainSummary:
    config_name: str
    trainer: str
    epochs: int
    seed: int
    selection: Selection
    last: dict[str, Any] | None         # the last epoch's validation numbers
    train_wall_time_s: float
    img_per_s_mean: float | None
    n_train: int
    data_source: str
    world_size: int
    hardware: dict[str, Any]            # of the session that trained it
    versions: dict[str, Any]
    commit: str | None

    def __post_init__(self) -> None:
        _check(self)

    def to_dict(self) -> dict[str, Any]:
        return typed.to_dict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "summary") -> TrainSummary:
        if not isinstance(data, dict):
            raise SummaryError(f"{source}: expected a JSON object")
        try:
            return typed.from_dict(cls, data, strict=True, require=True)  # nested parts: required keys too
        except typed.UnknownKeys as e:
            raise SummaryError(f"{source}: unknown field(s) {', '.join(e.unknown)}") from None
        except typed.MissingKeys as e:
            raise SummaryError(f"{source}: missing field(s) {e.where}{(', ' + e.where).join(e.missing)}") from None
        except typed.TypeMismatch as e:
            raise SummaryError(f"{source}: field {e.where!r} must be {e.expected}, got {e.value!r:.80}") from None
        except SummaryError as e:  # raised by __post_init__ of a nested part
            raise SummaryError(f"{source}: {str(e).removeprefix('summary: ')}") from None

    @classmethod
    def load(cls, path: str | Path) -> TrainSummary:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as e:
            raise SummaryError(f"{path}: cannot be read ({e.strerror or e})") from None
        except ValueError as e:
            raise SummaryError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(data, str(path))
