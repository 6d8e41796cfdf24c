"""Leaderboard rows: one per model card (ours) plus literature rows ("reported, not reproduced").

Rows are grouped into tables by (dataset, threat model, eps) — numbers at different eps are not comparable —
and sorted by AutoAttack accuracy (rows without an AutoAttack result last), then clean accuracy, then name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..registry import title as display_title
from ..utils import typed
from ..zoo.card import ModelCard, format_eps, parse_eps
from .stats import wilson_interval

LITERATURE_PATH = Path(__file__).with_name("literature.json")
OURS, LITERATURE = "ours", "literature"


@dataclass(frozen=True)
class Accuracy:
    """An accuracy in percent measured on ``n`` test points, with its 95% Wilson interval."""

    value: float
    n: int

    @property
    def ci(self) -> tuple[float, float]:
        return wilson_interval(self.value, self.n)


@dataclass(frozen=True)
class Row:
    model_id: str
    title: str                      # title of the work
    source: str                     # OURS | LITERATURE
    trainer: str                    # display name
    dataset: str
    threat_model: str
    eps_str: str
    clean: Accuracy | None
    autoattack: Accuracy | None
    per_attack: tuple[tuple[str, Accuracy], ...]
    architecture: str
    n_examples: int | None
    link: str                       # ours: path of the card relative to the output folder; literature: source URL
    paper_link: str = ""
    epochs: int | None = None
    hardware: str | None = None
    hardware_detail: str | None = None
    wall_time_s: float | None = None
    date: str | None = None         # ours: card date (YYYY-MM-DD); literature: venue
    quick: bool = False
    protocol: str = ""              # footnote text (how the numbers were obtained)
    notes: tuple[str, ...] = field(default=())

    @property
    def table_key(self) -> tuple[str, str, str]:
        return (self.dataset, self.threat_model, self.eps_str)


# ------------------------------------------------------------------------------------------------ ours
def hardware_label(hw: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(short label, full description) of a card's ``hardware`` dict."""
    if not hw:
        return None, None
    if hw.get("gpu"):
        n = hw.get("gpu_count") or hw.get("world_size")
        short = f"{hw['gpu']}" + (f" ×{n}" if n and n != 1 else "")
    else:
        threads = hw.get("torch_threads") or hw.get("cpu_count")
        short = f"CPU, {threads} thread{'' if threads == 1 else 's'}" if threads else "CPU"
    detail = ", ".join(f"{k}: {v}" for k, v in hw.items())
    return short, detail


def _attack_names(attacks: Any, suite: Any = None) -> str:
    names = []
    for a in attacks or []:
        if not isinstance(a, Mapping):
            names.append(str(a))
            continue
        params = a.get("params") or {}
        comps = params.get("components") if isinstance(params, Mapping) else None
        version = params.get("version") if isinstance(params, Mapping) else None
        detail = (f"version {version}: " if version else "") + ", ".join(map(str, comps)) if comps else ""
        if a.get("name") == suite and detail:
            names.append(detail)
        else:
            names.append(f"{a.get('name', '?')}" + (f" [{detail}]" if detail else ""))
    return ", ".join(names)


def _sample_text(p: Mapping[str, Any], n: int) -> str:
    split = p.get("split", "test")
    if p.get("index_rule") == "random":
        return f"{split} split, n = {n} points sampled at random (sample seed {p.get('sample_seed')})"
    return f"{split} split, first n = {n} points"


