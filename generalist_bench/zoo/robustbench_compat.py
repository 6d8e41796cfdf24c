"""RobustBench compatibility, switched on explicitly: after ``generalist_bench.enable_robustbench_compat()``,
robustbench 1.1.1 imports, loads our CIFAR zoo models from local files and benchmarks them.

``import generalist_bench`` changes nothing outside the package. ``enable_robustbench_compat()`` adds two import
hooks to ``sys.meta_path`` (idempotent; no robustbench, torch or pyautoattack import; nothing happens until
robustbench is imported, and a failing hook only warns — robustbench then runs unpatched). Called after
robustbench was imported, it patches the imported modules at once:

1. ``autoattack`` shim (last on ``sys.meta_path``, so a real ``autoattack`` package wins if installed):
   ``autoattack`` / ``autoattack.state`` come from ``generalist_bench.zoo.autoattack_shim``, the upstream
   git API (``AutoAttack(model, norm=, eps=, version=, device=, log_path=, attacks_to_run=, verbose=)``,
   ``run_standard_evaluation(x, y, bs=, state_path=)`` → ``x_adv``) over pyautoattack 0.2.0; other
   ``autoattack.<module>`` names alias ``pyautoattack.<module>``. Its ``EvaluationState.from_disk`` returns
   float 0/1 ``robust_flags`` so robustbench's ``.mean()`` works. Without it ``import robustbench`` fails.
2. Post-import hooks on ``robustbench.model_zoo.models``, ``robustbench.utils``, ``robustbench.data`` and
   ``robustbench.eval``:
   - every CIFAR-10/100 card in the default zoos (``$GENERALIST_BENCH_ZOO`` (``os.pathsep``-separated),
     ``./model_zoo``, and the repository's ``model_zoo/``) is registered in
     ``robustbench.model_zoo.model_dicts[dataset][threat_model][model_id]`` as ``{"model": zero-arg
     constructor, "gdrive_id": PLACEHOLDER_GDRIVE_ID}``. robustbench then loads
     ``<model_dir>/<dataset>/<threat>/<model_id>.pt`` itself (no download: the file exists). The constructor
     re-reads the card, checks the ``.pt``'s sha256 (``IntegrityError``) and refuses a missing file
     (``CheckpointError``) before robustbench would try the placeholder download id. Names taken by
     RobustBench's own models are never overwritten.
   - ``robustbench.utils.load_model`` (also bound as ``robustbench.load_model``) first registers the card
     ``<model_dir>/<dataset>/<threat>/<name>.json`` if there is one, so any ``model_dir`` works; then it is
     robustbench's own code that loads.
   - robustbench's CIFAR-10/100 test loaders (``robustbench.data.load_cifar10/100`` and the entries
     ``load_clean_dataset`` uses) go through ``generalist_bench.data.load_dataset(name, "test", data_dir)``:
     the same torchvision files, but a file that fails torchvision's MD5 check raises
     ``DataIntegrityError`` instead of triggering a re-download. ``allow_unverified_data()`` (a context
     manager) skips the check explicitly — for fabricated test files only; numbers computed on unverified
     files are not comparable with published ones.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.machinery
import os
import sys
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..threat import NORMS

if TYPE_CHECKING:
    from pathlib import Path

PLACEHOLDER_GDRIVE_ID = "generalist-bench-local-file-only"  # robustbench needs a non-None id; never downloaded
CARD_KEY = "generalist_bench_card"                        # marks our entries in robustbench's model_dicts
ZOO_ENV = "GENERALIST_BENCH_ZOO"
RB_DATASETS = ("cifar10", "cifar100")                    # our names == robustbench's BenchmarkDataset values
RB_THREATS = NORMS                                       # == robustbench's ThreatModel values Linf, L2
_MARK = "__generalist_bench_compat__"
_SHIM_SUBMODULES = ("autopgd_base", "fab_pt", "fab_base", "fab_projections", "square", "checks", "other_utils")
_WATCHED = ("robustbench.model_zoo.models", "robustbench.utils", "robustbench.data", "robustbench.eval")

_state: dict[str, Any] = {"verify": True, "enabled": False}


# ------------------------------------------------------------------------------------------ autoattack shim
class _ShimLoader:  # duck-typed importlib Loader (importlib.abc costs ~20 ms to import)
    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        from . import autoattack_shim as shim

        name = module.__name__
        if name == "autoattack":
            module.AutoAttack, module.EvaluationState = shim.AutoAttack, shim.EvaluationState
            module.__version__ = shim.__version__
            setattr(module, _MARK, True)
        elif name == "autoattack.state":
            module.EvaluationState = shim.EvaluationState
        else:
            real = importlib.import_module("pyautoattack." + name.split(".", 1)[1])
            module.__dict__.update({k: v for k, v in vars(real).items() if not k.startswith("__")})


class _AutoattackShimFinder:  # duck-typed MetaPathFinder
    """Last on ``sys.meta_path``: answers for ``autoattack`` only when no real package was found first."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "autoattack":
            return importlib.machinery.ModuleSpec(fullname, _ShimLoader(), is_package=True)
        parent = sys.modules.get("autoattack")
        if fullname.startswith("autoattack.") and parent is not None and getattr(parent, _MARK, False):
            sub = fullname.split(".", 1)[1]
            if sub == "state" or sub in _SHIM_SUBMODULES:
                return importlib.machinery.ModuleSpec(fullname, _ShimLoader())
        return None


