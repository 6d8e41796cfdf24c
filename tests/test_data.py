"""Data: real Fashion-MNIST splits, the discovery order, clear errors, and MNIST / CIFAR / SVHN read through
torchvision's real code from tiny files written in the exact on-disk formats."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from generalist_bench.data import list_datasets, load_dataset, mnist_like, split_indices, splits
from generalist_bench.errors import ConfigError, DataIntegrityError, DataNotFoundError, UnknownNameError

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# --------------------------------------------------------------------------------------------- helpers
def idx_images(a: np.ndarray) -> bytes:
    """IDX3: magic 2051 (0x00000803: unsigned byte, 3 dims), then N, rows, cols as big-endian uint32."""
    return struct.pack(">IIII", 2051, *a.shape) + a.astype(np.uint8).tobytes()


def idx_labels(a: np.ndarray) -> bytes:
    """IDX1: magic 2049 (0x00000801: unsigned byte, 1 dim), then N."""
    return struct.pack(">II", 2049, len(a)) + a.astype(np.uint8).tobytes()


def make_idx(n_train: int = 12, n_test: int = 4, seed: int = 0) -> dict[str, tuple[bytes, np.ndarray]]:
    """The four IDX files (bytes) of a tiny MNIST-like data set, with the arrays they hold."""
    r = np.random.default_rng(seed)
    xtr, xte = r.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), r.integers(0, 256, (n_test, 28, 28), np.uint8)
    ytr, yte = np.arange(n_train) % 10, (np.arange(n_test) + 3) % 10
    return {"train-images-idx3-ubyte": (idx_images(xtr), xtr), "train-labels-idx1-ubyte": (idx_labels(ytr), ytr),
            "t10k-images-idx3-ubyte": (idx_images(xte), xte), "t10k-labels-idx1-ubyte": (idx_labels(yte), yte)}


def write_idx(folder: Path, files: dict, gz: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, _) in files.items():
        if gz:
            with gzip.open(folder / f"{name}.gz", "wb") as f:
                f.write(data)
        else:
            (folder / name).write_bytes(data)
    return folder


def assert_matches_idx(ds, files: dict, split: str = "test") -> None:
    prefix = "t10k" if split == "test" else "train"
    x, y = files[f"{prefix}-images-idx3-ubyte"][1], files[f"{prefix}-labels-idx1-ubyte"][1]
    assert ds.x.shape == (len(x), 1, 28, 28) and ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64
    assert torch.equal(ds.x, torch.from_numpy(x).unsqueeze(1).float() / 255)
    assert torch.equal(ds.y, torch.from_numpy(y).long())


def cifar_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def write_pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the official files are Python 2 cPickles


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No default data anywhere: cache in tmp, no $GENERALIST_BENCH_DATA, no Debian dir, no downloads, and a fresh
    loader memo (the session's real Fashion-MNIST stays memoised for the other tests)."""
    monkeypatch.setenv("GENERALIST_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GENERALIST_BENCH_DATA", raising=False)
    monkeypatch.setenv("GENERALIST_BENCH_OFFLINE", "1")
    monkeypatch.setattr(mnist_like, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")
    monkeypatch.setattr(splits, "_RAW_CACHE", {})

    def no_download(self, *a, **kw):
        raise AssertionError("a test tried to download a data set")

    for cls in (torchvision.datasets.MNIST, torchvision.datasets.CIFAR10, torchvision.datasets.SVHN):
        monkeypatch.setattr(cls, "download", no_download)
    return tmp_path


# ------------------------------------------------------------------------------ real Fashion-MNIST
def test_fmnist_test_split(fmnist_test):
    assert fmnist_test.x.shape == (10_000, 1, 28, 28)
    assert fmnist_test.x.dtype == torch.float32 and fmnist_test.y.dtype == torch.int64
    assert fmnist_test.x.min() >= 0 and fmnist_test.x.max() <= 1 and fmnist_test.x.max() == 1
    assert torch.equal(torch.bincount(fmnist_test.y), torch.full((10,), 1000))
    x, y = fmnist_test  # unpacks like a pair
    assert x is fmnist_test.x and y is fmnist_test.y


def test_fmnist_train_val_split(fmnist_train):
    val = load_dataset("fashion_mnist", "val")
    assert len(fmnist_train) + len(val) == 60_000 and len(val) == 5_000
    assert val.x.shape == (5_000, 1, 28, 28) and val.x.dtype == torch.float32 and val.y.dtype == torch.int64
    assert 0 <= val.x.min() and val.x.max() <= 1
    tr, va = set(fmnist_train.indices.tolist()), set(val.indices.tolist())
    assert not tr & va and tr | va == set(range(60_000))
    # deterministic: again, and via split_indices
    assert torch.equal(load_dataset("fashion_mnist", "val").indices, val.indices)
    s_tr, s_va = split_indices(60_000, 5_000, 0)
    assert torch.equal(s_tr, fmnist_train.indices) and torch.equal(s_va, val.indices)
    # the images are those of the indices (train and val come from the same 60,000)
    raw = splits.load_raw("fashion_mnist")
    assert torch.equal(val.x[:50], raw.train_x[val.indices[:50]].float() / 255)
    assert torch.equal(val.y, raw.train_y[val.indices])
    # another seed, another split
    other = load_dataset("fashion_mnist", "val", split_seed=1)
    assert len(other) == 5_000 and not torch.equal(other.indices, val.indices)
    assert torch.equal(load_dataset("fashion_mnist", "val", val_size=100).indices, split_indices(60_000, 100, 0)[1])


def test_split_indices_and_subset(fmnist_test):
    tr, va = split_indices(100, 10, 3)
    assert len(tr) == 90 and len(va) == 10 and torch.equal(torch.cat([tr, va]).sort().values, torch.arange(100))
    assert torch.equal(tr, tr.sort().values) and torch.equal(va, va.sort().values)
    for bad in (-1, 100, 101):
        with pytest.raises(ConfigError, match="val_size"):
            split_indices(100, bad, 0)
    sub = fmnist_test.subset(7)
    assert len(sub) == 7 and torch.equal(sub.x, fmnist_test.x[:7]) and fmnist_test.subset(None) is fmnist_test
    with pytest.raises(ConfigError):
        fmnist_test.subset(0)


def test_load_raw_is_memoised(fmnist_test):
    assert splits.load_raw("fashion_mnist") is splits.load_raw("fashion-mnist")


def test_debian_package_is_found(monkeypatch, tmp_path):
    """With nothing else configured, the Debian package dir is used and unpacked into the (tmp) cache."""
    if not all((mnist_like.DEBIAN_FASHION_MNIST / f"{f}.gz").is_file() for f in IDX_NAMES):
        pytest.skip("Debian package dataset-fashion-mnist is not installed")
    monkeypatch.setenv("GENERALIST_BENCH_CACHE", str(tmp_path))
    monkeypatch.delenv("GENERALIST_BENCH_DATA", raising=False)
    monkeypatch.setattr(splits, "_RAW_CACHE", {})
    ds = load_dataset("fashion_mnist", "test", download=False)
    assert "Debian package" in ds.source and len(ds) == 10_000
    assert list(tmp_path.rglob("t10k-images-idx3-ubyte"))  # unpacked into the cache we chose


# ------------------------------------------------------------------------------------ discovery order
def test_data_dir_with_gz_files(isolated):
    files = make_idx()
    src = write_idx(isolated / "mine", files, gz=True)
    before = sorted(p.name for p in src.iterdir())
    ds = load_dataset("fashion_mnist", "test", src)
    assert_matches_idx(ds, files)
    assert ds.source.startswith("data_dir argument") and "unpacked" in ds.source
    assert sorted(p.name for p in src.iterdir()) == before  # the data dir is only read
    assert len(list((isolated / "cache").rglob("t10k-images-idx3-ubyte"))) == 1  # unpacked into the tmp cache
    train = load_dataset("fashion_mnist", "train", src, val_size=2)
    val = load_dataset("fashion_mnist", "val", src, val_size=2)
    assert len(train) == 10 and len(val) == 2
    assert torch.equal(torch.cat([train.y, val.y]).sort().values, torch.from_numpy(files["train-labels-idx1-ubyte"][1])
                       .long().sort().values)


def test_data_dir_with_unzipped_raw_files(isolated):
    files = make_idx(seed=1)
    write_idx(isolated / "mine" / "FashionMNIST" / "raw", files, gz=False)
    ds = load_dataset("fashion_mnist", "test", isolated / "mine")
    assert_matches_idx(ds, files)
    assert ds.source == f"data_dir argument: {isolated / 'mine' / 'FashionMNIST' / 'raw'}"
    assert not (isolated / "cache").exists()  # nothing to unpack


def test_gz_files_in_raw_folder(isolated):
    files = make_idx(seed=2)
    write_idx(isolated / "mine" / "FashionMNIST" / "raw", files, gz=True)
    assert_matches_idx(load_dataset("fashion_mnist", "test", isolated / "mine"), files)


def test_discovery_order(isolated, monkeypatch):
    """data_dir argument → $GENERALIST_BENCH_DATA → cache → Debian package."""
    a, b, c, deb = (make_idx(n_test=n, seed=n) for n in (3, 5, 7, 9))
    write_idx(isolated / "a", a, gz=True)
    write_idx(isolated / "b" / "FashionMNIST" / "raw", b, gz=False)
    write_idx(isolated / "cache" / "data" / "FashionMNIST" / "raw", c, gz=False)
    monkeypatch.setattr(mnist_like, "DEBIAN_FASHION_MNIST", write_idx(isolated / "debian", deb, gz=True))

    def load(data_dir=None):
        splits._RAW_CACHE.clear()
        return load_dataset("fashion_mnist", "test", data_dir)

    monkeypatch.setenv("GENERALIST_BENCH_DATA", str(isolated / "b"))
    assert len(load(isolated / "a")) == 3
    ds = load()
    assert len(ds) == 5 and ds.source.startswith("$GENERALIST_BENCH_DATA")
    monkeypatch.delenv("GENERALIST_BENCH_DATA")
    ds = load()
    assert len(ds) == 7 and ds.source.startswith("cache")
    for f in IDX_NAMES:
        (isolated / "cache" / "data" / "FashionMNIST" / "raw" / f).unlink()
    ds = load()
    assert len(ds) == 9 and ds.source.startswith("Debian package")
    assert_matches_idx(ds, deb)


def test_unpacked_files_neither_shadow_nor_pollute(isolated, monkeypatch):
    """Regression: gz files were unpacked into one shared cache folder, skipping files already there. A data_dir
    then silently got whatever the cache held (e.g. the Debian data), and tiny files passed as data_dir became
    the default data set of every later run."""
    deb, mine = make_idx(n_test=9, seed=9), make_idx(n_test=3, seed=3)
    monkeypatch.setattr(mnist_like, "DEBIAN_FASHION_MNIST", write_idx(isolated / "debian", deb, gz=True))
    assert_matches_idx(load_dataset("fashion_mnist", "test"), deb)
    splits._RAW_CACHE.clear()
    assert_matches_idx(load_dataset("fashion_mnist", "test", write_idx(isolated / "mine", mine, gz=True)), mine)
    splits._RAW_CACHE.clear()
    assert_matches_idx(load_dataset("fashion_mnist", "test"), deb)
    # new files at the same place are unpacked again, not served from the old copy
    newer = make_idx(n_test=4, seed=4)
    write_idx(isolated / "mine", newer, gz=True)
    os.utime(isolated / "mine" / "t10k-images-idx3-ubyte.gz", ns=(1, 1))
    splits._RAW_CACHE.clear()
    assert_matches_idx(load_dataset("fashion_mnist", "test", isolated / "mine"), newer)


def test_missing_data_is_one_clear_error(isolated, monkeypatch):
    monkeypatch.setenv("GENERALIST_BENCH_DATA", str(isolated / "env-dir"))
    with pytest.raises(DataNotFoundError) as e:
        load_dataset("fashion_mnist", "test", isolated / "nowhere")
    msg = str(e.value)
    for place in ("data_dir argument", str(isolated / "nowhere"), "$GENERALIST_BENCH_DATA", str(isolated / "env-dir"),
                  "cache", str(isolated / "cache"), "Debian package", str(isolated / "no-debian-package"),
                  "download: disabled", "To get it", "apt-get install dataset-fashion-mnist"):
        assert place in msg, place
    assert isinstance(e.value, FileNotFoundError)
    assert not splits._RAW_CACHE  # failures are not memoised
    monkeypatch.delenv("GENERALIST_BENCH_OFFLINE")
    with pytest.raises(DataNotFoundError, match="download: disabled"):  # download=False, no env
        load_dataset("fashion_mnist", "test", isolated / "nowhere", download=False)


def test_corrupt_idx_is_an_integrity_error(isolated):
    files = make_idx()
    folder = write_idx(isolated / "bad" / "FashionMNIST" / "raw", files, gz=False)
    (folder / "t10k-images-idx3-ubyte").write_bytes(files["t10k-images-idx3-ubyte"][0][:-100])  # truncated
    with pytest.raises(DataIntegrityError, match="truncated, corrupted"):
        load_dataset("fashion_mnist", "test", isolated / "bad")
    write_idx(folder, files, gz=False)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_labels(np.zeros(3)))  # 4 images, 3 labels
    with pytest.raises(DataIntegrityError, match="4 images but 3 labels"):
        load_dataset("fashion_mnist", "test", isolated / "bad")


