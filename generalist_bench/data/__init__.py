"""Data: registered data sets (one file each) and ``load_dataset(name, split, data_dir=None)``."""

from . import cifar, mnist_like, svhn  # noqa: F401  (registration)
from .registry import DatasetInfo, RawData, get_dataset_info, list_datasets, register_dataset
from .splits import SPLITS, DatasetSplit, load_dataset, split_indices

__all__ = ["DatasetInfo", "DatasetSplit", "RawData", "SPLITS", "get_dataset_info", "list_datasets", "load_dataset",
           "register_dataset", "split_indices"]
