"""Named presets. Every constant of a recipe is a config field; these functions only fill them in.

Fashion-MNIST presets (``fmnist-smallcnn-*``) share one budget (``FMNIST_BUDGET``): the whole training split less
the 5,000 validation images (55,000 images), ``FMNIST_EPOCHS`` (30) epochs, batch 128, Linf eps 0.1, PGD-10 with
step 0.025 (eps/4, the CIFAR ratio 2/255 : 8/255) as the training attack, bf16 autocast + channels_last, the epoch
chosen on the first 1,000 validation images (clean + PGD-20; clean alone for standard training). Their optimisers
and method knobs are the winners of the validation-only tuning in ``docs/tuning/fashion_mnist_Linf_0.1.md``
(``python -m generalist_bench.tuning``, on 20,000 of the training images); ``tests/test_tuning.py`` checks that each
preset is its method's winning trial with the whole training split instead.

CIFAR-10 presets are the paper's GPU recipes (120 epochs, batch 128, crop+flip, eps 8/255, PGD-10 step
2/255; lr 0.01 until 1/3, linearly to 0.001 at 2/3 and 0.0001 at the end). The PGD-AT and TRADES
baselines use the adversarial learner's optimiser so that Generalist differs from PGD-AT only by the
natural learner and the merge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .config import (
    CONFIG_SUFFIXES,
    AttackConfig,
    Config,
    DataConfig,
    LearnerConfig,
    MergeConfig,
    ModelConfig,
    OptimConfig,
    SelectionConfig,
    ThreatModel,
    TrainConfig,
    apply_overrides,
    merge_dict,
    read_config_file,
)
from .registry import Registry

# ------------------------------------------------------------------------------------------ the registry
PRESETS: Registry[Callable[[], Config]] = Registry("preset")  # name → a function returning its Config
DEFAULT_PRESET = "fmnist-smallcnn-generalist"


TUNING_LOGS: dict[str, str] = {}  # preset name → the tuning log (repository path) its hyperparameters come from


def register_preset(name: str, *, tuning_log: str | None = None):
    """Register a function returning a Config under ``name``; ``tuning_log``: the committed log of the tuning
    that chose its hyperparameters (cards of models trained with exactly this recipe link it)."""
    def deco(fn: Callable[[], Config]) -> Callable[[], Config]:
        if name in PRESETS.names(fill=False):
            raise ValueError(f"preset {name!r} already registered")
        if tuning_log is not None:
            TUNING_LOGS[name] = tuning_log
        return PRESETS.register(name, fn)
    return deco


# fields that change how fast or where a run trains, not what it trains
_NOT_RECIPE = {"train.seed": 0, "train.num_threads": None, "train.device": "auto"}


def is_preset_recipe(cfg: Config) -> bool:
    """``cfg`` is the registered preset of its name, up to seed, thread count and device."""
    if cfg.name not in PRESETS.names():
        return False
    return apply_overrides(cfg, _NOT_RECIPE) == apply_overrides(get_preset(cfg.name), _NOT_RECIPE)


def tuning_log_for(cfg: Config) -> str | None:
    """The tuning log of ``cfg``'s preset if ``cfg`` is that preset's recipe (any seed, thread count or device);
    None for anything else, e.g. a preset with overridden hyperparameters."""
    log = TUNING_LOGS.get(cfg.name)
    return log if log is not None and is_preset_recipe(cfg) else None


def list_presets() -> list[str]:
    return PRESETS.names()


def get_preset(name: str) -> Config:
    return PRESETS.get(name)()


def merge_file(cfg: Config, path: str | Path) -> Config:
    """Merge a TOML/YAML file over ``cfg``; a top-level ``preset = "NAME"`` replaces ``cfg`` by that preset."""
    data = read_config_file(path)
    if "preset" in data:
        cfg = get_preset(data.pop("preset"))
    return merge_dict(cfg, data)


def load_config_file(path: str | Path) -> Config:
    """A TOML or YAML file. ``preset = "NAME"`` at the top starts from that preset; other keys override."""
    return merge_file(Config(), path).validate()


def resolve_config(preset_or_config: str | Config | Path | None = None, overrides=None,
                   config_file: str | Path | None = None) -> Config:
    """preset defaults → file → overrides, validated. A str ending in .toml/.yaml/.yml/.json is read as a file."""
    if isinstance(preset_or_config, Config):
        cfg = preset_or_config
    elif isinstance(preset_or_config, Path) or (isinstance(preset_or_config, str)
                                                and Path(preset_or_config).suffix in CONFIG_SUFFIXES):
        cfg = merge_file(Config(), preset_or_config)
    else:
        cfg = get_preset(preset_or_config or DEFAULT_PRESET)
    if config_file:
        cfg = merge_file(cfg, config_file)
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    return cfg.validate()


# ------------------------------------------------------------------------------------------ the presets

PAPER_LR = ((0.0, 1.0), (1 / 3, 1.0), (2 / 3, 0.1), (1.0, 0.01))
GAMMA_ADV = ((0.0, 1.0), (2 / 3, 1.0), (1.0, 0.4))   # γ_adv(t): 1 until 2/3, linear to 0.4 at the end
GAMMA_NAT = ((0.0, 0.0), (2 / 3, 0.0), (1.0, 0.6))   # 1 − γ_adv(t)


def _generalist(adv: LearnerConfig, nat_optim: OptimConfig, merge: MergeConfig, augment: str) -> tuple:
    natural = LearnerConfig(name="natural", objective="standard", optim=nat_optim, augment=augment,
                            mix_schedule=GAMMA_NAT, lr_from="adversarial")
    return natural, replace(adv, name="adversarial", mix_schedule=GAMMA_ADV)


# ------------------------------------------------------------------------------------- Fashion-MNIST
FMNIST_TUNING_LOG = "docs/tuning/fashion_mnist_Linf_0.1.md"
FMNIST_EPOCHS = 30  # the budget every fmnist-smallcnn-* preset shares (README, "Configs and presets"; why: the budget
# ladder, docs/tuning/fashion_mnist_Linf_0.1_budget.md)
FMNIST_BUDGET = {"data.train_subset": None, "train.epochs": FMNIST_EPOCHS, "train.batch_size": 128,
                 "train.amp": "bf16", "train.channels_last": True}
# tuning winners (validation split only): lr 0.05 with the step schedule for standard training and PGD-AT alike
FMNIST_OPTIM = OptimConfig(lr=0.05, momentum=0.9, weight_decay=5e-4, lr_schedule=PAPER_LR)
FMNIST_ATTACK = AttackConfig(steps=10, step_size=0.025, random_start=True, bn_mode="eval")
FMNIST_TRADES_BETA = 1.0      # TRADES: lr 0.05, β 1 (β 6 lost 7-8 clean points for ≤ 2 PGD-20 points at every lr)
FMNIST_GAMMA_END = 0.4        # Generalist: the natural learner's final mixing weight γ_nat (γ_adv = 1 − γ_nat)


def _fmnist(trainer: str, learners, merge=None, criterion: str = "clean+robust") -> Config:
    cfg = Config(
        name=f"fmnist-smallcnn-{trainer}",
        description=f"{trainer} on Fashion-MNIST, SmallCNN, Linf eps 0.1, {FMNIST_EPOCHS} epochs on 55,000 images "
                    "(CPU budget, tuned on the validation split)",
        data=DataConfig(dataset="fashion_mnist", val_size=5000),
        model=ModelConfig(arch="small_cnn"),
        threat=ThreatModel(norm="Linf", eps=0.1),
        train=TrainConfig(trainer=trainer, learners=tuple(learners), merge=merge, seed=0,
                          selection=SelectionConfig(n_val=1000, criterion=criterion, attack_steps=20)),
    )
    return apply_overrides(cfg, FMNIST_BUDGET)


def _fmnist_learner(objective: str, **kw) -> LearnerConfig:
    return LearnerConfig(name=objective, objective=objective, optim=FMNIST_OPTIM, attack=FMNIST_ATTACK, **kw)


# Standard training is selected on clean accuracy: its PGD-20 accuracy is ~0 once trained, so clean + PGD-20
# would select an under-trained first epoch.
@register_preset("fmnist-smallcnn-standard", tuning_log=FMNIST_TUNING_LOG)
def fmnist_standard() -> Config:
    return _fmnist("standard", [_fmnist_learner("standard")], criterion="clean")


@register_preset("fmnist-smallcnn-pgd_at", tuning_log=FMNIST_TUNING_LOG)
def fmnist_pgd_at() -> Config:
    return _fmnist("pgd_at", [_fmnist_learner("pgd_at")])


@register_preset("fmnist-smallcnn-trades", tuning_log=FMNIST_TUNING_LOG)
def fmnist_trades() -> Config:
    return _fmnist("trades", [_fmnist_learner("trades", trades_beta=FMNIST_TRADES_BETA)])


# Redistribution at the ends of epochs t′+c, t′+2c, …: the reference's first redistribution is in epoch 75 of
# 120 (0.625·E), before the natural learner's mixing weight leaves 0 at 2/3 of training. Here t′ = 0.5·E and
# c = 0.1·E (the tuning's fractions): at E = 30, t′ = 15 and c = 3 → ends of epochs 18, 21, …, 30; mixing starts after
# epoch 20. (Mixing a natural learner that was never redistributed, i.e. trained apart from the start, averages two
# unrelated networks.)
FMNIST_MERGE_FRACTIONS = (0.5, 0.1)  # t′ and c as fractions of training: the tuning winner's


def fmnist_merge_epochs(epochs: int) -> tuple[int, int]:
    """Generalist's (t′, c) in epochs at a budget of ``epochs``: the tuned fractions of training, c at least 1 (the
    budget probes stretch the preset with the same rule)."""
    warmup, every = FMNIST_MERGE_FRACTIONS
    return round(warmup * epochs), max(1, round(every * epochs))


FMNIST_MERGE = MergeConfig(ema_decay=0.999, ema_mode="per_learner", redistribute="epoch",
                           warmup_epochs=fmnist_merge_epochs(FMNIST_EPOCHS)[0],
                           redistribute_every=fmnist_merge_epochs(FMNIST_EPOCHS)[1])


def _fmnist_generalist(merge: MergeConfig, lr_from: str | None) -> tuple:
    """The natural learner with standard training's tuned optimiser and schedule (its own: ``lr_from`` None), the
    adversarial learner with PGD-AT's."""
    natural = LearnerConfig(name="natural", objective="standard", optim=FMNIST_OPTIM, attack=FMNIST_ATTACK,
                            mix_schedule=((0.0, 0.0), (2 / 3, 0.0), (1.0, FMNIST_GAMMA_END)), lr_from=lr_from)
    adversarial = replace(_fmnist_learner("pgd_at"), name="adversarial",
                          mix_schedule=((0.0, 1.0), (2 / 3, 1.0), (1.0, 1.0 - FMNIST_GAMMA_END)))
    return natural, adversarial


