"""Typed exceptions. The CLI turns every ``GeneralistBenchError`` into one clear line and exit code 2."""

from __future__ import annotations

from collections.abc import Iterable


class GeneralistBenchError(Exception):
    """Base class for every user-facing error of this package."""


class ConfigError(GeneralistBenchError, ValueError):
    """A configuration value, preset name or override is invalid."""


class UnknownNameError(ConfigError, KeyError):
    """A name (dataset, architecture, attack, suite, preset, objective) is not registered."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DataNotFoundError(GeneralistBenchError, FileNotFoundError):
    """The data set could not be found in any of the places looked at."""


class DataIntegrityError(GeneralistBenchError):
    """Data files exist but fail their checksum or format check."""


class CheckpointError(GeneralistBenchError):
    """A checkpoint is truncated, corrupted, unsafe or for another architecture."""


class IntegrityError(CheckpointError):
    """A file's sha256 does not match the one recorded in its model card."""


class ModelOutputError(GeneralistBenchError):
    """A model's outputs are not logits of the expected shape (probabilities, NaN, wrong classes)."""


class TrainingDivergedError(GeneralistBenchError):
    """The training loss became non-finite; the last good checkpoint is kept."""


class SplitLockedError(GeneralistBenchError):
    """A data split was requested while it is locked (the test split during hyperparameter tuning)."""
