"""CIFAR-10 and CIFAR-100 in torchvision's real on-disk format (``cifar-10-batches-py`` pickles).

torchvision verifies the MD5 of every batch file. A file that fails it is reported as a
``DataIntegrityError``; ``verify=False`` skips the check explicitly (used by tests on fabricated files
written in the exact format, never silently).
"""

from __future__ import annotations

import pickle

import torch
import torchvision

from ..errors import DataIntegrityError, DataNotFoundError
from .registry import DatasetInfo, RawData, cache_dir, candidate_roots, downloads_allowed, register_dataset


def _unverified(cls):
    """``cls`` without torchvision's MD5 checks: the batch files' (``_check_integrity``) and the meta file's
    (checked inside ``_load_meta``; we skip reading the meta file, the class names live in ``DatasetInfo``)."""

    def _load_meta(self) -> None:
        self.classes, self.class_to_idx = [], {}

    return type(f"Unverified{cls.__name__}", (cls,), {"_check_integrity": lambda self: True, "_load_meta": _load_meta})


def _to_raw(ds) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # N,H,W,C uint8 -> NCHW
    return x, torch.as_tensor(ds.targets, dtype=torch.long)


def _load(cls, folder: str, data_dir, download, verify: bool) -> RawData:
    looked: list[str] = []
    ds_cls = cls if verify else _unverified(cls)
    for label, root in candidate_roots(data_dir):
        if not (root / folder).is_dir():
            looked.append(f"{label}: {root / folder}")
            continue
        probe = ds_cls.__new__(ds_cls)
        probe.root = str(root)
        if not probe._check_integrity():
            raise DataIntegrityError(
                f"{root / folder} exists but its files fail torchvision's MD5 check (corrupted, truncated or not "
                f"the official release). Replace them with the official files, or pass verify=False to load them "
                f"anyway (results are then not comparable with published numbers).")
        try:
            tr, te = ds_cls(str(root), train=True, download=False), ds_cls(str(root), train=False, download=False)
        except (RuntimeError, OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as e:
            # the meta file's MD5 (torchvision checks it separately), or unreadable batches with verify=False
            raise DataIntegrityError(f"{root / folder} cannot be loaded ({type(e).__name__}: {e}). Replace it with "
                                     "the official python-version files.") from e
        (trx, try_), (tex, tey) = _to_raw(tr), _to_raw(te)
        return RawData(trx, try_, tex, tey, f"{label}: {root / folder}" + ("" if verify else " (MD5 not verified)"))
    if downloads_allowed(download):
        root = cache_dir() / "data"
        try:
            tr, te = cls(str(root), train=True, download=True), cls(str(root), train=False, download=True)
            (trx, try_), (tex, tey) = _to_raw(tr), _to_raw(te)
            return RawData(trx, try_, tex, tey, f"downloaded by torchvision into {root}")
        except Exception as e:  # network errors come in many types
            looked.append(f"torchvision download into {root}: failed ({type(e).__name__}: {e})")
    else:
        looked.append("torchvision download: disabled ($GENERALIST_BENCH_OFFLINE or download=False)")
    raise DataNotFoundError(f"{folder} not found. Looked in:\n  - " + "\n  - ".join(looked)
                            + f"\nTo get it: extract the official python-version archive so that <data_dir>/{folder}/ "
                            "exists, or allow the torchvision download on a connected machine.")


def load_cifar10(data_dir=None, download=None, verify=True) -> RawData:
    return _load(torchvision.datasets.CIFAR10, "cifar-10-batches-py", data_dir, download, verify)


def load_cifar100(data_dir=None, download=None, verify=True) -> RawData:
    return _load(torchvision.datasets.CIFAR100, "cifar-100-python", data_dir, download, verify)


CIFAR10 = register_dataset(DatasetInfo(
    name="cifar10", num_classes=10, shape=(3, 32, 32), mean=(0.4914, 0.4822, 0.4465), std=(0.2471, 0.2435, 0.2616),
    default_eps_linf=8 / 255, loader=load_cifar10, robustbench_name="cifar10",
    classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")),
    title="CIFAR-10")

CIFAR100 = register_dataset(DatasetInfo(
    name="cifar100", num_classes=100, shape=(3, 32, 32), mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762), default_eps_linf=8 / 255, loader=load_cifar100, robustbench_name="cifar100"),
    title="CIFAR-100")
