"""``load_dataset``: train / val / test splits as resident float tensors in [0, 1], NCHW, int64 labels.

``val`` is a deterministic, seeded hold-out of the training set used for model selection; ``train`` is
the rest; ``test`` is touched only for final evaluation.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..errors import ConfigError, SplitLockedError
from .registry import DatasetInfo, RawData, get_dataset_info

SPLITS = ("train", "val", "test")
DEFAULT_VAL_SIZE = 5000
DEFAULT_SPLIT_SEED = 0

_RAW_CACHE: dict[tuple, RawData] = {}
_LOCK = threading.Lock()
_LOCKED_SPLITS: dict[str, str] = {}  # split → why it may not be read now (see ``split_locked``)


@contextlib.contextmanager
def split_locked(split: str, why: str) -> Iterator[None]:
    """While active, ``load_dataset(..., split)`` raises ``SplitLockedError`` (e.g. ``test`` during tuning).

    Process-wide; nests; the lock is lifted on exit even after an exception.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    previous = _LOCKED_SPLITS.get(split)
    _LOCKED_SPLITS[split] = why
    try:
        yield
    finally:
        if previous is None:
            del _LOCKED_SPLITS[split]
        else:
            _LOCKED_SPLITS[split] = previous


@dataclass(frozen=True)
class DatasetSplit:
    """Images ``x`` (float32, [0,1], NCHW) and labels ``y`` (int64); ``indices`` into the source split."""

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    indices: torch.Tensor
    info: DatasetInfo
    source: str

    def __iter__(self) -> Iterator[torch.Tensor]:  # x, y = load_dataset(...)
        return iter((self.x, self.y))

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, n: int | None) -> DatasetSplit:
        """The first ``n`` points (RobustBench's rule); ``None`` keeps everything."""
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise ConfigError(f"n must be positive, got {n}")
        return DatasetSplit(self.name, self.split, self.x[:n], self.y[:n], self.indices[:n], self.info, self.source)


def load_raw(name: str, data_dir=None, download=None, verify: bool = True) -> RawData:
    info = get_dataset_info(name)
    key = (info.name, str(data_dir), os.environ.get("GENERALIST_BENCH_DATA"), os.environ.get("GENERALIST_BENCH_CACHE"),
           verify)
    with _LOCK:
        if key not in _RAW_CACHE:
            _RAW_CACHE[key] = info.loader(data_dir=data_dir, download=download, verify=verify)
        return _RAW_CACHE[key]


def split_indices(n_train: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices: a seeded permutation; val = its first ``val_size`` entries, both sorted."""
    if not 0 <= val_size < n_train:
        raise ConfigError(f"val_size must be in [0, {n_train}), got {val_size}")
    perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:].sort().values, perm[:val_size].sort().values


def load_dataset(name: str, split: str, data_dir: str | os.PathLike | None = None, *,
                 val_size: int = DEFAULT_VAL_SIZE, split_seed: int = DEFAULT_SPLIT_SEED,
                 download: bool | None = None, verify: bool = True) -> DatasetSplit:
    """Load ``split`` (train | val | test) of data set ``name`` as float tensors in [0, 1].

    >>> x, y = load_dataset("fashion_mnist", "test")   # 10,000 × 1 × 28 × 28, labels int64
    """
    info = get_dataset_info(name)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if split in _LOCKED_SPLITS:
        raise SplitLockedError(f"the {split} split of {info.name} may not be read here: {_LOCKED_SPLITS[split]}")
    raw = load_raw(info.name, data_dir=data_dir, download=download, verify=verify)
    if split == "test":
        idx = torch.arange(len(raw.test_y))
        x_u8, y = raw.test_x, raw.test_y
    else:
        tr, va = split_indices(len(raw.train_y), val_size, split_seed)
        idx = tr if split == "train" else va
        x_u8, y = raw.train_x[idx], raw.train_y[idx]
    x = x_u8.to(torch.float32).div_(255.0)
    return DatasetSplit(info.name, split, x, y.clone(), idx, info, raw.source)
