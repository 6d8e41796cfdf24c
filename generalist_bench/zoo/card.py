"""The model card: a typed dataclass ↔ JSON, stored as ``model_zoo/<dataset>/<threat_model>/<model_id>.json``.

It carries RobustBench's ``model_info`` fields (link, name, authors, venue, architecture, dataset,
additional_data, number_forward_passes, eps, clean_acc, reported, autoattack_acc, footnote, unreliable) —
but with numbers as numbers: ``eps`` is a float (plus ``eps_str`` such as ``"8/255"``) and accuracies are
percent floats. ``to_robustbench_model_info()`` exports RobustBench's string conventions.

On top of that it records what is needed to trust and reproduce the entry: our architecture name
(``arch``, built by ``generalist_bench.models.model_for_dataset(arch, dataset, **arch_kwargs)``), the trainer,
the full resolved recipe, seed, epochs, the model-selection rule and the chosen epoch, training wall time
and hardware, every evaluation result (suite → ``EvalResult.to_dict()``, with its protocol and per-attack
accuracies), library versions, commit, the command that reproduces it, whether it is a ``quick`` run, the
date, and the sha256 of the ``.pt`` file (filled in by ``save_to_zoo``).

As in RobustBench, ``name`` is the title of the work and ``model_id`` is the file stem / zoo name.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import CheckpointError, ConfigError
from ..registry import title as display_title
from ..threat import NORMS, normalize_norm, parse_eps  # noqa: F401  (parse_eps: part of this module's API)
from ..utils import typed

if TYPE_CHECKING:  # (not imported at run time: cards stay readable without torch)
    from ..trainers.summary import TrainSummary

CARD_SCHEMA_VERSION = 1
AA_SUITE = "autoattack"          # the evaluation suite whose numbers are the card's headline numbers
THREAT_MODELS = NORMS
QUICK_SUFFIX = "_quick"
MODEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")

class ModelCardError(CheckpointError, ConfigError):
    """A model card is missing a field, has an ill-typed or inconsistent value, or is not valid JSON."""


def format_eps(eps: float) -> str:
    """``0.1`` → ``"0.1"``, ``8/255`` → ``"8/255"`` (short decimals stay decimals, else k/255)."""
    short = f"{eps:.4g}"
    if float(short) == eps:
        return short
    k = eps * 255
    if abs(k - round(k)) < 1e-6:
        return f"{round(k)}/255"
    return repr(float(eps))


normalize_threat_model = normalize_norm  # the card's field is called threat_model


# ------------------------------------------------------------------------------------------------ the card
@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """One zoo entry's metadata. Accuracies are percent floats in [0, 100]; ``eps`` is in pixel units."""

    schema_version: int = CARD_SCHEMA_VERSION
    model_id: str                              # zoo name = file stem (RobustBench's "model name")

    # RobustBench model_info fields (typed: numbers are numbers)
    link: str = ""
    name: str = ""                             # title of the work (RobustBench convention)
    authors: str = ""
    venue: str = ""
    architecture: str                          # human-readable, e.g. "ResNet-18"
    dataset: str                               # our registry name, e.g. "cifar10", "fashion_mnist"
    additional_data: bool = False
    number_forward_passes: int = 1
    eps: float
    eps_str: str                               # e.g. "8/255"
    clean_acc: float | None                    # headline numbers, from evaluations[primary_suite]
    reported: float | None = None              # robust accuracy reported by the authors (None: = autoattack_acc)
    autoattack_acc: float | None
    footnote: str | None = None
    unreliable: bool = False

    # ours: what the model is
    threat_model: str                          # "Linf" | "L2"
    arch: str                                  # generalist_bench.models registry name
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    num_classes: int
    # how it was evaluated (headline numbers are on n_examples test points)
    n_examples: int | None
    primary_suite: str | None = AA_SUITE
    # how it was trained
    trainer: str
    seed: int
    epochs: int
    selection_rule: str                        # e.g. "clean+robust on 1000 validation images (PGD-20)"
    chosen_epoch: int | None
    budget: str = ""                           # training images, epochs, batch, training attack, precision
    tuning_log: str | None = None              # the tuning log its preset's hyperparameters come from (None: untuned)
    train_wall_time_s: float | None
    hardware: dict[str, Any]
    quick: bool
    # provenance
    date: str                                  # ISO 8601
    command: str                               # the exact command that reproduces the entry
    commit: str | None
    versions: dict[str, Any]
    sha256: str = ""                           # of the .pt file; filled in by save_to_zoo
    recipe: dict[str, Any]                     # the full resolved config (Config.to_dict())
    evaluations: dict[str, dict[str, Any]]     # suite name → EvalResult.to_dict()

    def __post_init__(self) -> None:
        hints = typed.hints(type(self))
        for f in dataclasses.fields(self):
            try:
                value = typed.coerce(hints[f.name], getattr(self, f.name), f.name, strict=True)
            except typed.TypeMismatch as e:
                raise ModelCardError(f"field {f.name!r} must be {e.expected}, got {e.value!r:.80}") from None
            object.__setattr__(self, f.name, value)
        _validate(self)

    # ------------------------------------------------------------------------------------- conversions
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "model card") -> ModelCard:
        """Build a card from parsed JSON. Missing, unknown, ill-typed or inconsistent fields raise
        ``ModelCardError`` naming the field."""
        if not isinstance(data, Mapping):
            raise ModelCardError(f"{source}: expected a JSON object, got {type(data).__name__}")
        try:
            typed.check_keys(cls, data, require=True)
            return cls(**data)  # each field type-checked (strict) by __post_init__
        except typed.UnknownKeys as e:
            raise ModelCardError(f"{source}: unknown field(s) {', '.join(map(repr, e.unknown))}; "
                                 f"valid fields: {', '.join(f.name for f in dataclasses.fields(cls))}") from None
        except typed.MissingKeys as e:
            raise ModelCardError(f"{source}: missing required field(s) {', '.join(map(repr, e.missing))}") from None
        except ModelCardError as e:
            raise ModelCardError(f"{source}: {e}") from None

    @classmethod
    def from_json(cls, text: str, source: str = "model card") -> ModelCard:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelCardError(f"{source}: not valid JSON ({e})") from None
        return cls.from_dict(data, source)

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelCardError(f"model card {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ModelCardError(f"model card {path} cannot be read: {e}") from None
        return cls.from_json(text, source=f"model card {path}")

    def save(self, path: str | Path) -> Path:
        from ..utils.io import atomic_write_text

        return atomic_write_text(path, self.to_json())

    def replace(self, **changes: Any) -> ModelCard:
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------------------------------- views
    def relpath(self) -> Path:
        """``<dataset>/<threat_model>/<model_id>`` (no suffix), relative to the zoo root."""
        return Path(self.dataset) / self.threat_model / self.model_id

    @property
    def primary_evaluation(self) -> dict[str, Any] | None:
        return self.evaluations.get(self.primary_suite) if self.primary_suite else None

    def to_robustbench_model_info(self) -> dict[str, Any]:
        """RobustBench's ``model_info/<dataset>/<threat>/<name>.json`` format: accuracies and eps as strings
        (``"84.92"``, ``"8/255"``), booleans and ints as JSON values, ``footnote`` string or null."""
        notes = [self.footnote] if self.footnote else []
        if self.n_examples is not None and self.n_examples < 10000:
            notes.append(f"Evaluated on the first {self.n_examples} test points (RobustBench uses 10,000).")
        if self.quick:
            notes.append("Quick run (reduced budget); not a full reproduction.")
        reported = self.reported if self.reported is not None else self.autoattack_acc
        return {
            "link": self.link,
            "name": self.name,
            "authors": self.authors,
            "additional_data": self.additional_data,
            "number_forward_passes": self.number_forward_passes,
            "dataset": self.dataset,
            "venue": self.venue,
            "architecture": self.architecture,
            "eps": self.eps_str,
            "clean_acc": _pct_str(self.clean_acc),
            "reported": _pct_str(reported),
            "autoattack_acc": _pct_str(self.autoattack_acc),
            "footnote": " ".join(notes) if notes else None,
            "unreliable": self.unreliable,
        }


def _pct_str(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def _pct(where: str, value: Any, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ModelCardError(f"field {where!r} must be a number (percent), got {value!r:.80}")
    if not 0.0 <= value <= 100.0:
        raise ModelCardError(f"field {where!r} must be a percentage in [0, 100], got {value!r}")
    return float(value)


def _check_evaluation(suite: str, ev: Any) -> None:
    where = f"evaluations.{suite}"
    if not isinstance(ev, Mapping):
        raise ModelCardError(f"field {where!r} must be an object (an EvalResult.to_dict()), got {ev!r:.80}")
    for key in ("protocol", "clean_acc", "robust_acc", "per_attack", "n_examples"):
        if key not in ev:
            raise ModelCardError(f"field {where!r} is missing {key!r}")
    _pct(f"{where}.clean_acc", ev["clean_acc"])
    _pct(f"{where}.robust_acc", ev["robust_acc"])
    n = ev["n_examples"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ModelCardError(f"field '{where}.n_examples' must be a positive integer, got {n!r}")
    if not isinstance(ev["protocol"], Mapping):
        raise ModelCardError(f"field '{where}.protocol' must be an object, got {ev['protocol']!r:.80}")
    per = ev["per_attack"]
    if not isinstance(per, Mapping):
        raise ModelCardError(f"field '{where}.per_attack' must be an object (attack → percent), got {per!r:.80}")
    for attack, acc in per.items():
        _pct(f"{where}.per_attack.{attack}", acc)


def _close(a: float | None, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - float(b)) <= 1e-9


def _validate(card: ModelCard) -> None:
    from ..data import get_dataset_info
    from ..models import list_models

    if card.schema_version != CARD_SCHEMA_VERSION:
        raise ModelCardError(f"field 'schema_version' is {card.schema_version}; this version of generalist_bench "
                             f"reads version {CARD_SCHEMA_VERSION}")
    if not MODEL_ID_RE.match(card.model_id):
        raise ModelCardError(f"field 'model_id' {card.model_id!r} must be 1-128 letters, digits, '_', '-' or '.' "
                             "(it is a file name)")
    if card.quick != card.model_id.endswith(QUICK_SUFFIX):
        raise ModelCardError(f"field 'model_id' {card.model_id!r}: quick entries (quick=true) and only they are "
                             f"named with the suffix {QUICK_SUFFIX!r} (quick={card.quick})")
    if card.threat_model not in THREAT_MODELS:
        raise ModelCardError(f"field 'threat_model' must be one of {', '.join(THREAT_MODELS)}, got "
                             f"{card.threat_model!r}")
    try:
        info = get_dataset_info(card.dataset)
    except KeyError as e:
        raise ModelCardError(f"field 'dataset': {e}") from None
    if info.name != card.dataset:
        raise ModelCardError(f"field 'dataset' must be the registry name {info.name!r}, got {card.dataset!r}")
    if card.arch not in list_models():
        raise ModelCardError(f"field 'arch': unknown architecture {card.arch!r}; valid: {', '.join(list_models())}")
    if card.num_classes != info.num_classes:
        raise ModelCardError(f"field 'num_classes' is {card.num_classes} but {card.dataset} has {info.num_classes}")
    if card.eps < 0:
        raise ModelCardError(f"field 'eps' must be ≥ 0, got {card.eps}")
    try:
        eps_from_str = parse_eps(card.eps_str)
    except (ValueError, ZeroDivisionError):
        raise ModelCardError(f"field 'eps_str' must look like '8/255' or '0.1', got {card.eps_str!r}") from None
    if abs(eps_from_str - card.eps) > 1e-9:
        raise ModelCardError(f"field 'eps_str' {card.eps_str!r} does not match field 'eps' {card.eps!r}")
    for name in ("clean_acc", "autoattack_acc", "reported"):
        _pct(name, getattr(card, name), allow_none=True)
    if card.number_forward_passes < 1:
        raise ModelCardError(f"field 'number_forward_passes' must be ≥ 1, got {card.number_forward_passes}")
    if card.n_examples is not None and card.n_examples < 1:
        raise ModelCardError(f"field 'n_examples' must be ≥ 1, got {card.n_examples}")
    if card.epochs < 0:
        raise ModelCardError(f"field 'epochs' must be ≥ 0, got {card.epochs}")
    if card.chosen_epoch is not None and not 1 <= card.chosen_epoch <= card.epochs:
        raise ModelCardError(f"field 'chosen_epoch' must be in [1, epochs={card.epochs}] (1-based), "
                             f"got {card.chosen_epoch}")
    if card.train_wall_time_s is not None and card.train_wall_time_s < 0:
        raise ModelCardError(f"field 'train_wall_time_s' must be ≥ 0, got {card.train_wall_time_s}")
    if card.sha256 and not re.fullmatch(r"[0-9a-f]{64}", card.sha256):
        raise ModelCardError(f"field 'sha256' must be 64 lowercase hex digits (or empty before saving), "
                             f"got {card.sha256!r}")
    try:
        datetime.fromisoformat(card.date)
    except ValueError:
        raise ModelCardError(f"field 'date' must be an ISO 8601 date/time, got {card.date!r}") from None
    if not card.command.strip():
        raise ModelCardError("field 'command' must be the command that reproduces the entry, got ''")
    for suite, ev in card.evaluations.items():
        _check_evaluation(suite, ev)
    # headline numbers must be those of the primary evaluation suite
    ps = card.primary_suite
    if ps is None:
        if card.autoattack_acc is not None:
            raise ModelCardError("field 'autoattack_acc' is set but 'primary_suite' is null")
    elif ps not in card.evaluations:
        raise ModelCardError(f"field 'primary_suite' {ps!r} is not in 'evaluations' "
                             f"({', '.join(card.evaluations) or 'none'}); use null if there is no AutoAttack result")
    else:
        ev = card.evaluations[ps]
        for ours, theirs in (("clean_acc", "clean_acc"), ("autoattack_acc", "robust_acc"),
                             ("n_examples", "n_examples")):
            if not _close(getattr(card, ours), ev[theirs]):
                raise ModelCardError(f"field {ours!r} ({getattr(card, ours)!r}) differs from "
                                     f"'evaluations.{ps}.{theirs}' ({ev[theirs]!r})")


# ------------------------------------------------------------------------------------------- make_card
def _jsonable(name: str, obj: Any) -> Any:
    try:
        return json.loads(json.dumps(obj, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ModelCardError(f"field {name!r} is not JSON-serialisable: {e}") from None


def budget_text(config: Config, n_train: int | None = None) -> str:
    """The training budget in words: training images, epochs, batch, each learner's training attack, precision."""
    t, d = config.train, config.data
    images = (f"{n_train:,} training images" if n_train is not None else
              f"the first {d.train_subset:,} training images" if d.train_subset else
              f"the training split less {d.val_size:,} validation images")
    # the adversarial objectives' training attack; standard training has none, and its learner's configured
    # (unused) attack stands in, so that methods trained under one budget get one text
    start = " from a random start"
    adversarial = [ln for ln in t.learners if ln.objective != "standard"] or list(t.learners)
    attacks = list(dict.fromkeys(f"PGD-{a.steps} step {format_eps(a.step_size)}{start * a.random_start}"
                                 for a in (ln.attack for ln in adversarial)))
    precision = {"off": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}.get(t.amp, t.amp)
    epochs = f"{t.epochs} epoch{'s' * (t.epochs != 1)}"
    return (f"{images}, {epochs}, batch {t.batch_size}, training attack (adversarial objectives) "
            f"{' / '.join(attacks)}, {precision}{' + channels_last' if t.channels_last else ''}")


def _selection_rule(selection: Mapping[str, Any] | None) -> str:
    if not selection:
        return "last epoch"
    crit = selection.get("criterion", "last")
    if crit == "last":
        return "last epoch (no selection)"
    steps = selection.get("attack_steps")
    attack = f", PGD-{steps}" if steps and crit != "clean" else ""
    return (f"best {crit} accuracy on the first {selection.get('n_val')} images of the validation split "
            f"(held out of train{attack}; test set never used), evaluated every {selection.get('every', 1)} epoch(s)")


@dataclass(frozen=True)
class Provenance:
    """How and where an entry was made. ``Provenance.here()``: this process (now, its command line, the checkout's
    commit, the installed versions)."""

    date: str
    command: str
    commit: str | None
    versions: dict[str, Any]

    @classmethod
    def here(cls, command: str | None = None) -> Provenance:
        from ..utils import env

        return cls(date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   command=command or shlex.join([Path(sys.executable).name, *sys.argv]),
                   commit=env.git_commit(), versions=env.library_versions())


@dataclass(frozen=True)
class Work:
    """RobustBench's fields about the work an entry belongs to (all optional for our own entries)."""

    name: str | None = None  # title; default "<Trainer> (<arch>, <dataset>, <norm> eps <eps>) — generalist-bench"
    link: str = ""
    authors: str = ""
    venue: str = ""
    footnote: str | None = None
    reported: float | None = None     # robust accuracy the authors report (None: = AutoAttack accuracy)
    additional_data: bool = False


def make_card(config: Config, evaluations: Mapping[str, Any], *, training: TrainSummary | None = None,
              provenance: Provenance | None = None, work: Work = Work(), model_id: str | None = None,
              quick: bool = False, primary_suite: str | None = AA_SUITE,
              arch_kwargs: Mapping[str, Any] | None = None, tuning_log: str | None = None) -> ModelCard:
    """A card for a model trained from ``config`` (a resolved ``Config``), by the run that ``training`` summarises
    (chosen epoch, training wall time and hardware; None: unknown), evaluated as ``evaluations`` (suite name →
    ``EvalResult`` or its ``to_dict()``), published as ``provenance`` says (default: this process). ``tuning_log``:
    where the recipe's hyperparameters were tuned (``presets.tuning_log_for(config)``).

    Dataset, threat model, eps, architecture, trainer, seed, epochs and the selection rule come from the config;
    the headline ``clean_acc`` / ``autoattack_acc`` / ``n_examples`` from ``evaluations[primary_suite]`` (``None`` if
    that suite was not run). ``quick=True`` appends ``_quick`` to the name.
    """
    from ..data import get_dataset_info

    if not isinstance(config, Config):
        raise ModelCardError(f"field 'recipe': expected a resolved Config, got {type(config).__name__}")
    if training is not None:
        t = config.train
        ran, here = (training.trainer, training.epochs, training.seed), (t.trainer, t.epochs, t.seed)
        if ran != here or training.config_name != config.name:
            raise ModelCardError(f"the training summary is of another run ({training.config_name}: trainer, epochs, "
                                 f"seed {ran}) than the config ({config.name}: {here})")
    prov = provenance or Provenance.here()
    cfg = _jsonable("recipe", config.to_dict())
    arch, norm, eps, train = config.model.arch, config.threat.norm, float(config.threat.eps), config.train
    info = get_dataset_info(config.data.dataset)
    evals = {}
    for suite, ev in evaluations.items():
        evals[str(suite)] = _jsonable(f"evaluations.{suite}", ev.to_dict() if hasattr(ev, "to_dict") else ev)
    headline = evals.get(primary_suite) if primary_suite else None
    if primary_suite and headline is None:
        primary_suite = None
    if model_id is None:
        base = config.name if config.name not in (None, "", "custom") else f"{train.trainer}_{arch}_{info.name}"
        model_id = re.sub(r"[^A-Za-z0-9_.\-]", "_", f"{base}_seed{train.seed}")
    if quick and not model_id.endswith(QUICK_SUFFIX):
        model_id += QUICK_SUFFIX
    title = display_title("trainer", train.trainer)
    return ModelCard(
        model_id=model_id,
        link=work.link,
        name=work.name if work.name is not None else
        f"{title} ({display_title('architecture', arch)}, {display_title('dataset', info.name)}, {norm} eps "
        f"{format_eps(eps)}) — generalist-bench",
        authors=work.authors,
        venue=work.venue,
        architecture=display_title("architecture", arch),
        dataset=info.name,
        additional_data=work.additional_data,
        eps=eps,
        eps_str=format_eps(eps),
        clean_acc=headline["clean_acc"] if headline else None,
        reported=work.reported,
        autoattack_acc=headline["robust_acc"] if headline else None,
        footnote=work.footnote,
        threat_model=normalize_threat_model(norm),
        arch=arch,
        arch_kwargs=dict(arch_kwargs or {}),
        num_classes=info.num_classes,
        n_examples=headline["n_examples"] if headline else None,
        primary_suite=primary_suite,
        trainer=train.trainer,
        seed=train.seed,
        epochs=train.epochs,
        selection_rule=_selection_rule(cfg["train"].get("selection")),
        chosen_epoch=training.selection.chosen_epoch if training else None,
        budget=budget_text(config, training.n_train if training else None),
        tuning_log=tuning_log,
        train_wall_time_s=training.train_wall_time_s if training else None,
        hardware=_jsonable("hardware", dict(training.hardware) if training else {}),
        quick=quick,
        date=prov.date,
        command=prov.command,
        commit=prov.commit,
        versions=_jsonable("versions", dict(prov.versions)),
        recipe=cfg,
        evaluations=evals,
    )