@register_preset("fmnist-smallcnn-generalist", tuning_log=FMNIST_TUNING_LOG)
def fmnist_generalist() -> Config:
    return _fmnist("generalist", _fmnist_generalist(FMNIST_MERGE, lr_from=None), FMNIST_MERGE)


@register_preset("fmnist-smallcnn-generalist-reference")
def fmnist_generalist_reference() -> Config:
    """The published code's behaviour: the natural learner's lr overwritten by the adversarial learner's, and
    redistribution at every iteration of epochs ≥ 0.625·E that are multiples of E/24 (75 and 5 at E = 120)."""
    merge = replace(FMNIST_MERGE, redistribute="reference")
    cfg = _fmnist("generalist", _fmnist_generalist(merge, lr_from="adversarial"), merge)
    return replace(cfg, name="fmnist-smallcnn-generalist-reference")


# ------------------------------------------------------------------------------------------- CIFAR-10
CIFAR_ATTACK = AttackConfig(steps=10, step_size=2 / 255, random_start=True, bn_mode="eval")
# t′ = 70, c = 5 → ends of epochs 75, 80, …, 120: the reference's redistribution epochs, at their boundaries.
CIFAR_MERGE = MergeConfig(ema_decay=0.999, ema_mode="per_learner", redistribute="epoch", warmup_epochs=70,
                          redistribute_every=5)
