"""Data: registered data sets (one file each) and ``load_dataset(name, split, data_dir=None)``."""

from enum import Enum

from . import cifar, mnist_like, svhn  # noqa: F401  (registration)
from .registry import DatasetInfo, RawData, get_dataset_info, list_datasets, register_dataset
from .splits import SPLITS, DatasetSplit, load_dataset, split_indices


class Dataset(str, Enum):
    """The built-in data sets' names, for code that wants an enum at the boundary (every function taking a data
    set name also takes these). Plugins add data sets by name only: the registry, not this enum, is the list."""

    FASHION_MNIST = "fashion_mnist"
    MNIST = "mnist"
    CIFAR10 = "cifar10"
    CIFAR100 = "cifar100"
    SVHN = "svhn"

__all__ = ["Dataset", "DatasetInfo", "DatasetSplit", "RawData", "SPLITS", "get_dataset_info", "list_datasets",
           "load_dataset", "register_dataset", "split_indices"]
