"""Saving to and loading from the zoo: ``<model_dir>/<dataset>/<threat_model>/<model_id>.{pt,json}``.

- The ``.pt`` is a plain state dict (tensors only), loadable with ``torch.load(weights_only=True)``; its
  keys never contain ``model.``/``module.`` (RobustBench's loader strips those substrings anywhere).
- ``save_to_zoo`` writes both files atomically under an exclusive lock on ``<model_dir>/.zoo.lock``, so
  concurrent runs take turns and a reader never sees a half-written file. The card's ``sha256`` is the
  hash of the exact bytes written.
- A quick card (``quick=True``) is always stored as ``<model_id>_quick`` and can never replace a full entry.
- ``load_model`` reads the card, hashes the ``.pt`` bytes and compares BEFORE deserialising them
  (mismatch → ``IntegrityError``), loads with ``weights_only=True`` from those same bytes, builds the
  architecture named by the card and loads strictly.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import CheckpointError, IntegrityError, UnknownNameError
from ..utils.io import atomic_write_bytes, file_lock, sha256_file
from .card import QUICK_SUFFIX, ModelCard, ModelCardError, normalize_threat_model

log = logging.getLogger(__name__)

LOCK_NAME = ".zoo.lock"
FORBIDDEN_KEY_PARTS = ("module.", "model.")


def _dataset_name(dataset: Any) -> str:
    from ..data import get_dataset_info

    return get_dataset_info(str(getattr(dataset, "value", dataset))).name


def entry_paths(model_dir: str | os.PathLike, dataset: str, threat_model: str, model_id: str) -> tuple[Path, Path]:
    """``(pt_path, json_path)`` of an entry."""
    folder = Path(model_dir) / _dataset_name(dataset) / normalize_threat_model(threat_model)
    return folder / f"{model_id}.pt", folder / f"{model_id}.json"


# ------------------------------------------------------------------------------------------------ save
def _clean_state_dict(state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    if hasattr(state_dict, "state_dict") and not isinstance(state_dict, Mapping):
        raise CheckpointError("save_to_zoo takes a state dict (model.state_dict()), not a module")
    out: dict[str, torch.Tensor] = {}
    for k, v in state_dict.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise CheckpointError(f"state dict entry {k!r} is not a str → tensor pair ({type(v).__name__})")
        if any(p in k for p in FORBIDDEN_KEY_PARTS):
            raise CheckpointError(f"state-dict key {k!r} contains 'model.'/'module.', which RobustBench's loader "
                                  "strips anywhere in a key; unwrap DDP/EMA wrappers before saving")
        out[k] = v.detach().to("cpu", copy=True).contiguous()
    return out


def build_model(card: ModelCard) -> nn.Module:
    """The (untrained) architecture described by ``card``."""
    from ..models import model_for_dataset

    model = model_for_dataset(card.arch, card.dataset, **card.arch_kwargs)
    return model


def _load_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> nn.Module:
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{what} does not fit the architecture in its card: {e}") from None
    return model


def _serialise(state_dict: Mapping[str, torch.Tensor], card: ModelCard) -> tuple[ModelCard, bytes]:
    """The card as it will be stored (``_quick`` suffix, sha256 of the bytes) and the ``.pt`` bytes."""
    if not isinstance(card, ModelCard):
        raise TypeError(f"card must be a ModelCard, got {type(card).__name__}")
    if card.quick and not card.model_id.endswith(QUICK_SUFFIX):
        card = card.replace(model_id=card.model_id + QUICK_SUFFIX)
    sd = _clean_state_dict(state_dict)
    _load_strict(build_model(card), sd, f"state dict for {card.model_id!r}")
    buf = io.BytesIO()
    torch.save(sd, buf)
    data = buf.getvalue()
    return card.replace(sha256=hashlib.sha256(data).hexdigest()), data


# What a re-publication may change without the entry being a different one: when and how it was made.
PROVENANCE_FIELDS = ("date", "command", "commit", "versions", "hardware", "train_wall_time_s")
# What an evaluation says (its protocol also records paths, commit and wall time: provenance).
RESULT_FIELDS = ("clean_acc", "robust_acc", "n_examples", "per_attack", "per_attack_mode", "samples")


def _substance(card: ModelCard) -> dict[str, Any]:
    d = {k: v for k, v in card.to_dict().items() if k not in PROVENANCE_FIELDS}
    evals = d.get("evaluations") or {}
    d["evaluations"] = {suite: {k: (e or {}).get(k) for k in RESULT_FIELDS} for suite, e in evals.items()}
    return json.loads(json.dumps(d))  # as stored: tuples become lists


def unchanged_entry(state_dict: Mapping[str, torch.Tensor], card: ModelCard,
                    model_dir: str | os.PathLike = "model_zoo") -> Path | None:
    """The card path of the entry already published with exactly these weights (sha256 of the ``.pt`` bytes, which
    must be the bytes on disk too) and this card but for its provenance (date, command, commit, versions, hardware,
    training time) and the bookkeeping of its evaluations (paths, commit, wall time; every number and per-point
    flag must be equal); None if there is no such entry. Re-running a finished submission then keeps the card of
    the run that made it instead of re-dating it."""
    card, data = _serialise(state_dict, card)
    pt_path, json_path = entry_paths(model_dir, card.dataset, card.threat_model, card.model_id)
    if not (json_path.is_file() and pt_path.is_file()):
        return None
    try:
        old = ModelCard.load(json_path)
    except ModelCardError:
        return None
    if old.sha256 != card.sha256 or sha256_file(pt_path) != card.sha256:
        return None
    return json_path if _substance(old) == _substance(card) else None


def save_to_zoo(state_dict: Mapping[str, torch.Tensor], card: ModelCard,
                model_dir: str | os.PathLike = "model_zoo", *, overwrite: bool = True,
                lock_timeout: float | None = 600.0) -> tuple[Path, Path]:
    """Publish ``state_dict`` with ``card``; returns ``(pt_path, json_path)``.

    The state dict is checked against the card's architecture (strict load) before anything is written;
    the card is stored with the sha256 of the ``.pt`` bytes. A quick card gets the ``_quick`` suffix (if it
    does not have it) and never replaces a full entry. ``overwrite=False`` refuses to replace an existing
    entry of the same name.
    """
    card, data = _serialise(state_dict, card)
    pt_path, json_path = entry_paths(model_dir, card.dataset, card.threat_model, card.model_id)
    with file_lock(Path(model_dir) / LOCK_NAME, timeout=lock_timeout):
        if json_path.exists() or pt_path.exists():
            if not overwrite:
                raise CheckpointError(f"zoo entry {json_path.with_suffix('')} exists (overwrite=False)")
            if card.quick:
                try:
                    existing_quick = ModelCard.load(json_path).quick
                except ModelCardError:
                    existing_quick = True  # a broken card under a _quick name: replacing it is fine
                if not existing_quick:
                    raise CheckpointError(f"refusing to replace the full entry {json_path} with a quick run")
        # .pt first: a reader that sees the new card always finds its file (the old card + new file
        # mismatch in between is refused by load_model's sha256 check, never silently loaded).
        atomic_write_bytes(pt_path, data)
        card.save(json_path)
    log.info("saved %s (%s) sha256 %s", json_path.with_suffix(""), "quick" if card.quick else "full",
             card.sha256[:12])
    return pt_path, json_path


# ------------------------------------------------------------------------------------------------ list
@dataclass(frozen=True)
class ZooEntry:
    """One ``<model_id>.json`` / ``.pt`` pair found in the zoo; ``card`` is None (and ``error`` set) if the
    card cannot be read."""

    dataset: str
    threat_model: str
    model_id: str
    json_path: Path
    pt_path: Path
    card: ModelCard | None = field(repr=False)
    error: str | None = None


def list_zoo(model_dir: str | os.PathLike = "model_zoo", *, dataset: str | None = None,
             threat_model: str | None = None) -> list[ZooEntry]:
    """Every card under ``model_dir`` (optionally one dataset / threat model), sorted by path. Unreadable
    cards are listed with ``card=None`` and the reason in ``error``; ``.pt`` files without a card are listed
    with ``error`` too."""
    root = Path(model_dir)
    if not root.is_dir():
        return []
    ds_dirs = [root / _dataset_name(dataset)] if dataset else sorted(p for p in root.iterdir() if p.is_dir())
    out: list[ZooEntry] = []
    for ds_dir in ds_dirs:
        if not ds_dir.is_dir() or ds_dir.name.startswith("."):
            continue
        tm_dirs = [ds_dir / normalize_threat_model(threat_model)] if threat_model else sorted(ds_dir.iterdir())
        for tm_dir in tm_dirs:
            if not tm_dir.is_dir():
                continue
            stems = sorted({p.stem for p in tm_dir.iterdir()
                            if p.suffix in (".json", ".pt") and not p.name.startswith(".")})
            for stem in stems:
                js, pt = tm_dir / f"{stem}.json", tm_dir / f"{stem}.pt"
                card, error = None, None
                if not js.exists():
                    error = f"{pt} has no model card ({js.name})"
                else:
                    try:
                        card = ModelCard.load(js)
                        error = _location_error(card, ds_dir.name, tm_dir.name, stem)
                    except ModelCardError as e:
                        error = str(e)
                out.append(ZooEntry(ds_dir.name, tm_dir.name, stem, js, pt, card, error))
    return out


def _location_error(card: ModelCard, dataset: str, threat_model: str, stem: str) -> str | None:
    where = (card.dataset, card.threat_model, card.model_id)
    if where != (dataset, threat_model, stem):
        return (f"card {dataset}/{threat_model}/{stem}.json describes {'/'.join(where)}: a card must live at "
                "<dataset>/<threat_model>/<model_id>.json")
    return None


def verify_zoo(model_dir: str | os.PathLike = "model_zoo") -> list[tuple[ZooEntry, bool, str]]:
    """Recompute the sha256 of every entry: ``[(entry, ok, message)]``."""
    results = []
    for e in list_zoo(model_dir):
        if e.card is None or e.error:
            results.append((e, False, e.error or "unreadable card"))
        elif not e.pt_path.exists():
            results.append((e, False, f"{e.pt_path} is missing"))
        elif not e.card.sha256:
            results.append((e, False, "card has no sha256"))
        else:
            actual = sha256_file(e.pt_path)
            ok = actual == e.card.sha256
            results.append((e, ok, "ok" if ok else f"sha256 mismatch: card {e.card.sha256[:12]}…, file {actual[:12]}…"))
    return results


# ------------------------------------------------------------------------------------------------ load
def _available(model_dir: Path, threat_model: str, dataset: str | None) -> list[str]:
    return [f"{e.dataset}/{e.threat_model}/{e.model_id}" if dataset is None else e.model_id
            for e in list_zoo(model_dir, dataset=dataset, threat_model=threat_model) if e.card is not None]


def find_card(name: str, dataset: str | None = None, threat_model: str = "Linf",
              model_dir: str | os.PathLike = "model_zoo") -> tuple[ModelCard, Path, Path]:
    """``(card, pt_path, json_path)`` of zoo entry ``name``; ``dataset=None`` searches every dataset."""
    root = Path(model_dir)
    tm = normalize_threat_model(threat_model)
    if dataset is None:
        hits = [e for e in list_zoo(root, threat_model=tm) if e.model_id == name]
        if len(hits) > 1:
            raise CheckpointError(f"zoo model {name!r} exists for several datasets "
                                  f"({', '.join(e.dataset for e in hits)}); pass dataset=")
        if not hits:
            err = UnknownNameError("zoo model", name, _available(root, tm, None))
            err.args = (f"{err.args[0]} (looked in {root.resolve()}/*/{tm}/)",)
            raise err
        dataset = hits[0].dataset
    pt_path, json_path = entry_paths(root, dataset, tm, name)
    if not json_path.exists():
        err = UnknownNameError("zoo model", name, _available(root, tm, _dataset_name(dataset)))
        err.args = (f"{err.args[0]} (looked for {json_path.resolve()})",)
        raise err
    card = ModelCard.load(json_path)
    problem = _location_error(card, json_path.parent.parent.name, json_path.parent.name, json_path.stem)
    if problem:
        raise ModelCardError(problem)
    return card, pt_path, json_path


def load_state_dict_verified(card: ModelCard, pt_path: Path) -> dict[str, torch.Tensor]:
    """Read ``pt_path``, check its sha256 against ``card`` BEFORE deserialising, load with weights_only."""
    try:
        data = pt_path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{pt_path} is missing (its card {pt_path.with_suffix('.json').name} exists)") from None
    if not card.sha256:
        raise IntegrityError(f"card of {pt_path} has no sha256; refusing to load an unverifiable checkpoint")
    actual = hashlib.sha256(data).hexdigest()
    if actual != card.sha256:
        raise IntegrityError(f"{pt_path}: sha256 {actual} does not match the card's {card.sha256} (file "
                             "corrupted, tampered with, or being rewritten by a concurrent save — retry)")
    try:
        sd = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors come in many types
        raise CheckpointError(f"{pt_path} cannot be loaded with weights_only=True: {e}") from None
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{pt_path} is not a plain state dict (str → tensor)")
    return dict(sd)


def load_model(name: str, dataset: str | None = None, threat_model: str = "Linf",
               model_dir: str | os.PathLike = "model_zoo", *, device: str | torch.device = "cpu") -> nn.Module:
    """Zoo model ``name`` in eval mode, verified against its card's sha256 before it is deserialised.

    >>> model = load_model("fmnist-smallcnn-generalist_seed0", dataset="fashion_mnist")
    """
    card, pt_path, _ = find_card(name, dataset, threat_model, model_dir)
    sd = load_state_dict_verified(card, pt_path)
    model = _load_strict(build_model(card), sd, str(pt_path))
    return model.to(device).eval()
