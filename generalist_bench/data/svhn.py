"""SVHN (cropped digits) in torchvision's real format: ``train_32x32.mat`` / ``test_32x32.mat``."""

from __future__ import annotations

import torch
import torchvision

from ..errors import DataIntegrityError, DataNotFoundError
from .registry import DatasetInfo, RawData, cache_dir, candidate_roots, downloads_allowed, register_dataset

FILES = ("train_32x32.mat", "test_32x32.mat")


def _unverified():
    return type("UnverifiedSVHN", (torchvision.datasets.SVHN,), {"_check_integrity": lambda self: True})


def _pair(ds) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(ds.data).contiguous(), torch.as_tensor(ds.labels, dtype=torch.long)  # data is NCHW


def load_svhn(data_dir=None, download=None, verify=True) -> RawData:
    cls = torchvision.datasets.SVHN if verify else _unverified()
    looked: list[str] = []
    for label, root in candidate_roots(data_dir):
        folder = root / "svhn"
        if not all((folder / f).is_file() for f in FILES):
            looked.append(f"{label}: {folder}/{{{','.join(FILES)}}}")
            continue
        try:
            tr, te = cls(str(folder), split="train"), cls(str(folder), split="test")
        except RuntimeError as e:
            raise DataIntegrityError(f"{folder} holds SVHN files that fail torchvision's MD5 check ({e}); replace "
                                     "them with the official files or pass verify=False to load them anyway.") from e
        (trx, try_), (tex, tey) = _pair(tr), _pair(te)
        return RawData(trx, try_, tex, tey, f"{label}: {folder}" + ("" if verify else " (MD5 not verified)"))
    if downloads_allowed(download):
        folder = cache_dir() / "data" / "svhn"
        try:
            tr = torchvision.datasets.SVHN(str(folder), split="train", download=True)
            te = torchvision.datasets.SVHN(str(folder), split="test", download=True)
            (trx, try_), (tex, tey) = _pair(tr), _pair(te)
            return RawData(trx, try_, tex, tey, f"downloaded by torchvision into {folder}")
        except Exception as e:  # network errors come in many types
            looked.append(f"torchvision download into {folder}: failed ({type(e).__name__}: {e})")
    else:
        looked.append("torchvision download: disabled ($GENERALIST_BENCH_OFFLINE or download=False)")
    raise DataNotFoundError("SVHN not found. Looked in:\n  - " + "\n  - ".join(looked)
                            + "\nTo get it: put the official train_32x32.mat and test_32x32.mat in <data_dir>/svhn/.")


SVHN = register_dataset(DatasetInfo(
    name="svhn", num_classes=10, shape=(3, 32, 32), mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970),
    default_eps_linf=8 / 255, loader=load_svhn, classes=tuple(str(i) for i in range(10))), title="SVHN")
