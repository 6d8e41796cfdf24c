"""train_and_submit end to end on a tiny subset: train → evaluate (official AutoAttack) → zoo → leaderboard."""

from __future__ import annotations

import json

import pytest
import torch

from generalist_bench import train_and_submit as tas
from generalist_bench.cli import main

TINY = tas.Profile("quick", ("data.train_subset=256", "train.epochs=1", "train.batch_size=64",
                             "train.selection.n_val=64", "train.selection.attack_steps=2",
                             "train.learners.0.attack.steps=2", "train.learners.0.attack.step_size=0.05"),
                   aa_n_examples=8, quick_n_examples=64, eval_batch_size=8, flat_lr=True, generalist_warmup=0,
                   bf16_native_only=True)  # as QUICK: float32 where bf16 would be emulated


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    monkeypatch.setattr(tas, "QUICK", TINY)
    d = {k: tmp_path / k for k in ("zoo", "lb", "runs")}
    return d


def _argv(d, *extra):
    return ["submit", "--quick", "--trainers", "standard,pgd_at", "--model-dir", str(d["zoo"]),
            "--leaderboard-dir", str(d["lb"]), "--runs-dir", str(d["runs"]), "--no-progress", *extra]


def test_quick_submission_end_to_end(dirs, capsys):
    assert main(_argv(dirs)) == 0
    cards = sorted((dirs["zoo"] / "fashion_mnist" / "Linf").glob("*.json"))
    assert [c.stem for c in cards] == ["fmnist-smallcnn-pgd_at_seed0_quick", "fmnist-smallcnn-standard_seed0_quick"]
    card = json.loads(cards[0].read_text())
    assert card["quick"] is True and card["trainer"] == "pgd_at"
    aa = card["evaluations"]["autoattack"]
    assert aa["protocol"]["suite"] == "autoattack" and aa["n_examples"] == 8
    assert card["autoattack_acc"] == aa["robust_acc"] <= card["clean_acc"]
    assert card["chosen_epoch"] == 1 and "validation" in card["selection_rule"]
    # the card's recipe describes what ran (1 epoch on 256 images), not the preset's full budget; the run itself
    # trains under the config as resolved (its run directory resumes across versions of this wording)
    desc = card["recipe"]["description"]
    assert desc.startswith("fmnist-smallcnn-pgd_at under the quick profile (data.train_subset=256, train.epochs=1")
    assert desc.endswith("): 1 epoch on 256 training images; not the preset's tuned recipe"), desc
    assert "constant lr" in desc and ("float32" in desc) == (card["recipe"]["train"]["amp"] == "off")
    assert card["recipe"]["train"]["epochs"] == 1 and "55,000" not in desc and "warm-up" not in desc
    run_cfg = json.loads((dirs["runs"] / "quick" / "fmnist-smallcnn-pgd_at" / "seed0" / "config.json").read_text())
    from generalist_bench.presets import get_preset

    assert run_cfg["description"] == get_preset("fmnist-smallcnn-pgd_at").description != desc
    assert "generalist_bench.train_and_submit" in card["command"] and "--quick" in card["command"]
    # the zoo model loads, sha256-verified, and reproduces its card's clean accuracy on the same points
    from generalist_bench import load_model
    from generalist_bench.data import load_dataset

    model = load_model("fmnist-smallcnn-pgd_at_seed0_quick", dataset="fashion_mnist", model_dir=dirs["zoo"])
    x, y = load_dataset("fashion_mnist", "test").subset(8)
    with torch.no_grad():
        acc = 100.0 * (model(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(card["clean_acc"])
    md = list(dirs["lb"].rglob("*.md"))
    assert any("fmnist-smallcnn-pgd_at_seed0_quick" in p.read_text() for p in md)
    assert list(dirs["lb"].rglob("*.png")) and list(dirs["lb"].rglob("*.html"))
    out = capsys.readouterr().out
    assert "AutoAttack" in out and "leaderboard regenerated" in out

    # a second submission resumes: no retraining (the checkpoint is complete) and the same numbers
    ck = dirs["runs"] / "quick" / "fmnist-smallcnn-pgd_at" / "seed0" / "checkpoint.pt"
    before = ck.stat().st_mtime_ns
    capsys.readouterr()
    assert main(_argv(dirs, "--seeds", "0")) == 0  # another command line: the cards still keep theirs
    assert ck.stat().st_mtime_ns == before
    # ... and an unchanged entry is not re-published: same weights, same results → the card that made it stays,
    # with its date, command and commit
    assert json.loads(cards[0].read_text()) == card
    assert "already published with these weights and results" in capsys.readouterr().err


def test_quick_profile_adjusts_every_trainer():
    from generalist_bench.presets import get_preset

    for trainer in tas.ALL_TRAINERS:
        cfg = tas.QUICK.apply(get_preset(f"fmnist-smallcnn-{trainer}")).validate()
        assert cfg.train.epochs == 3 and cfg.data.train_subset == 5000
        assert all(ln.optim.lr_schedule == ((0.0, 1.0), (1.0, 1.0)) for ln in cfg.train.learners)
        if trainer == "generalist":
            assert cfg.train.merge.warmup_epochs == 1
    assert "constant lr" in tas.QUICK.describe()


def test_unknown_trainer_or_family_is_one_clear_error(dirs, capsys):
    assert main(["submit", "--trainers", "nope", "--runs-dir", str(dirs["runs"])]) == 2
    assert "unknown trainer 'nope'" in capsys.readouterr().err
    assert main(["submit", "--preset", "nope", "--runs-dir", str(dirs["runs"])]) == 2
    assert "fmnist-smallcnn" in capsys.readouterr().err


def test_seeds_train_one_entry_per_seed_seed_by_seed(dirs, capsys):
    argv = _argv(dirs, "--seeds", "1,0")
    argv[argv.index("standard,pgd_at")] = "standard"
    assert main(argv) == 0
    cards = {c.stem: json.loads(c.read_text()) for c in (dirs["zoo"] / "fashion_mnist" / "Linf").glob("*.json")}
    assert sorted(cards) == ["fmnist-smallcnn-standard_seed0_quick", "fmnist-smallcnn-standard_seed1_quick"]
    assert {c["seed"]: c["recipe"]["train"]["seed"] for c in cards.values()} == {0: 0, 1: 1}
    s0, s1 = (cards[f"fmnist-smallcnn-standard_seed{s}_quick"]["sha256"] for s in (0, 1))
    assert s0 != s1
    card = cards["fmnist-smallcnn-standard_seed1_quick"]
    assert card["budget"].startswith("256 training images, 1 epoch, batch 64")
    assert card["tuning_log"] is None  # the quick profile is not the tuned recipe
    last = json.loads((dirs["runs"] / "quick" / "last_submission.json").read_text())
    assert [r["model_id"] for r in last["rows"]] == ["fmnist-smallcnn-standard_seed1_quick",
                                                     "fmnist-smallcnn-standard_seed0_quick"]
    runs_before = sorted(p for p in dirs["runs"].rglob("*"))
    for bad in ("0,x", "1,1", "-1", ","):
        assert main(_argv(dirs, "--seeds", bad)) == 2
        assert "--seeds must" in capsys.readouterr().err
    assert main(_argv(dirs, "--seeds", "2", "--set", "train.seed=3")) == 2
    assert "--seeds and --set train.seed" in capsys.readouterr().err
    assert sorted(p for p in dirs["runs"].rglob("*")) == runs_before  # nothing trained or written


def test_card_description_says_what_ran_unless_it_is_the_preset_recipe():
    from generalist_bench.presets import get_preset

    pgd, gen = get_preset("fmnist-smallcnn-pgd_at"), get_preset("fmnist-smallcnn-generalist")
    assert tas.card_description(pgd, tas.FULL) == pgd.description  # the preset as registered
    seeded = pgd.with_overrides(["train.seed=2"])
    assert tas.card_description(seeded, tas.FULL, ["train.seed=2"]) == pgd.description  # a seed is the same recipe
    short = pgd.with_overrides(["train.epochs=4"])
    assert tas.card_description(short, tas.FULL, ["train.epochs=4"]) == (
        "fmnist-smallcnn-pgd_at under the full profile (--set train.epochs=4): 4 epochs on all training images; "
        "not the preset's tuned recipe")
    quick_gen = tas.card_description(tas.QUICK.apply(gen), tas.QUICK)
    assert "train.epochs=3" in quick_gen and "5,000" in quick_gen
    assert "Generalist warm-up 1 epoch(s), redistribution every 1 epoch(s)" in quick_gen
    assert "warm-up" not in tas.card_description(tas.QUICK.apply(pgd), tas.QUICK)
    own = pgd.with_overrides(["train.epochs=4"])
    from dataclasses import replace

    own = replace(own, name="my-config", description="mine")  # not a registered preset: its own words
    assert tas.card_description(own, tas.FULL, ["train.epochs=4"]) == "mine"


def test_the_quick_generalist_merge_does_not_follow_the_shared_budget():
    """The preset's t′ and c scale with the shared budget (presets.fmnist_merge_epochs); the quick profile's 3-epoch
    Generalist redistributes after epochs 1 and 2 whatever that budget is, so the quick cards do not change when it
    does."""
    from dataclasses import replace

    from generalist_bench.presets import fmnist_merge_epochs, get_preset

    gen = get_preset("fmnist-smallcnn-generalist")
    for epochs in (10, 30, 40):
        warmup, every = fmnist_merge_epochs(epochs)
        preset = gen.with_overrides({"train.epochs": epochs, "train.merge.warmup_epochs": warmup,
                                     "train.merge.redistribute_every": every})
        quick = tas.QUICK.apply(preset)
        assert (quick.train.epochs, quick.train.merge.warmup_epochs, quick.train.merge.redistribute_every) == (3, 1, 1)
        assert replace(quick, description="") == replace(tas.QUICK.apply(gen), description="")


def test_the_quick_profile_trains_in_float32_where_bf16_would_be_emulated(monkeypatch):
    """The quick profile is a recipe of its own, meant to run in minutes: on a CPU without bfloat16 instructions it
    trains in float32 and its card says so; on one with them, or on a GPU, it keeps the preset's bf16. The rule sees
    the fully resolved config (a user's --set train.amp / train.device included); a config in float32 already is not
    said to have been switched; the full profile never changes a preset's precision."""
    from generalist_bench.presets import get_preset, resolve_config
    from generalist_bench.trainers import amp

    pgd = get_preset("fmnist-smallcnn-pgd_at").with_overrides(["train.device=cpu"])
    assert pgd.train.amp == "bf16"
    monkeypatch.setattr(amp, "bf16_native", lambda: False)
    fp32 = tas.QUICK.precision(tas.QUICK.apply(pgd))
    assert fp32 is not None and fp32.train.amp == "off"
    assert fp32.with_overrides(["train.amp=bf16"]) == tas.QUICK.apply(pgd)  # nothing else changes
    assert "float32" in tas.card_description(fp32, tas.QUICK, fp32=True)
    assert "float32" in tas.QUICK.describe(fp32, fp32=True) and "float32" not in tas.QUICK.describe(fp32)
    assert tas.FULL.precision(pgd) is None
    assert tas.QUICK.precision(tas.QUICK.apply(pgd.with_overrides(["train.device=cuda"]))) is None  # a GPU
    assert tas.QUICK.precision(tas.QUICK.apply(pgd.with_overrides(["train.amp=off"]))) is None  # float32 already
    cifar = resolve_config("cifar10-resnet18-pgd_at")
    assert cifar.train.amp == "off" and tas.QUICK.precision(tas.QUICK.apply(cifar)) is None
    monkeypatch.setattr(amp, "bf16_native", lambda: True)
    assert tas.QUICK.precision(tas.QUICK.apply(pgd)) is None


def test_submit_applies_the_precision_rule_after_the_users_overrides(dirs, monkeypatch):
    """The rule sees the run's resolved config (here --set train.device=cpu): on a CPU without bfloat16 instructions
    the quick run trains in float32, and its card's recipe and footnote say so."""
    from generalist_bench.trainers import amp

    assert tas.QUICK is TINY and TINY.bf16_native_only
    monkeypatch.setattr(amp, "bf16_native", lambda: False)
    assert main([*_argv(dirs, "--set", "train.device=cpu"), "--trainers", "standard"]) == 0
    (card,) = (dirs["zoo"] / "fashion_mnist" / "Linf").glob("*.json")
    card = json.loads(card.read_text())
    assert card["recipe"]["train"]["amp"] == "off" and "float32" in card["footnote"]
    assert json.loads((dirs["runs"] / "quick" / "fmnist-smallcnn-standard" / "seed0" / "config.json").read_text())[
        "train"]["amp"] == "off"


def test_cards_link_the_tuning_log_only_for_the_tuned_recipe():
    from generalist_bench.presets import FMNIST_TUNING_LOG, get_preset, tuning_log_for

    for trainer in tas.ALL_TRAINERS:
        cfg = get_preset(f"fmnist-smallcnn-{trainer}")
        assert tuning_log_for(cfg) == FMNIST_TUNING_LOG
        assert tuning_log_for(cfg.with_overrides(["train.seed=2", "train.num_threads=1"])) == FMNIST_TUNING_LOG
        assert tuning_log_for(cfg.with_overrides(["train.learners.0.optim.lr=0.01"])) is None
        assert tuning_log_for(tas.QUICK.apply(cfg)) is None
    assert tuning_log_for(get_preset("fmnist-smallcnn-generalist-reference")) is None
    assert tuning_log_for(get_preset("cifar10-resnet18-pgd_at")) is None
