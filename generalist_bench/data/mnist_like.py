"""Fashion-MNIST and MNIST: IDX files in torchvision's ``<Class>/raw/`` layout, read by torchvision.

Fashion-MNIST is the embedded default. It is looked for in this order: the ``data_dir`` argument,
``$GENERALIST_BENCH_DATA``, the cache, the Debian package ``dataset-fashion-mnist`` (gzipped IDX files
under /usr/share/datasets/fashion-mnist/, unpacked once into the cache), then a torchvision download.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import torchvision

from ..errors import DataIntegrityError, DataNotFoundError
from ..utils.io import atomic_write_bytes
from .registry import DatasetInfo, RawData, cache_dir, candidate_roots, downloads_allowed, register_dataset

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _has_raw(root: Path, folder: str) -> bool:
    raw = root / folder / "raw"
    return all((raw / f).is_file() for f in IDX_FILES)


def _unpack_gz(src_dir: Path, folder: str) -> Path | None:
    """Unzip the ``*.gz`` IDX files of ``src_dir`` once into a cache folder of their own; its root, or None.

    The folder is named after the source (path, sizes, mtimes), so files from one place never shadow or
    pollute those of another: a ``data_dir`` never gets the cache's copy of other files, and tiny files
    passed as ``data_dir`` never become the default data set.
    """
    gz = [src_dir / f"{f}.gz" for f in IDX_FILES]
    if not all(g.is_file() for g in gz):
        return None
    stamp = "|".join([str(src_dir.resolve())] + [f"{g.stat().st_size}:{g.stat().st_mtime_ns}" for g in gz])
    dest_root = cache_dir() / "data" / "unpacked" / f"{folder}-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}"
    raw = dest_root / folder / "raw"
    for f in IDX_FILES:
        if not (raw / f).is_file():
            with gzip.open(src_dir / f"{f}.gz", "rb") as g:
                atomic_write_bytes(raw / f, g.read())
    return dest_root


def _to_raw(ds_cls, root: Path, source: str) -> RawData:
    try:
        train = ds_cls(str(root), train=True, download=False)
        test = ds_cls(str(root), train=False, download=False)
    except (AssertionError, RuntimeError, ValueError, TypeError, EOFError, gzip.BadGzipFile) as e:
        raise DataIntegrityError(f"{source}: the IDX files cannot be read ({type(e).__name__}: {e}); they are "
                                 "truncated, corrupted or not IDX files. Replace them with the official files.") from e
    for part, ds in (("train", train), ("test", test)):
        if len(ds.data) != len(ds.targets):
            raise DataIntegrityError(f"{source}: {part} has {len(ds.data)} images but {len(ds.targets)} labels")
    return RawData(train.data.unsqueeze(1).contiguous(), train.targets.long(),
                   test.data.unsqueeze(1).contiguous(), test.targets.long(), source)


def _load(ds_cls, folder: str, data_dir, download, debian_dir: Path | None, how_to_get: str,
          loose_gz: bool = False) -> RawData:
    """``loose_gz``: also accept .gz IDX files straight in a root (the Debian package's layout). MNIST and
    Fashion-MNIST files have the same names, so only one data set may claim them: Fashion-MNIST."""
    looked: list[str] = []
    for label, root in candidate_roots(data_dir):
        if _has_raw(root, folder):
            return _to_raw(ds_cls, root, f"{label}: {root / folder / 'raw'}")
        # gzipped IDX files straight in the folder, or in <folder>/raw: unpack into the cache
        for src in ((root,) if loose_gz else ()) + (root / folder / "raw",):
            if (unpacked := _unpack_gz(src, folder)) is not None:
                return _to_raw(ds_cls, unpacked, f"{label}: {src} (unpacked into {unpacked})")
        looked.append(f"{label}: {root / folder / 'raw'} (IDX files, .gz or unzipped)"
                      + (f" and {root} (.gz)" if loose_gz else ""))
    if debian_dir is not None:
        if (unpacked := _unpack_gz(debian_dir, folder)) is not None:
            return _to_raw(ds_cls, unpacked, f"Debian package: {debian_dir} (unpacked into {unpacked})")
        looked.append(f"Debian package dataset-fashion-mnist: {debian_dir}")
    if downloads_allowed(download):
        root = cache_dir() / "data"
        try:
            ds_cls(str(root), train=True, download=True)
            ds_cls(str(root), train=False, download=True)
            return _to_raw(ds_cls, root, f"downloaded by torchvision into {root}")
        except Exception as e:  # network errors come in many types
            looked.append(f"torchvision download into {root}: failed ({type(e).__name__}: {e})")
            if not _has_raw(root, folder):
                shutil.rmtree(root / folder / "raw", ignore_errors=True)
    else:
        looked.append("torchvision download: disabled ($GENERALIST_BENCH_OFFLINE or download=False)")
    raise DataNotFoundError(
        f"{folder} not found. Looked in:\n  - " + "\n  - ".join(looked) + f"\nTo get it: {how_to_get}")


def load_fashion_mnist(data_dir=None, download=None, verify=True) -> RawData:
    return _load(torchvision.datasets.FashionMNIST, "FashionMNIST", data_dir, download, DEBIAN_FASHION_MNIST,
                 "`apt-get install dataset-fashion-mnist` (Debian), or put the four IDX files (.gz or unzipped) "
                 "in <data_dir>/FashionMNIST/raw/ (or the .gz files in <data_dir>/), or allow the torchvision "
                 "download on a connected machine.", loose_gz=True)


def load_mnist(data_dir=None, download=None, verify=True) -> RawData:
    return _load(torchvision.datasets.MNIST, "MNIST", data_dir, download, None,
                 "put the four MNIST IDX files (.gz or unzipped) in <data_dir>/MNIST/raw/, "
                 "or allow the torchvision download on a connected machine.")


FASHION_MNIST = register_dataset(DatasetInfo(
    name="fashion_mnist", num_classes=10, shape=(1, 28, 28), mean=(0.2860,), std=(0.3530,),
    default_eps_linf=0.1, loader=load_fashion_mnist,
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
             "Ankle boot")), title="Fashion-MNIST")

MNIST = register_dataset(DatasetInfo(
    name="mnist", num_classes=10, shape=(1, 28, 28), mean=(0.1307,), std=(0.3081,), default_eps_linf=0.3,
    loader=load_mnist, classes=tuple(str(i) for i in range(10))), title="MNIST")

