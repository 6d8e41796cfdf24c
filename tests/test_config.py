"""Config: presets round-trip, ``key=value`` overrides, TOML/YAML files, validation, schedules."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError

import pytest

from generalist_bench.config import Config, apply_overrides, config_from_dict, interp_schedule, same_run, save_config
from generalist_bench.errors import ConfigError, UnknownNameError
from generalist_bench.presets import (
    FMNIST_EPOCHS,
    GAMMA_ADV,
    GAMMA_NAT,
    PAPER_LR,
    get_preset,
    list_presets,
    load_config_file,
    resolve_config,
)

BASE = "fmnist-smallcnn-pgd_at"


# ------------------------------------------------------------------------------------------- presets
@pytest.mark.parametrize("name", list_presets())
def test_preset_round_trips(name, tmp_path):
    cfg = get_preset(name)
    assert cfg.validate() is cfg and cfg.name == name
    assert config_from_dict(cfg.to_dict()) == cfg
    assert config_from_dict(json.loads(cfg.to_json())) == cfg
    # the saved config.json is a valid config file of its own
    path = save_config(cfg, tmp_path / "config.json")
    assert resolve_config(str(path)) == cfg and resolve_config(path) == cfg and load_config_file(path) == cfg


def test_presets_exist_and_unknown_preset_lists_them():
    names = list_presets()
    assert {"fmnist-smallcnn-standard", "fmnist-smallcnn-pgd_at", "fmnist-smallcnn-trades",
            "fmnist-smallcnn-generalist"} <= set(names)
    with pytest.raises(UnknownNameError) as e:
        get_preset("nope")
    assert all(n in str(e.value) for n in names)
    assert resolve_config() == get_preset("fmnist-smallcnn-generalist")  # the default preset


def test_config_is_frozen():
    cfg = get_preset(BASE)
    with pytest.raises(FrozenInstanceError):
        cfg.train.epochs = 3


# ----------------------------------------------------------------------------------------- overrides
def test_overrides_dotted_keys_indices_fractions_bools():
    base = get_preset(BASE)
    cfg = apply_overrides(base, ["train.epochs=3", "train.learners.0.optim.lr=0.1", "threat.eps=8/255",
                                 "train.learners.0.attack.step_size=2/255", "train.channels_last=false",
                                 "train.learners.0.attack.random_start=false", "data.train_subset=1000"])
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.train.learners[0].optim.lr == 0.1
    assert cfg.threat.eps == pytest.approx(8 / 255) and cfg.train.learners[0].attack.step_size == pytest.approx(2 / 255)
    assert cfg.train.learners[0].attack.random_start is False and cfg.train.channels_last is False
    assert cfg.data.train_subset == 1000
    # everything else is unchanged, and so is the original
    assert cfg.train.learners[0].optim.momentum == base.train.learners[0].optim.momentum
    assert base.train.epochs == FMNIST_EPOCHS and base.threat.eps == 0.1 and base.train.channels_last is True
    assert cfg.validate() is cfg


def test_overrides_on_generalist_learners():
    base = get_preset("fmnist-smallcnn-generalist")
    cfg = apply_overrides(base, ["train.learners.1.optim.lr=0.02", "train.learners.-1.trades_beta=3",
                                 "train.merge.ema_decay=0.99", "train.learners.0.optim.lr_schedule=[[0, 1], [1, 0.5]]"])
    assert [ln.optim.lr for ln in cfg.train.learners] == [base.train.learners[0].optim.lr, 0.02]
    assert cfg.train.learners[1].trades_beta == 3.0 and cfg.train.merge.ema_decay == 0.99
    assert cfg.train.learners[0].optim.lr_schedule == ((0.0, 1.0), (1.0, 0.5))
    # a mapping of overrides works too, with typed or textual values
    assert apply_overrides(base, {"train.epochs": 5, "threat.eps": "0.2"}).threat.eps == 0.2
    assert base.with_overrides(["train.seed=7"]).train.seed == 7


def test_overrides_of_string_fields_keep_the_text():
    """Regression: override values went through YAML first, so ``train.amp=off`` became False (then 'expected a
    string') and ``name=1`` became 1 — valid settings that could not be given on the command line."""
    cfg = apply_overrides(get_preset(BASE), ["train.amp=off", "train.learners.0.name=1", "data.data_dir=/data/x",
                                             "train.learners.0.lr_from=null", "train.num_threads=none"])
    assert cfg.train.amp == "off" and cfg.train.learners[0].name == "1" and cfg.data.data_dir == "/data/x"
    assert cfg.train.learners[0].lr_from is None and cfg.train.num_threads is None
    assert apply_overrides(cfg, ["data.data_dir=None"]).data.data_dir is None
    assert apply_overrides(cfg, ["train.amp=bf16"]).validate().train.amp == "bf16"


@pytest.mark.parametrize("override, key", [
    ("train.epoch=3", "train.epoch"),
    ("train.learners.0.optim.lrr=0.1", "train.learners.0.optim.lrr"),
    ("trian.epochs=3", "trian"),
    ("threat.eps.x=3", "threat.eps"),
])
def test_unknown_keys_are_named(override, key):
    with pytest.raises(ConfigError) as e:
        apply_overrides(get_preset(BASE), [override])
    assert key in str(e.value)


def test_bad_override_syntax_and_indices():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(get_preset(BASE), ["train.epochs"])
    with pytest.raises(ConfigError, match="out of range"):
        apply_overrides(get_preset(BASE), ["train.learners.3.optim.lr=0.1"])
    with pytest.raises(ConfigError, match="out of range"):
        apply_overrides(get_preset(BASE), ["train.learners.x.optim.lr=0.1"])


@pytest.mark.parametrize("override", [
    "train.epochs=abc", "train.epochs=2.5", "train.epochs=true", "threat.eps=abc", "threat.eps=1/0",
    "train.channels_last=maybe", "train.learners=5", "train.learners.0.optim=3", "train.merge=7",
    "train.learners.0.optim.lr_schedule=[[0, 1, 2]]",
])
def test_ill_typed_values(override):
    with pytest.raises(ConfigError) as e:
        apply_overrides(get_preset(BASE), [override])
    assert override.split("=")[0].split(".")[-1] in str(e.value)


# ---------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("override, match", [
    ("threat.eps=1.5", "threat.eps must be in"),
    ("threat.eps=-0.1", "threat.eps must be in"),
    ("threat.eps=nan", "threat.eps must be in"),
    ("train.learners.0.attack.eps=2", "attack eps"),
    ("train.learners.0.attack.steps=-1", "steps"),
    ("train.learners.0.attack.step_size=-0.1", "step_size"),
    ("train.epochs=0", "train.epochs"),
    ("train.batch_size=-5", "train.batch_size"),
    ("train.learners.0.optim.lr=0", "lr"),
    ("train.learners.0.optim.lr_schedule=[[1, 1], [0, 1]]", "sorted"),
    ("data.val_size=-1", "val_size"),
    ("train.selection.n_val=6000", "n_val"),
    ("train.learners.0.objective=trades", "needs a learner with objective"),
])
def test_invalid_values(override, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config(BASE, [override])


@pytest.mark.parametrize("override, valid", [
    ("train.trainer=nope", ("standard", "pgd_at", "trades", "generalist")),
    ("train.learners.0.objective=nope", ("standard", "pgd_at", "trades")),
    ("model.arch=nope", ("small_cnn", "resnet18", "wrn34_10")),
    ("data.dataset=nope", ("fashion_mnist", "cifar10", "svhn")),
    ("threat.norm=L1", ("Linf", "L2")),
    ("train.learners.0.attack.bn_mode=nope", ("eval", "train")),
    ("train.amp=fp8", ("off", "bf16", "fp16")),
    ("train.learners.0.optim.name=rmsprop", ("sgd", "adam")),
])
def test_unknown_names_list_valid_ones(override, valid):
    with pytest.raises(UnknownNameError) as e:
        resolve_config(BASE, [override])
    assert "'nope'" in str(e.value) or override.split("=")[1] in str(e.value)
    for name in valid:
        assert name in str(e.value)


def test_generalist_needs_merge_and_two_learners():
    with pytest.raises(ConfigError, match="at least 2 learners"):
        resolve_config(BASE, ["train.trainer=generalist"])
    with pytest.raises(ConfigError, match="mixing weights"):
        resolve_config("fmnist-smallcnn-generalist", ["train.learners.0.mix_schedule=[[0, -1], [1, -1]]"])


# --------------------------------------------------------------------------------------------- files
def test_toml_file_with_preset_and_partial_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('preset = "fmnist-smallcnn-trades"\nname = "my-trades"\n\n[train]\nepochs = 3\n\n'
                    '[train.selection]\nn_val = 200\n\n[threat]\neps = "8/255"\n')
    cfg = load_config_file(path)
    base = get_preset("fmnist-smallcnn-trades")
    assert cfg.name == "my-trades" and cfg.train.epochs == 3 and cfg.train.selection.n_val == 200
    assert cfg.threat.eps == pytest.approx(8 / 255)
    assert cfg.train.trainer == "trades" and cfg.train.learners == base.train.learners  # kept from the preset
    assert cfg.train.selection.attack_steps == base.train.selection.attack_steps  # partial section merged
    assert resolve_config(str(path)) == cfg and resolve_config(path) == cfg
    # preset → file → overrides
    assert resolve_config(BASE, ["train.epochs=5"], config_file=path).train.epochs == 5
    assert resolve_config(BASE, config_file=path).train.trainer == "trades"


def test_yaml_file_with_preset_and_partial_overrides(tmp_path):
    for suffix in (".yaml", ".yml"):
        path = tmp_path / f"run{suffix}"
        path.write_text("preset: fmnist-smallcnn-generalist\ntrain:\n  epochs: 6\n  merge:\n    warmup_epochs: 4\n"
                        "  amp: 'off'\ndata:\n  val_size: 2000\n")
        cfg = load_config_file(path)
        assert cfg.train.trainer == "generalist" and cfg.train.epochs == 6 and cfg.data.val_size == 2000
        preset_merge = get_preset("fmnist-smallcnn-generalist").train.merge
        assert cfg.train.merge.warmup_epochs == 4  # the file's; the rest of the section is the preset's
        assert cfg.train.merge.redistribute_every == preset_merge.redistribute_every != 4
        assert resolve_config(str(path)) == cfg


def test_file_without_preset_starts_from_defaults(tmp_path):
    path = tmp_path / "plain.toml"
    path.write_text('[train]\ntrainer = "standard"\n\n[[train.learners]]\nname = "std"\nobjective = "standard"\n')
    cfg = load_config_file(path)
    assert cfg.train.trainer == "standard" and cfg.train.learners[0].name == "std"
    assert cfg.model == Config().model and cfg.train.epochs == Config().train.epochs


def test_generalist_with_three_learners_from_toml_alone(tmp_path):
    path = tmp_path / "generalist3.toml"
    path.write_text('''
name = "generalist-3"
[data]
dataset = "fashion_mnist"
[model]
arch = "small_cnn"
[threat]
norm = "Linf"
eps = 0.1
[train]
trainer = "generalist"
epochs = 6
[train.merge]
ema_decay = 0.999
warmup_epochs = 4
redistribute_every = 1

[[train.learners]]
name = "natural"
objective = "standard"
mix_schedule = [[0.0, 0.0], [0.5, 0.0], [1.0, 0.4]]
lr_from = "linf"

[[train.learners]]
name = "linf"
objective = "pgd_at"
[train.learners.optim]
lr = 0.05
[train.learners.attack]
steps = 10
step_size = 0.025

[[train.learners]]
name = "l2"
objective = "pgd_at"
mix_schedule = [[0.0, 0.5], [1.0, 0.3]]
[train.learners.attack]
norm = "L2"
eps = 1.5
steps = 10
step_size = 0.375
''')
    cfg = load_config_file(path)
    natural, linf, l2 = cfg.train.learners
    assert [ln.name for ln in cfg.train.learners] == ["natural", "linf", "l2"]
    assert natural.objective == "standard" and natural.lr_from == "linf"
    assert linf.optim.lr == 0.05 and linf.attack.norm is None and linf.attack.eps is None  # the threat model's
    assert l2.attack.norm == "L2" and l2.attack.eps == 1.5 and l2.attack.step_size == 0.375
    assert l2.optim == linf.optim.__class__()  # defaults where the file says nothing
    assert cfg.train.merge.warmup_epochs == 4 and cfg.train.merge.ema_mode == "per_learner"
    assert config_from_dict(cfg.to_dict()) == cfg and resolve_config(str(path)) == cfg
    # the same file with a bad L2 eps or a dangling lr_from is rejected
    with pytest.raises(ConfigError, match="attack eps"):
        resolve_config(path, ["train.learners.2.attack.eps=500"])
    with pytest.raises(ConfigError, match="lr_from"):
        resolve_config(path, ["train.learners.0.lr_from=nope"])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "missing.toml")
    (tmp_path / "a.ini").write_text("[x]\n")
    with pytest.raises(ConfigError, match=".toml"):
        load_config_file(tmp_path / "a.ini")
    (tmp_path / "broken.toml").write_text("train = [\n")
    with pytest.raises(ConfigError, match="cannot be parsed"):
        load_config_file(tmp_path / "broken.toml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level"):
        load_config_file(tmp_path / "list.yaml")
    (tmp_path / "typo.toml").write_text('preset = "fmnist-smallcnn-pgd_at"\n[train]\nepoch = 3\n')
    with pytest.raises(ConfigError, match="train.epoch"):
        load_config_file(tmp_path / "typo.toml")
    (tmp_path / "badpreset.yaml").write_text("preset: nope\n")
    with pytest.raises(UnknownNameError, match="fmnist-smallcnn-generalist"):
        load_config_file(tmp_path / "badpreset.yaml")
    (tmp_path / "eps.yaml").write_text("threat:\n  eps: 2\n")
    with pytest.raises(ConfigError, match="threat.eps"):
        load_config_file(tmp_path / "eps.yaml")


