"""Architecture registry in timm's style: ``@register_model``, ``create_model``, ``list_models``."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch.nn as nn

from ..errors import UnknownNameError
from ..plugins import once, same_origin

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    name = fn.__name__
    if name in _MODELS and not same_origin(_MODELS[name], fn):
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = fn
    return fn


_load_plugins = once("models")  # installed packages' architectures (entry-point group generalist_bench.models)


def list_models() -> list[str]:
    _load_plugins()
    return sorted(_MODELS)


def accepts(name: str, parameter: str) -> bool:
    """Whether architecture ``name``'s builder takes keyword ``parameter`` (by name or through ``**kwargs``)."""
    if name not in _MODELS:
        _load_plugins()
    if name not in _MODELS:
        raise UnknownNameError("architecture", name, _MODELS)
    params = inspect.signature(_MODELS[name]).parameters.values()
    return any(p.name == parameter or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def create_model(name: str, num_classes: int = 10, **kwargs) -> nn.Module:
    """Build architecture ``name``. Common kwargs: ``in_channels``, ``mean``, ``std`` (normalisation)."""
    if name not in _MODELS:
        _load_plugins()
    if name not in _MODELS:
        raise UnknownNameError("architecture", name, _MODELS)
    model = _MODELS[name](num_classes=num_classes, **kwargs)
    bad = [k for k in model.state_dict() if "model." in k or "module." in k]
    if bad:  # robustbench's loader would strip these substrings anywhere in a key
        raise AssertionError(f"{name}: state-dict keys must not contain 'model.'/'module.': {bad[:3]}")
    return model