# --------------------------------------------------------------------------------------- post-import hooks
class _HookedLoader:
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        _after_import()

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _PostImportFinder:
    """First on ``sys.meta_path``: finds the watched robustbench modules with the other finders and runs
    ``_patch()`` right after each of them executes."""

    def __init__(self) -> None:
        self._busy: set[str] = set()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _WATCHED or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._busy.discard(fullname)
        if spec.loader is not None:
            spec.loader = _HookedLoader(spec.loader)
        return spec


_HOOK_FINDER = _PostImportFinder()
_SHIM_FINDER = _AutoattackShimFinder()


def enable_robustbench_compat() -> None:
    """Add the import hooks (idempotent, cheap, never raises); see the module docstring for what they do."""
    if _state["enabled"]:
        return
    try:
        sys.meta_path.insert(0, _HOOK_FINDER)
        sys.meta_path.append(_SHIM_FINDER)
        _state["enabled"] = True
        if any(m in sys.modules for m in _WATCHED):  # robustbench (or part of it) was imported before us
            _after_import()
    except Exception as e:  # never break `import generalist_bench`
        warnings.warn(f"generalist_bench: robustbench compatibility hooks not installed ({e})", stacklevel=2)


def _after_import() -> None:
    try:
        _patch()
    except Exception as e:  # a failing hook must not break robustbench itself
        warnings.warn(f"generalist_bench: robustbench compatibility patch failed ({type(e).__name__}: {e}); "
                      "robustbench runs unpatched", stacklevel=2)


def _patch() -> None:
    mods = sys.modules
    models = mods.get("robustbench.model_zoo.models")
    if models is not None and not getattr(models, _MARK, False):
        setattr(models, _MARK, True)
        for d in default_zoo_dirs():
            register_zoo(d)
    utils = mods.get("robustbench.utils")
    if utils is not None and hasattr(utils, "load_model"):
        wrapped = _wrap_load_model(utils.load_model)
        for name in ("robustbench.utils", "robustbench", "robustbench.eval"):
            m = mods.get(name)
            if m is not None and getattr(m, "load_model", None) is getattr(wrapped, "__wrapped__", None):
                m.load_model = wrapped
    data = mods.get("robustbench.data")
    if data is not None and hasattr(data, "_clean_dataset_loaders"):
        from robustbench.model_zoo.enums import BenchmarkDataset

        data._clean_dataset_loaders[BenchmarkDataset.cifar_10] = load_cifar10
        data._clean_dataset_loaders[BenchmarkDataset.cifar_100] = load_cifar100
        for name in ("robustbench.data", "robustbench"):
            m = mods.get(name)
            if m is not None and hasattr(m, "load_cifar10"):
                m.load_cifar10 = load_cifar10
            if m is not None and hasattr(m, "load_cifar100"):
                m.load_cifar100 = load_cifar100


# ------------------------------------------------------------------------------------------ registration
def default_zoo_dirs() -> list[Path]:
    """``$GENERALIST_BENCH_ZOO`` entries, ``./model_zoo`` and the repository's ``model_zoo/`` that exist."""
    from pathlib import Path

    candidates = [Path(p) for p in os.environ.get(ZOO_ENV, "").split(os.pathsep) if p]
    candidates += [Path("model_zoo"), Path(__file__).resolve().parents[2] / "model_zoo"]
    seen, out = set(), []
    for c in candidates:
        key = c.resolve()
        if c.is_dir() and key not in seen:
            seen.add(key)
            out.append(c)
    return out


class ZooConstructor:
    """Zero-arg constructor registered in robustbench: builds the card's architecture after checking that
    the ``.pt`` next to the card exists and matches the card's sha256."""

    def __init__(self, json_path: str | os.PathLike):
        from pathlib import Path

        self.json_path = Path(json_path)

    def __call__(self):
        from ..errors import CheckpointError, IntegrityError
        from ..utils.io import sha256_file
        from .card import ModelCard
        from .store import build_model

        card = ModelCard.load(self.json_path)
        pt = self.json_path.with_suffix(".pt")
        if not pt.is_file():
            raise CheckpointError(f"{pt} is missing; it is a local generalist-bench zoo entry (nothing to download)")
        actual = sha256_file(pt)
        if actual != card.sha256:
            raise IntegrityError(f"{pt}: sha256 {actual} does not match its card's {card.sha256}")
        return build_model(card)

    def __repr__(self) -> str:
        return f"ZooConstructor({str(self.json_path)!r})"


