"""One registry type for data sets, architectures, attacks, suites, objectives, trainers and presets; display
titles and plot styles live in the registrations; a new training method is one registration away from config
validation, cards and the leaderboard plot."""

from __future__ import annotations

import dataclasses

import pytest

from generalist_bench.errors import UnknownNameError
from generalist_bench.registry import UNSTYLED, Registry, Style, plot_style, title, trainer_style


def test_every_kind_is_held_by_the_one_registry_type():
    from generalist_bench import plugins
    from generalist_bench.presets import PRESETS
    from generalist_bench.trainers.registry import OBJECTIVES, TRAINERS

    for kind in plugins.KINDS:
        assert isinstance(plugins.registry(kind), Registry), kind
    for reg in (PRESETS, OBJECTIVES, TRAINERS):
        assert isinstance(reg, Registry)
    assert {"standard", "pgd_at", "trades"} <= set(OBJECTIVES.names())
    assert {"standard", "pgd_at", "trades", "generalist", "submitted"} <= set(TRAINERS.names())


def test_titles_and_styles_come_from_the_registrations():
    assert title("architecture", "small_cnn") == "SmallCNN" and title("architecture", "wrn34_10") == "WideResNet-34-10"
    assert title("dataset", "fashion_mnist") == "Fashion-MNIST" and title("dataset", "cifar10") == "CIFAR-10"
    assert title("trainer", "pgd_at") == "PGD-AT" and title("trainer", "submitted") == "Submitted (trained elsewhere)"
    assert title("trainer", "an_old_name") == "an_old_name"  # unknown names display as themselves
    assert trainer_style("generalist") == trainer_style("Generalist") == Style("#d62728", "*")  # by name or title
    assert trainer_style("nobody") is None
    assert plot_style("Generalist") == Style("#d62728", "*") and plot_style("nobody") == UNSTYLED  # plots' fallback


def test_registry_semantics():
    filled = []
    reg: Registry[int] = Registry("widget", fill=lambda: filled.append(reg.register("late", 3)))
    reg.register("a", 1, title="A")
    assert reg.names(fill=False) == ["a"] and not filled  # nothing imported until a lookup needs it
    assert reg.get("late") == 3 and filled == [3]
    reg.get("a")
    assert filled == [3]  # filled once
    assert reg.register("a", 1, title="A") == 1  # the same definition again (a module re-imported) replaces it
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a", 2, title="A")
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a", 1, title="Hijacked")  # nor may another module re-title or re-style it
    with pytest.raises(UnknownNameError, match="widget"):
        reg.get("b")


def test_a_new_training_method_is_one_registration(monkeypatch):
    """An objective + trainer registered by one module: config accepts it, training builds it, the card and the
    leaderboard plot display it."""
    from generalist_bench.presets import get_preset
    from generalist_bench.trainers import objectives
    from generalist_bench.trainers.registry import OBJECTIVES, TRAINERS, register_objective, register_trainer

    for reg in (OBJECTIVES, TRAINERS):
        monkeypatch.setattr(reg, "_entries", dict(reg._entries))

    @register_objective("clean_twice", title="Clean twice")
    def _build(cfg, threat):
        return objectives.Standard()

    register_trainer("clean_twice", title="Clean twice", style=Style("#000000", "x"))
    cfg = get_preset("fmnist-smallcnn-standard")
    learner = dataclasses.replace(cfg.train.learners[0], objective="clean_twice")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, trainer="clean_twice", learners=(learner,)))
    cfg.validate()
    from generalist_bench.config import ThreatModel

    assert isinstance(objectives.build_objective(learner, ThreatModel()), objectives.Standard)
    assert title("trainer", "clean_twice") == "Clean twice" and trainer_style("Clean twice").marker == "x"
    bad = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, trainer="submitted"))
    with pytest.raises(UnknownNameError, match="trainer 'submitted'"):
        bad.validate()  # a model trained elsewhere cannot be trained here


def test_built_in_data_sets_as_a_str_enum_at_the_boundary():
    from generalist_bench.data import Dataset, get_dataset_info, list_datasets

    assert {d.value for d in Dataset} <= set(list_datasets())
    assert get_dataset_info(Dataset.CIFAR10).name == "cifar10"
    assert get_dataset_info("Fashion-MNIST").name == "fashion_mnist"
    with pytest.raises(UnknownNameError, match="'CIFAR-11'"):
        get_dataset_info("CIFAR-11")  # the name as given, in the error
