"""Configuration: frozen dataclasses, named presets, TOML/YAML files and ``key=value`` overrides.

Resolution order (timm / torchvision references): preset defaults → file → CLI ``--set`` overrides.
The resolved config is saved beside every output (``config.json``) and in every checkpoint.

Units are part of the field names or docstrings: epochs are counted from 1; schedules are lists of
``(fraction_of_training, value)`` points interpolated linearly (``np.interp``) at the 1-based epoch
number divided by the number of epochs, as the Generalist reference code does; eps and step sizes are in
pixel units of [0,1] images.
"""

from __future__ import annotations

import json
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnknownNameError
from .threat import NORMS
from .utils import typed

AUGMENTS = ("none", "flip", "crop", "crop_flip")
BN_MODES = ("eval", "train")
EMA_MODES = ("per_learner", "mixed")
REDISTRIBUTE_MODES = ("epoch", "reference", "never")
CRITERIA = ("clean+robust", "robust", "clean", "last")
AMP_MODES = ("off", "bf16", "fp16")

Schedule = tuple[tuple[float, float], ...]


def interp_schedule(points: Schedule, t: float) -> float:
    """Piecewise-linear value of ``points`` (sorted ``(t, value)`` pairs) at ``t``; constant outside."""
    if not points:
        raise ConfigError("empty schedule")
    if t <= points[0][0]:
        return float(points[0][1])
    for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
        if t <= t1:
            return float(v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0))
    return float(points[-1][1])


# ----------------------------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class DataConfig:
    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    val_size: int = 5000          # images held out of the training set for model selection
    split_seed: int = 0
    train_subset: int | None = None  # use only the first n training images (quick runs, tests)


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "small_cnn"


@dataclass(frozen=True)
class ThreatModel:
    norm: str = "Linf"
    eps: float = 0.1              # pixel units of [0,1] images


@dataclass(frozen=True)
class AttackConfig:
    """The training-time inner maximisation (PGD on CE for ``pgd_at``, on KL for ``trades``)."""

    norm: str | None = None       # None: the threat model's norm
    eps: float | None = None      # None: the threat model's eps
    steps: int = 10
    step_size: float = 0.025      # pixel units
    random_start: bool = True
    bn_mode: str = "eval"         # BatchNorm/dropout mode while the attack runs: eval | train


@dataclass(frozen=True)
class OptimConfig:
    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    # lr multiplier as a function of training progress (fraction of epochs), evaluated per epoch
    lr_schedule: Schedule = ((0.0, 1.0), (1 / 3, 1.0), (2 / 3, 0.1), (1.0, 0.01))