def _protocol_text(card: ModelCard) -> str:
    ev = card.primary_evaluation
    if ev is None:
        suites = ", ".join(card.evaluations) or "none"
        text = f"No AutoAttack evaluation in the card (suites: {suites})."
    else:
        p = ev.get("protocol", {}) or {}
        attacks = _attack_names(p.get("attacks"), p.get("suite"))
        versions = p.get("versions") or card.versions or {}
        libs = ", ".join(f"{k} {versions[k]}" for k in ("pyautoattack", "torchattacks", "torch") if versions.get(k))
        eps = p.get("eps", card.eps)
        eps_txt = format_eps(eps) if isinstance(eps, int | float) else str(eps)
        mode = f", {p['mode']}" if p.get("mode") else ""
        parts = [f"Suite '{p.get('suite', card.primary_suite)}'" + (f" ({attacks}{mode})" if attacks else ""),
                 f"{p.get('norm', card.threat_model)} eps {eps_txt}", _sample_text(p, ev["n_examples"])]
        if p.get("seed") is not None:
            parts.append(f"seed {p['seed']}")
        if p.get("batch_size") is not None:
            parts.append(f"batch {p['batch_size']}")
        if p.get("exact") is False:  # a reader must see that this is not the exact computation
            parts.append(f"engine '{p.get('engine')}' (not exact: {p.get('search_dtype') or 'float32'} search, every "
                         "fooled verdict confirmed in float32)")
        if libs:
            parts.append(libs)
        commit = p.get("git_commit") or p.get("commit") or card.commit
        if commit:
            parts.append(f"commit {commit[:12]}")
        text = "; ".join(parts) + "."
    for suite, other in card.evaluations.items():
        if suite == card.primary_suite:
            continue
        names = ", ".join(other["per_attack"]) or "no attacks"
        sample = _sample_text(other.get("protocol") or {}, other["n_examples"])
        text += f" Also suite '{suite}' ({names}; {other.get('per_attack_mode', 'individual')}) on the {sample}."
    return text


def row_from_card(card: ModelCard, json_path: Path | None = None, out_dir: Path | None = None) -> Row:
    ev = card.primary_evaluation
    per: list[tuple[str, Accuracy]] = []
    if ev is not None:
        per += [(name, Accuracy(acc, ev["n_examples"])) for name, acc in ev["per_attack"].items()]
    for suite, other in card.evaluations.items():
        if suite == card.primary_suite:
            continue
        n_other = other["n_examples"]
        where = f" (n = {n_other:,})" if n_other != (ev or {}).get("n_examples") else ""  # another set of points
        per += [(f"{suite}/{'clean' if name == 'natural' else name}{where}", Accuracy(acc, n_other))
                for name, acc in other["per_attack"].items()]
    if json_path is not None and out_dir is not None:
        link = Path(os.path.relpath(Path(json_path).resolve(), Path(out_dir).resolve())).as_posix()
    else:
        link = f"{card.dataset}/{card.threat_model}/{card.model_id}.json"
    short, detail = hardware_label(card.hardware)
    notes = []
    if card.quick:
        notes.append("quick run (reduced budget), not a full reproduction")
    if card.footnote:
        notes.append(card.footnote)
    if card.unreliable:
        notes.append("marked unreliable")
    return Row(
        model_id=card.model_id, title=card.name, source=OURS, trainer=display_title("trainer", card.trainer),
        dataset=card.dataset, threat_model=card.threat_model, eps_str=card.eps_str,
        clean=Accuracy(card.clean_acc, card.n_examples) if card.clean_acc is not None and card.n_examples else None,
        autoattack=(Accuracy(card.autoattack_acc, card.n_examples)
                    if card.autoattack_acc is not None and card.n_examples else None),
        per_attack=tuple(per), architecture=card.architecture, n_examples=card.n_examples, link=link,
        paper_link=card.link, epochs=card.epochs, hardware=short, hardware_detail=detail,
        wall_time_s=card.train_wall_time_s, date=card.date[:10], quick=card.quick, protocol=_protocol_text(card),
        notes=tuple(notes))


def rows_from_zoo(model_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                  strict: bool = True) -> list[Row]:
    """One row per card in ``model_dir``. A bad card raises (``strict``) or is skipped with a warning."""
    import warnings

    from ..zoo.store import list_zoo

    rows = []
    for entry in list_zoo(model_dir):
        if entry.card is None or entry.error:
            if entry.error and entry.card is None and not entry.json_path.exists():
                continue  # a .pt without a card is a zoo problem (`zoo verify`), not a leaderboard row
            if strict:
                raise ConfigError(f"cannot build the leaderboard: {entry.error}")
            warnings.warn(f"leaderboard: skipping {entry.json_path}: {entry.error}", stacklevel=2)
            continue
        rows.append(row_from_card(entry.card, entry.json_path, Path(out_dir) if out_dir is not None else None))
    return rows


