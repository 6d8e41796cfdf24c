"""Where the evaluated model comes from: the zoo, a state-dict checkpoint plus an architecture, or RobustBench."""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import CheckpointError, ConfigError, GeneralistBenchError


def _state_dict_of(obj, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} is not a state dict (a mapping name → tensor, or {{'state_dict': ...}})")
    sd = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in sd):  # saved from DistributedDataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` loaded with ``weights_only=True``; one ``CheckpointError`` for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "unsupported global" in str(e).lower():  # a class or function reference: a pickled object
            raise CheckpointError(f"{path} contains pickled Python objects (e.g. a whole nn.Module), which are not "
                                  "loaded (unsafe); save model.state_dict() instead") from None
        raise CheckpointError(f"{path} is truncated or corrupted and cannot be read (unpickling failed)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, AttributeError) as e:
        first = (str(e).strip().splitlines() or [""])[0].split(". ")[0][:160]
        raise CheckpointError(f"{path} is truncated or corrupted and cannot be read ({type(e).__name__}: {first})"
                              ) from None
    return _state_dict_of(obj, path)


def load_checkpoint(path: str | os.PathLike, arch: str, dataset: str) -> nn.Module:
    """``models.model_for_dataset(arch, dataset)`` with the weights of ``path`` (strict: same keys and shapes)."""
    from ..models import model_for_dataset

    sd = read_state_dict(path)
    model = model_for_dataset(arch, dataset)
    want = model.state_dict()
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want]
    shapes = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in want.items()
              if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("shape mismatches (checkpoint vs model)", shapes)):
            if items:
                parts.append(f"{len(items)} {label} ({', '.join(items[:4])}{', ...' if len(items) > 4 else ''})")
        raise CheckpointError(f"{path} does not fit architecture {arch!r} for {dataset}: " + "; ".join(parts))
    model.load_state_dict(sd, strict=True)
    return model.eval()


def load_zoo_model(name: str, dataset: str, threat_model: str, model_dir: str | os.PathLike) -> nn.Module:
    from ..zoo.store import load_model

    return load_model(name, dataset=dataset, threat_model=threat_model, model_dir=model_dir)


def load_robustbench_model(name: str, dataset: str, threat_model: str, model_dir: str | os.PathLike) -> nn.Module:
    if dataset not in ("cifar10", "cifar100"):
        raise ConfigError(f"--robustbench models exist for cifar10 and cifar100 only, not {dataset!r}")
    from ..zoo.robustbench_compat import enable_robustbench_compat

    enable_robustbench_compat()  # robustbench 1.1.1 imports only with our autoattack shim
    from robustbench.utils import load_model

    try:
        model = load_model(model_name=name, model_dir=str(model_dir), dataset=dataset, threat_model=threat_model)
    except GeneralistBenchError:
        raise
    except KeyError:
        raise ConfigError(f"robustbench has no model {name!r} for {dataset} {threat_model}") from None
    except Exception as e:  # download failure, bad file: robustbench raises many types
        raise CheckpointError(f"robustbench could not load {name!r} ({type(e).__name__}: {e})") from None
    return model.eval()