def test_mnist_from_raw_folder(isolated):
    files = make_idx(n_train=6, n_test=5, seed=7)
    write_idx(isolated / "d" / "MNIST" / "raw", files, gz=False)
    ds = load_dataset("mnist", "test", isolated / "d")
    assert_matches_idx(ds, files)
    assert ds.info.name == "mnist" and ds.info.num_classes == 10
    with pytest.raises(DataNotFoundError, match="FashionMNIST not found"):  # MNIST files are not Fashion-MNIST
        load_dataset("fashion_mnist", "test", isolated / "d")


def test_mnist_never_takes_loose_fashion_mnist_files(isolated, monkeypatch):
    """Regression: .gz IDX files straight in a folder (the Debian package's layout, e.g. with
    GENERALIST_BENCH_DATA=/usr/share/datasets/fashion-mnist) were also taken as MNIST, since both data sets use
    the same file names: load_dataset("mnist") silently returned Fashion-MNIST. Only Fashion-MNIST claims them."""
    files = make_idx(seed=5)
    write_idx(isolated / "loose", files, gz=True)
    monkeypatch.setenv("GENERALIST_BENCH_DATA", str(isolated / "loose"))
    with pytest.raises(DataNotFoundError, match="MNIST not found") as e:
        load_dataset("mnist", "test")
    assert str(isolated / "loose" / "MNIST" / "raw") in str(e.value)
    assert_matches_idx(load_dataset("fashion_mnist", "test"), files)
    write_idx(isolated / "loose" / "MNIST" / "raw", files, gz=True)  # MNIST's own place: .gz files are fine there
    assert_matches_idx(load_dataset("mnist", "test"), files)