NAT_OPTIM = OptimConfig(lr=0.01, momentum=0.9, weight_decay=5e-4, lr_schedule=PAPER_LR)


def _cifar(arch: str, short: str, trainer: str, adv_wd: float, merge_mode: str = "epoch") -> Config:
    adv_optim = OptimConfig(lr=0.01, momentum=0.9, weight_decay=adv_wd, lr_schedule=PAPER_LR)
    base = LearnerConfig(name=trainer, objective="pgd_at" if trainer == "generalist" else trainer,
                         optim=adv_optim, attack=CIFAR_ATTACK, augment="crop_flip")
    merge = replace(CIFAR_MERGE, redistribute=merge_mode) if trainer == "generalist" else None
    learners = _generalist(base, NAT_OPTIM, merge, "crop_flip") if trainer == "generalist" else (base,)
    suffix = "-reference" if merge_mode == "reference" else ""
    return Config(
        name=f"cifar10-{short}-{trainer}{suffix}",
        description=f"the Generalist paper's {arch} recipe (GPU budget: 120 epochs) for {trainer}"
        + ("; note: the reference code's WRN-32-10 branch uses lr 0.1 → 0.01 → 0.005 (not this schedule)"
           if arch.startswith("wrn") else ""),
        data=DataConfig(dataset="cifar10", val_size=5000),
        model=ModelConfig(arch=arch),
        threat=ThreatModel(norm="Linf", eps=8 / 255),
        train=TrainConfig(trainer=trainer, epochs=120, batch_size=128, seed=0, learners=learners, merge=merge,
                          selection=SelectionConfig(n_val=1000, criterion="clean+robust", attack_steps=20)),
    )


for _arch, _short, _wd in (("resnet18", "resnet18", 3.5e-3), ("wrn34_10", "wrn34", 7e-4)):
    for _trainer in ("standard", "pgd_at", "trades", "generalist"):
        register_preset(f"cifar10-{_short}-{_trainer}")(
            lambda a=_arch, s=_short, t=_trainer, w=_wd: _cifar(a, s, t, 5e-4 if t == "standard" else w))
    register_preset(f"cifar10-{_short}-generalist-reference")(
        lambda a=_arch, s=_short, w=_wd: _cifar(a, s, "generalist", w, "reference"))
