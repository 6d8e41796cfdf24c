"""Models: every architecture takes [0,1] pixels; normalisation is its first layer."""

from . import resnet, small_cnn, wide_resnet  # noqa: F401  (registration)
from .layers import Normalize
from .registry import create_model, list_models, register_model

__all__ = ["Normalize", "create_model", "list_models", "register_model", "model_for_dataset"]


def model_for_dataset(arch: str, dataset: str, **kwargs):
    """``create_model`` with the class count, channels and normalisation of ``dataset``; an architecture whose
    builder declares an ``input_size`` parameter also gets the image side."""
    from ..data import get_dataset_info
    from .registry import accepts

    info = get_dataset_info(dataset)
    kw = dict(num_classes=info.num_classes, in_channels=info.shape[0], mean=info.mean, std=info.std)
    if accepts(arch, "input_size"):
        kw["input_size"] = info.shape[1]
    kw.update(kwargs)
    return create_model(arch, **kw)