# ---------------------------------------------------------------------------------- CIFAR and SVHN
def write_cifar10(root: Path) -> dict[str, np.ndarray]:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rows, labels = [], []
    for i in range(1, 6):
        r, lab = cifar_rows(2, i), [(2 * i) % 10, (2 * i + 1) % 10]
        write_pickle(d / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5", "labels": lab, "data": r,
                                              "filenames": [f"img_{i}_{k}.png" for k in range(2)]})
        rows.append(r)
        labels += lab
    test = cifar_rows(3, 0)
    test[0, 2 * 1024 + 5 * 32 + 7] = 200  # blue channel, row 5, column 7 of the first test image
    test[0, 0 * 1024 + 5 * 32 + 7] = 10   # red channel, same place
    write_pickle(d / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": [3, 1, 4], "data": test,
                                    "filenames": ["t0.png", "t1.png", "t2.png"]})
    write_pickle(d / "batches.meta", {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                      "horse", "ship", "truck"],
                                      "num_cases_per_batch": 2, "num_vis": 3072})
    return {"train_x": np.concatenate(rows), "train_y": np.array(labels), "test_x": test, "test_y": np.array([3, 1, 4])}


def write_cifar100(root: Path) -> dict[str, np.ndarray]:
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    tr, te = cifar_rows(6, 1), cifar_rows(2, 2)
    tr_y, te_y = [0, 99, 42, 7, 55, 12], [98, 1]
    write_pickle(d / "train", {"filenames": [f"{i}.png" for i in range(6)], "batch_label": "training batch 1 of 1",
                               "fine_labels": tr_y, "coarse_labels": [y // 5 for y in tr_y], "data": tr})
    write_pickle(d / "test", {"filenames": ["a.png", "b.png"], "batch_label": "testing batch 1 of 1",
                              "fine_labels": te_y, "coarse_labels": [y // 5 for y in te_y], "data": te})
    write_pickle(d / "meta", {"fine_label_names": [f"c{i}" for i in range(100)],
                              "coarse_label_names": [f"s{i}" for i in range(20)]})
    return {"train_x": tr, "train_y": np.array(tr_y), "test_x": te, "test_y": np.array(te_y)}


@pytest.mark.parametrize("name, writer, n_classes", [("cifar10", write_cifar10, 10), ("cifar100", write_cifar100, 100)])
def test_cifar_real_format(isolated, name, writer, n_classes):
    arrays = writer(isolated / "d")
    with pytest.raises(DataIntegrityError) as e:  # fabricated files fail torchvision's MD5 check
        load_dataset(name, "test", isolated / "d")
    assert "MD5" in str(e.value) and "verify=False" in str(e.value) and str(isolated / "d") in str(e.value)
    test = load_dataset(name, "test", isolated / "d", verify=False)
    assert test.x.shape == (len(arrays["test_y"]), 3, 32, 32) and test.x.dtype == torch.float32
    assert torch.equal(test.x, torch.from_numpy(arrays["test_x"]).view(-1, 3, 32, 32).float() / 255)  # CHW rows
    assert torch.equal(test.y, torch.from_numpy(arrays["test_y"]).long()) and test.y.dtype == torch.int64
    assert "MD5 not verified" in test.source and test.info.num_classes == n_classes
    train = load_dataset(name, "train", isolated / "d", verify=False, val_size=2)
    val = load_dataset(name, "val", isolated / "d", verify=False, val_size=2)
    assert len(train) + len(val) == len(arrays["train_y"]) and len(val) == 2
    train_x = torch.from_numpy(arrays["train_x"][train.indices.numpy()]).view(-1, 3, 32, 32)
    assert torch.equal(train.x, train_x.float() / 255)
    assert torch.equal(val.y, torch.from_numpy(arrays["train_y"][val.indices.numpy()]).long())


def test_cifar10_pixel_round_trip(isolated):
    write_cifar10(isolated / "d")
    x = load_dataset("cifar10", "test", isolated / "d", verify=False).x
    assert x[0, 2, 5, 7] == pytest.approx(200 / 255) and x[0, 0, 5, 7] == pytest.approx(10 / 255)
    assert 0 <= x.min() and x.max() <= 1


def test_cifar_corrupt_meta_with_verify_is_an_integrity_error(isolated, monkeypatch):
    """torchvision checks the meta file's MD5 apart from the batches': that failure is a DataIntegrityError too."""
    write_cifar10(isolated / "d")
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)  # batches "pass"
    with pytest.raises(DataIntegrityError, match="official"):
        load_dataset("cifar10", "test", isolated / "d")


def test_cifar_missing(isolated):
    with pytest.raises(DataNotFoundError) as e:
        load_dataset("cifar10", "test", isolated / "nowhere")
    assert str(isolated / "nowhere" / "cifar-10-batches-py") in str(e.value) and "download: disabled" in str(e.value)


def write_svhn(root: Path) -> dict[str, np.ndarray]:
    """``X``: uint8 H×W×C×N; ``y``: N×1 with labels 1..10, where 10 is the digit 0 (the official layout)."""
    import scipy.io

    d = root / "svhn"
    d.mkdir(parents=True)
    out = {}
    for split, labels in (("train", [1, 2, 10, 4, 5]), ("test", [10, 3, 10, 7])):
        x = np.random.default_rng(len(labels)).integers(0, 256, (32, 32, 3, len(labels)), dtype=np.uint8)
        if split == "test":
            x[3, 9, 1, 2] = 77  # row 3, column 9, green, image 2
        scipy.io.savemat(d / f"{split}_32x32.mat", {"X": x, "y": np.array(labels, np.uint8).reshape(-1, 1)})
        out[f"{split}_x"] = x
    return out


def test_svhn_real_format(isolated):
    arrays = write_svhn(isolated / "d")
    with pytest.raises(DataIntegrityError, match="MD5") as e:
        load_dataset("svhn", "test", isolated / "d")
    assert "verify=False" in str(e.value)
    test = load_dataset("svhn", "test", isolated / "d", verify=False)
    assert test.x.shape == (4, 3, 32, 32) and test.x.dtype == torch.float32 and test.y.dtype == torch.int64
    assert test.y.tolist() == [0, 3, 0, 7]  # 10 → 0
    assert test.x[2, 1, 3, 9] == pytest.approx(77 / 255)
    assert torch.equal(test.x, torch.from_numpy(arrays["test_x"]).permute(3, 2, 0, 1).float() / 255)
    train = load_dataset("svhn", "train", isolated / "d", verify=False, val_size=1)
    val = load_dataset("svhn", "val", isolated / "d", verify=False, val_size=1)
    assert sorted(train.y.tolist() + val.y.tolist()) == [0, 1, 2, 4, 5]


# ------------------------------------------------------------------------------------------- names
def test_unknown_dataset_and_split():
    with pytest.raises(UnknownNameError) as e:
        load_dataset("imagenet", "test")
    for name in list_datasets():
        assert name in str(e.value)
    assert {"fashion_mnist", "mnist", "cifar10", "cifar100", "svhn"} <= set(list_datasets())
    assert isinstance(e.value, ConfigError) and "'imagenet'" in str(e.value)
    with pytest.raises(ConfigError, match="valid splits: train, val, test"):
        load_dataset("fashion_mnist", "validation")