# ----------------------------------------------------------------------------------------- schedules
def test_gamma_schedules():
    for t in (0.0, 0.25, 0.5, 2 / 3):
        assert interp_schedule(GAMMA_ADV, t) == 1.0 and interp_schedule(GAMMA_NAT, t) == 0.0
    assert interp_schedule(GAMMA_ADV, 5 / 6) == pytest.approx(0.7)
    assert interp_schedule(GAMMA_ADV, 1.0) == pytest.approx(0.4)
    assert interp_schedule(GAMMA_NAT, 5 / 6) == pytest.approx(0.3)
    for t in (0.0, 0.7, 0.8, 0.9, 1.0):
        assert interp_schedule(GAMMA_ADV, t) + interp_schedule(GAMMA_NAT, t) == pytest.approx(1.0)
    # the 12-epoch preset evaluates at epoch / epochs
    assert [round(interp_schedule(GAMMA_ADV, e / 12), 6) for e in (8, 10, 12)] == [1.0, 0.7, 0.4]


def test_interp_schedule_edges():
    assert interp_schedule(PAPER_LR, 0.5) == pytest.approx(0.55)
    assert interp_schedule(PAPER_LR, -1.0) == 1.0 and interp_schedule(PAPER_LR, 2.0) == 0.01  # constant outside
    assert interp_schedule(((0.5, 3.0),), 0.1) == 3.0 and interp_schedule(((0.5, 3.0),), 0.9) == 3.0
    assert interp_schedule(((0.0, 1.0), (0.5, 1.0), (0.5, 2.0), (1.0, 2.0)), 0.5) == 1.0  # a step
    with pytest.raises(ConfigError, match="empty"):
        interp_schedule((), 0.5)


def test_same_run_ignores_the_thread_count_and_nothing_else():
    cfg = get_preset("fmnist-smallcnn-pgd_at")
    assert same_run(cfg, apply_overrides(cfg, ["train.num_threads=1"]))
    assert same_run(apply_overrides(cfg, ["train.num_threads=2"]), apply_overrides(cfg, ["train.num_threads=1"]))
    for other in ("train.seed=1", "train.device=cpu", "train.epochs=3", "train.learners.0.optim.lr=0.01"):
        assert not same_run(cfg, apply_overrides(cfg, [other])), other
