"""Dataset registry: each data set is one file that registers a ``DatasetInfo`` with a raw loader."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import UnknownNameError
from ..plugins import filler
from ..registry import Registry


@dataclass(frozen=True)
class RawData:
    """A whole data set as resident uint8 tensors (NCHW) with int64 labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str  # where the files were read from


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    shape: tuple[int, int, int]  # C, H, W
    mean: tuple[float, ...]
    std: tuple[float, ...]
    default_eps_linf: float
    loader: Callable[..., RawData] = field(repr=False, compare=False)
    classes: tuple[str, ...] = ()
    robustbench_name: str | None = None  # name of the data set in robustbench's BenchmarkDataset, if any


# this package's data sets, then installed packages' (entry-point group generalist_bench.datasets)
DATASETS: Registry[DatasetInfo] = Registry("dataset", fill=filler("datasets"), origin=lambda info: info.loader)


def register_dataset(info: DatasetInfo, *, title: str | None = None) -> DatasetInfo:
    """Register ``info`` under ``info.name``; ``title`` is its display name ("Fashion-MNIST")."""
    return DATASETS.register(info.name, info, title=title)


def get_dataset_info(name: str) -> DatasetInfo:
    key = str(getattr(name, "value", name)).lower().replace("-", "_")
    if key not in DATASETS:
        raise UnknownNameError("dataset", str(getattr(name, "value", name)), DATASETS.names())
    return DATASETS.get(key)


def list_datasets() -> list[str]:
    return DATASETS.names()


def cache_dir() -> Path:
    """Where unpacked data lives: ``$GENERALIST_BENCH_CACHE`` or ``$XDG_CACHE_HOME/generalist_bench``."""
    if env := os.environ.get("GENERALIST_BENCH_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "generalist_bench"


def candidate_roots(data_dir: str | os.PathLike | None) -> list[tuple[str, Path]]:
    """The places looked at, in order: the ``data_dir`` argument, ``$GENERALIST_BENCH_DATA``, the cache."""
    roots: list[tuple[str, Path]] = []
    if data_dir is not None:
        roots.append(("data_dir argument", Path(data_dir).expanduser()))
    if env := os.environ.get("GENERALIST_BENCH_DATA"):
        roots.append(("$GENERALIST_BENCH_DATA", Path(env).expanduser()))
    roots.append(("cache", cache_dir() / "data"))
    return roots


def downloads_allowed(download: bool | None) -> bool:
    if download is not None:
        return download
    return os.environ.get("GENERALIST_BENCH_OFFLINE", "") in ("", "0", "false")
