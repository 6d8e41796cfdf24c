"""Architecture registry in timm's style: ``@register_model``, ``create_model``, ``list_models``."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch.nn as nn

from ..plugins import filler
from ..registry import Registry

# architectures: this package's, then installed packages' (entry-point group generalist_bench.models)
MODELS: Registry[Callable[..., nn.Module]] = Registry("architecture", fill=filler("models"))


def register_model(fn: Callable[..., nn.Module] | None = None, *, title: str | None = None):
    """``@register_model`` or ``@register_model(title="ResNet-18")``: registers ``fn`` under its own name; ``title``
    is the display name on cards and the leaderboard (the name itself by default)."""
    def deco(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        return MODELS.register(f.__name__, f, title=title)
    return deco(fn) if fn is not None else deco


def list_models() -> list[str]:
    return MODELS.names()


def accepts(name: str, parameter: str) -> bool:
    """Whether architecture ``name``'s builder declares a parameter named ``parameter`` (``**kwargs`` does not
    count: a builder that forwards them to another one need not accept it)."""
    return parameter in inspect.signature(MODELS.get(name)).parameters


def create_model(name: str, num_classes: int = 10, **kwargs) -> nn.Module:
    """Build architecture ``name``. Common kwargs: ``in_channels``, ``mean``, ``std`` (normalisation)."""
    model = MODELS.get(name)(num_classes=num_classes, **kwargs)
    bad = [k for k in model.state_dict() if "model." in k or "module." in k]
    if bad:  # robustbench's loader would strip these substrings anywhere in a key
        raise AssertionError(f"{name}: state-dict keys must not contain 'model.'/'module.': {bad[:3]}")
    return model