@dataclass(frozen=True)
class LearnerConfig:
    """One learner: a standalone trainer's model, or one of Generalist's base learners."""

    name: str = "adversarial"
    objective: str = "pgd_at"
    optim: OptimConfig = field(default_factory=OptimConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    trades_beta: float = 6.0
    augment: str = "none"
    # Generalist mixing weight γ_i as a function of training progress; weights are normalised to sum 1
    mix_schedule: Schedule = ((0.0, 1.0), (1.0, 1.0))
    # reference behaviour: the natural learner's lr is overwritten with the adversarial learner's lr
    lr_from: str | None = None


@dataclass(frozen=True)
class MergeConfig:
    """Generalist's global learner: θ_g ← α_k θ_g + (1 − α_k) Σ_i γ_i θ_i, α_k = min(α, (k+1)/(k+10))."""

    ema_decay: float = 0.999          # α
    ema_warmup: bool = True           # use min(α, (k+1)/(k+10)); False: α from the first step
    ema_mode: str = "per_learner"     # per_learner (reference: one EMA per learner, then mix) | mixed
    redistribute: str = "epoch"       # epoch | reference | never
    warmup_epochs: int = 75           # t′: no redistribution during the first t′ epochs
    redistribute_every: int = 5       # c: after warm-up, copy θ_g into every learner every c epochs
    reset_optimizer: bool = False     # False: keep momentum buffers (reference)


@dataclass(frozen=True)
class SelectionConfig:
    """Model selection on the validation split only (never the test set)."""

    n_val: int = 1000                 # first n images of the validation split
    criterion: str = "clean+robust"   # clean+robust | robust | clean | last
    attack_steps: int = 20            # PGD-k on the validation subset
    every: int = 1                    # validate every n epochs (and always at the last)


@dataclass(frozen=True)
class TrainConfig:
    trainer: str = "pgd_at"
    epochs: int = 12
    batch_size: int = 128
    seed: int = 0
    learners: tuple[LearnerConfig, ...] = (LearnerConfig(),)
    merge: MergeConfig | None = None  # set for Generalist
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    amp: str = "off"                  # off | bf16 | fp16 (fp16 on CUDA only)
    channels_last: bool = False
    num_threads: int | None = None    # torch.set_num_threads; None keeps torch's default
    device: str = "auto"


@dataclass(frozen=True)
class Config:
    name: str = "custom"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    threat: ThreatModel = field(default_factory=ThreatModel)
    train: TrainConfig = field(default_factory=TrainConfig)
    description: str = ""

    def validate(self) -> Config:
        validate(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def with_overrides(self, overrides: Sequence[str] | Mapping[str, Any]) -> Config:
        return apply_overrides(self, overrides)


# -------------------------------------------------------------------------------------------- validation
def _choice(kind: str, value: str, valid: Sequence[str]) -> None:
    if value not in valid:
        raise UnknownNameError(kind, value, valid)


def validate(cfg: Config) -> None:
    from .data import get_dataset_info
    from .models import list_models
    from .trainers.registry import OBJECTIVES, trainable

    get_dataset_info(cfg.data.dataset)
    _choice("architecture", cfg.model.arch, list_models())
    _choice("norm", cfg.threat.norm, NORMS)
    if not (0.0 <= cfg.threat.eps <= 1.0) or math.isnan(cfg.threat.eps):
        raise ConfigError(f"threat.eps must be in [0, 1] (pixel units), got {cfg.threat.eps}")
    t = cfg.train
    _choice("trainer", t.trainer, trainable())
    _choice("amp mode", t.amp, AMP_MODES)
    for name, v in (("epochs", t.epochs), ("batch_size", t.batch_size)):
        if v < 1:
            raise ConfigError(f"train.{name} must be ≥ 1, got {v}")
    if cfg.data.val_size < 0:
        raise ConfigError(f"data.val_size must be ≥ 0, got {cfg.data.val_size}")
    if not t.learners:
        raise ConfigError("train.learners is empty")
    names = [ln.name for ln in t.learners]
    if len(set(names)) != len(names):
        raise ConfigError(f"learner names must be unique, got {names}")
    for ln in t.learners:
        _choice("objective", ln.objective, OBJECTIVES.names())
        _choice("augmentation", ln.augment, AUGMENTS)
        a = ln.attack
        _choice("norm", a.norm or cfg.threat.norm, NORMS)
        _choice("BatchNorm mode", a.bn_mode, BN_MODES)
        eps = cfg.threat.eps if a.eps is None else a.eps
        if not 0.0 <= eps <= (1.0 if (a.norm or cfg.threat.norm) == "Linf" else 100.0):
            raise ConfigError(f"learner {ln.name!r}: attack eps must be in [0, 1] for Linf and [0, 100] for L2 "
                              f"(pixel units), got {eps}")
        if a.steps < 0 or a.step_size < 0:
            raise ConfigError(f"learner {ln.name!r}: attack steps and step_size must be ≥ 0")
        if ln.optim.lr <= 0 or ln.optim.weight_decay < 0:
            raise ConfigError(f"learner {ln.name!r}: lr must be > 0 and weight_decay ≥ 0")
        if ln.optim.name not in ("sgd", "adam"):
            raise UnknownNameError("optimizer", ln.optim.name, ("sgd", "adam"))
        if ln.lr_from is not None and ln.lr_from not in names:
            raise ConfigError(f"learner {ln.name!r}: lr_from {ln.lr_from!r} is not a learner ({names})")
        for sched in (ln.optim.lr_schedule, ln.mix_schedule):
            ts = [p[0] for p in sched]
            if not sched or ts != sorted(ts):
                raise ConfigError(f"learner {ln.name!r}: schedule points must be sorted by t: {sched}")
    if t.trainer == "generalist":
        if t.merge is None or len(t.learners) < 2:
            raise ConfigError("trainer 'generalist' needs train.merge and at least 2 learners")
        m = t.merge
        _choice("EMA mode", m.ema_mode, EMA_MODES)
        _choice("redistribution mode", m.redistribute, REDISTRIBUTE_MODES)
        if not 0.0 <= m.ema_decay < 1.0:
            raise ConfigError(f"merge.ema_decay must be in [0, 1), got {m.ema_decay}")
        if m.warmup_epochs < 0 or m.redistribute_every < 1:
            raise ConfigError("merge.warmup_epochs must be ≥ 0 and merge.redistribute_every ≥ 1")
        for e in range(1, t.epochs + 1):
            w = [interp_schedule(ln.mix_schedule, e / t.epochs) for ln in t.learners]
            if min(w) < 0 or sum(w) <= 0:
                raise ConfigError(f"mixing weights must be ≥ 0 with a positive sum (epoch {e}: {w})")
    elif len(t.learners) != 1 or t.merge is not None:
        raise ConfigError(f"trainer {t.trainer!r} takes exactly one learner and no merge section")
    elif t.learners[0].objective != t.trainer:
        raise ConfigError(f"trainer {t.trainer!r} needs a learner with objective {t.trainer!r}")
    s = t.selection
    _choice("selection criterion", s.criterion, CRITERIA)
    if s.n_val < 1 or s.attack_steps < 0 or s.every < 1:
        raise ConfigError("selection.n_val and selection.every must be ≥ 1, attack_steps ≥ 0")
    if s.n_val > cfg.data.val_size and s.criterion != "last":
        raise ConfigError(f"selection.n_val ({s.n_val}) exceeds data.val_size ({cfg.data.val_size})")


# ------------------------------------------------------------------------------------ dict round trip
def to_dict(obj: Any) -> Any:
    return typed.to_dict(obj)


def _hints(cls) -> dict[str, Any]:
    return typed.hints(cls)


def _config_error(e: Exception) -> ConfigError:
    if isinstance(e, typed.UnknownKeys):
        return ConfigError(f"unknown config key(s) {', '.join(e.unknown)}; valid keys here: {', '.join(e.valid)}")
    return ConfigError(str(e))


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """``value`` as ``tp`` from a config file or an override (strings parsed: see ``utils.typed``)."""
    try:
        return typed.coerce(tp, value, where)
    except (typed.TypeMismatch, typed.UnknownKeys) as e:
        raise _config_error(e) from None


def from_dict(cls, data: Mapping[str, Any], where: str = ""):
    """Build dataclass ``cls`` from a mapping; unknown keys are errors (typos must not pass silently)."""
    try:
        return typed.from_dict(cls, data, where)
    except (typed.TypeMismatch, typed.UnknownKeys) as e:
        raise _config_error(e) from None


def merge_dict(cfg: Any, data: Mapping[str, Any], where: str = "") -> Any:
    """Deep-merge ``data`` over dataclass ``cfg`` (partial sections keep the other fields)."""
    hints = _hints(type(cfg))
    names = {f.name for f in fields(cfg)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(sorted(where + k for k in unknown))}; "
                          f"valid keys here: {', '.join(sorted(names))}")
    changes = {}
    for k, v in data.items():
        cur = getattr(cfg, k)
        if is_dataclass(cur) and isinstance(v, Mapping):
            changes[k] = merge_dict(cur, v, f"{where}{k}.")
        else:
            changes[k] = _coerce(hints[k], v, f"{where}{k}")
    return replace(cfg, **changes)


# ------------------------------------------------------------------------------------------ overrides
def _parse_value(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


class _Text(str):
    """An override's value as typed on the command line, parsed only once the target field's type is known."""


def _parse_text(tp: Any, text: str) -> Any:
    """Command-line text → value for a field of type ``tp``. String fields take the text verbatim (YAML would
    turn ``train.amp=off`` into False and ``name=1`` into 1); null/none clears an optional field."""
    if type(None) in typing.get_args(tp) and text.strip().lower() in ("null", "none", "~"):
        return None
    if _non_none(tp) is str:
        return str(text)
    return _parse_value(text)


def _set_path(obj: Any, parts: list[str], value: Any, where: str) -> Any:
    head, rest = parts[0], parts[1:]
    if isinstance(obj, tuple):
        if not head.lstrip("-").isdigit() or not -len(obj) <= int(head) < len(obj):
            raise ConfigError(f"{where}: index {head!r} out of range for a list of {len(obj)}")
        i = int(head) % len(obj)
        items = list(obj)
        if rest:
            items[i] = _set_path(items[i], rest, value, f"{where}.{head}")
        else:
            items[i] = _parse_value(value) if isinstance(value, _Text) else value
        return tuple(items)
    if not is_dataclass(obj):
        raise ConfigError(f"{where}: cannot set {head!r} inside a {type(obj).__name__}")
    names = [f.name for f in fields(obj)]
    if head not in names:
        raise ConfigError(f"unknown config key {where + '.' if where else ''}{head}; valid keys: {', '.join(names)}")
    tp = _hints(type(obj))[head]
    full = f"{where}.{head}" if where else head
    if rest:
        cur = getattr(obj, head)
        if cur is None and is_dataclass(_non_none(tp)):
            cur = _non_none(tp)()
        new = _set_path(cur, rest, value, full)
        # re-coerce elements of tuples of dataclasses
        return replace(obj, **{head: _coerce(tp, to_dict(new) if is_dataclass(new) else new, full)
                               if not isinstance(new, tuple) else new})
    if isinstance(value, _Text):
        value = _parse_text(tp, value)
    if isinstance(value, Mapping) and is_dataclass(getattr(obj, head)):
        return replace(obj, **{head: merge_dict(getattr(obj, head), value, full + ".")})
    return replace(obj, **{head: _coerce(tp, value, full)})


def _non_none(tp):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def apply_overrides(cfg: Config, overrides: Sequence[str] | Mapping[str, Any]) -> Config:
    """``["train.epochs=3", "train.learners.0.optim.lr=0.05"]`` or ``{"train.epochs": 3}``."""
    items = overrides.items() if isinstance(overrides, Mapping) else [_split_override(o) for o in overrides]
    for key, value in items:
        cfg = _set_path(cfg, key.split("."), _Text(value) if isinstance(value, str) else value, "")
    return cfg


def _split_override(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. train.epochs=3)")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


# ------------------------------------------------------------------------------------------ files
CONFIG_SUFFIXES = (".toml", ".yaml", ".yml", ".json")  # .json: the resolved config.json saved beside outputs


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    if path.suffix not in CONFIG_SUFFIXES:
        raise ConfigError(f"config file {path}: use .toml, .yaml/.yml or .json")
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as e:  # tomllib.TOMLDecodeError, yaml.YAMLError
        raise ConfigError(f"config file {path} cannot be parsed: {e}") from e
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path}: top level must be a table/mapping")
    return dict(data)


def save_config(cfg: Config, path: str | Path) -> Path:
    from .utils.io import atomic_write_json

    return atomic_write_json(path, cfg.to_dict())


def config_from_dict(data: Mapping[str, Any]) -> Config:
    return from_dict(Config, data)


def same_run(a: Config, b: Config) -> bool:
    """``a`` and ``b`` describe the same training run: equal up to ``train.num_threads``, which sets how fast a run
    trains on a CPU, not what it trains. A run started on one thread resumes or reopens on two, and back."""
    def key(c: Config) -> Config:
        return replace(c, train=replace(c.train, num_threads=None))
    return key(a) == key(b)



__all__ = [name for name in dir() if not name.startswith("_") and name not in ("annotations",)]