# ------------------------------------------------------------------------------------------ literature
_LIT_REQUIRED = {"model_id": str, "name": str, "link": str, "source": str, "source_url": str, "dataset": str,
                 "threat_model": str, "eps_str": str, "trainer": str, "architecture": str, "clean_acc": float,
                 "autoattack_acc": float, "n_examples": int, "n_examples_note": str, "venue": str}


def load_literature(path: str | os.PathLike = LITERATURE_PATH) -> list[dict[str, Any]]:
    """Entries of the literature file, checked: every field present and typed, accuracies in [0, 100]."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"literature file {path} cannot be read: {e}") from None
    entries = data.get("entries") if isinstance(data, Mapping) else None
    if not isinstance(entries, list):
        raise ConfigError(f"literature file {path}: expected an object with an 'entries' list")
    for i, e in enumerate(entries):
        where = f"literature file {path}, entry {i} ({e.get('model_id', '?') if isinstance(e, Mapping) else '?'})"
        if not isinstance(e, Mapping):
            raise ConfigError(f"{where}: not an object")
        for key, tp in _LIT_REQUIRED.items():
            if key not in e:
                raise ConfigError(f"{where}: missing field {key!r}")
            try:
                typed.coerce(tp, e[key], key, strict=True)
            except typed.TypeMismatch as m:
                raise ConfigError(f"{where}: field {key!r} must be {m.expected}, got {e[key]!r}") from None
        for key in ("clean_acc", "autoattack_acc"):
            if not 0 <= e[key] <= 100:
                raise ConfigError(f"{where}: field {key!r} must be a percentage, got {e[key]}")
        try:
            parse_eps(e["eps_str"])
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"{where}: field 'eps_str' must look like '8/255', got {e['eps_str']!r}") from None
    return [dict(e) for e in entries]


def rows_from_literature(entries: Iterable[Mapping[str, Any]]) -> list[Row]:
    rows = []
    for e in entries:
        n = int(e["n_examples"])
        notes = ["reported, not reproduced"]
        if e.get("footnote"):
            notes.append(e["footnote"])
        if e.get("additional_data"):
            notes.append("uses additional training data")
        protocol = (f"Reported, not reproduced: {e['source']} ({e['source_url']}). n = {n} for the interval: "
                    f"{e['n_examples_note']}.")
        rows.append(Row(
            model_id=e["model_id"], title=e["name"], source=LITERATURE, trainer=e["trainer"], dataset=e["dataset"],
            threat_model=e["threat_model"], eps_str=e["eps_str"], clean=Accuracy(float(e["clean_acc"]), n),
            autoattack=Accuracy(float(e["autoattack_acc"]), n), per_attack=(), architecture=e["architecture"],
            n_examples=n, link=e["source_url"], paper_link=e["link"], date=e["venue"], protocol=protocol,
            notes=tuple(notes)))
    return rows


# ---------------------------------------------------------------------------------------------- tables
def sort_rows(rows: Iterable[Row]) -> list[Row]:
    def key(r: Row):
        aa = r.autoattack.value if r.autoattack else None
        clean = r.clean.value if r.clean else -1.0
        return (r.quick, aa is None, -(aa or 0.0), -clean, r.model_id)  # quick rows after all others

    return sorted(rows, key=key)


def group_rows(rows: Iterable[Row]) -> dict[tuple[str, str, str], list[Row]]:
    """(dataset, threat model, eps_str) → sorted rows; tables ordered by dataset, threat model, eps."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault(r.table_key, []).append(r)
    order = sorted(groups, key=lambda k: (k[0], k[1], parse_eps(k[2])))
    return {k: sort_rows(groups[k]) for k in order}


def table_title(key: tuple[str, str, str]) -> str:
    dataset, tm, eps = key
    return f"{display_title('dataset', dataset)} · {tm} · eps = {eps}"


def table_slug(key: tuple[str, str, str]) -> str:
    dataset, tm, eps = key
    return f"{dataset}_{tm}_{eps.replace('/', '-')}"