def _register_card(json_path: Path, model_dicts) -> str:
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    from ..errors import ConfigError
    from .card import ModelCard, ModelCardError

    card = ModelCard.load(json_path)
    if (card.dataset, card.threat_model, card.model_id) != (json_path.parent.parent.name, json_path.parent.name,
                                                           json_path.stem):
        raise ModelCardError(f"{json_path} describes {card.dataset}/{card.threat_model}/{card.model_id}")
    entries = model_dicts[BenchmarkDataset(card.dataset)][ThreatModel(card.threat_model)]
    existing = entries.get(card.model_id)
    if existing is not None and CARD_KEY not in existing:
        raise ConfigError(f"zoo model {card.model_id!r} ({json_path}) has the name of a RobustBench model; rename it")
    entries[card.model_id] = {"model": ZooConstructor(json_path), "gdrive_id": PLACEHOLDER_GDRIVE_ID,
                              CARD_KEY: str(json_path)}
    return f"{card.dataset}/{card.threat_model}/{card.model_id}"


def register_zoo(model_dir: str | os.PathLike = "model_zoo", *, strict: bool = False) -> list[str]:
    """Register every CIFAR-10/100 card of ``model_dir`` in robustbench's ``model_dicts`` (imports robustbench).
    Returns ``["cifar10/Linf/<model_id>", ...]``. Bad cards are skipped with a warning (``strict=True``:
    raised)."""
    from pathlib import Path

    from robustbench.model_zoo.models import model_dicts

    from ..errors import GeneralistBenchError

    registered = []
    for ds in RB_DATASETS:
        for tm in RB_THREATS:
            folder = Path(model_dir) / ds / tm
            if not folder.is_dir():
                continue
            for js in sorted(folder.glob("*.json")):
                try:
                    registered.append(_register_card(js, model_dicts))
                except GeneralistBenchError as e:
                    if strict:
                        raise
                    warnings.warn(f"generalist_bench: not registered in robustbench: {e}", stacklevel=2)
    return registered


def _wrap_load_model(orig):
    if getattr(orig, _MARK, False):
        return orig

    @functools.wraps(orig)
    def load_model(model_name, model_dir="./models", dataset="cifar10", threat_model="Linf", *args, **kwargs):
        from pathlib import Path

        tm = kwargs.get("norm") or threat_model
        ds_value, tm_value = str(getattr(dataset, "value", dataset)), str(getattr(tm, "value", tm))
        card = Path(model_dir) / ds_value / tm_value / f"{model_name}.json"
        if ds_value in RB_DATASETS and tm_value in RB_THREATS and card.is_file():
            from robustbench.model_zoo.models import model_dicts

            _register_card(card, model_dicts)  # errors (bad card, name clash) are raised, not skipped
        return orig(model_name, model_dir, dataset, threat_model, *args, **kwargs)

    setattr(load_model, _MARK, True)
    return load_model


# ------------------------------------------------------------------------------------------------- data
@contextlib.contextmanager
def allow_unverified_data() -> Iterator[None]:
    """Inside this block robustbench's CIFAR loading skips torchvision's MD5 check (fabricated test files).
    Never the default: numbers on unverified files are not comparable with published ones."""
    old = _state["verify"]
    _state["verify"] = False
    try:
        yield
    finally:
        _state["verify"] = old


def _is_plain_to_tensor(transform) -> bool:
    import torchvision.transforms as T

    if isinstance(transform, T.ToTensor):
        return True
    return isinstance(transform, T.Compose) and all(isinstance(t, T.ToTensor) for t in transform.transforms)


def _load_cifar(name: str, n_examples, data_dir, transforms_test):
    import torch

    from ..data import load_dataset

    split = load_dataset(name, "test", data_dir, verify=_state["verify"]).subset(n_examples)
    x = split.x
    if transforms_test is not None and not _is_plain_to_tensor(transforms_test):
        from PIL import Image  # a custom preprocessing sees PIL images, as with torchvision's dataset

        u8 = (split.x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        x = torch.stack([transforms_test(Image.fromarray(img)) for img in u8])
    return x, split.y


def load_cifar10(n_examples: int | None = None, data_dir: str = "./data", transforms_test=None):
    """robustbench.data.load_cifar10 through ``generalist_bench.data.load_dataset`` (MD5-verified)."""
    return _load_cifar("cifar10", n_examples, data_dir, transforms_test)


def load_cifar100(n_examples: int | None = None, data_dir: str = "./data", transforms_test=None):
    """robustbench.data.load_cifar100 through ``generalist_bench.data.load_dataset`` (MD5-verified)."""
    return _load_cifar("cifar100", n_examples, data_dir, transforms_test)
