"""Tuning: the test split is locked, trials resume and skip when finished, the log holds validation numbers only,
Generalist's trials build on the standard and PGD-AT winners."""

from __future__ import annotations

import json

import pytest

import generalist_bench.tuning as T
from generalist_bench.cli import main as cli_main
from generalist_bench.data import load_dataset
from generalist_bench.data.splits import split_locked
from generalist_bench.errors import ConfigError, SplitLockedError


@pytest.fixture
def tiny_budget(monkeypatch):
    monkeypatch.setitem(T.TUNE_BUDGET, "data.train_subset", 256)
    monkeypatch.setitem(T.TUNE_BUDGET, "train.epochs", 2)
    monkeypatch.setitem(T.TUNE_BUDGET, "train.selection.n_val", 50)
    monkeypatch.setitem(T.TUNE_BUDGET, "train.selection.attack_steps", 2)


def test_split_locked_blocks_the_test_split_only_while_active():
    with split_locked("test", "tuning"):
        with pytest.raises(SplitLockedError, match="test split of fashion_mnist may not be read here: tuning"):
            load_dataset("fashion_mnist", "test")
        with split_locked("test", "inner"):
            with pytest.raises(SplitLockedError, match="inner"):
                load_dataset("fashion_mnist", "test")
        with pytest.raises(SplitLockedError, match="tuning"):  # the outer lock is back
            load_dataset("fashion_mnist", "test")
        assert len(load_dataset("fashion_mnist", "val")) == 5000
    assert len(load_dataset("fashion_mnist", "test")) == 10000
    with pytest.raises(ConfigError, match="unknown split"):
        with split_locked("tset", "typo"):
            pass


def test_the_plotted_frontiers_are_trials_that_differ_in_one_knob():
    by_id = {t.id: t for t in T.TRIALS}
    for _, method, members in T.FRONTIERS:
        trials = [by_id[t] for t, _ in members]  # KeyError: a frontier names a trial that does not exist
        assert {t.method for t in trials} == {method} and len(trials) >= 2
    winners = {"standard": by_id["standard-lr0.05"], "pgd_at": by_id["pgd_at-lr0.05"]}
    gammas = [by_id[t].overrides(winners) for t, _ in T.FRONTIERS[-1][2]]
    differ = {k for k in gammas[0] if len({str(g[k]) for g in gammas}) > 1}
    assert differ == {"train.learners.0.mix_schedule", "train.learners.1.mix_schedule"}  # γ_nat's end value only
    betas = [by_id[t].overrides({}) for t, _ in T.FRONTIERS[0][2]]
    assert {k for k in betas[0] if betas[0][k] != betas[1][k]} == {"train.learners.0.trades_beta"}


def test_every_method_has_the_same_number_of_trials_and_unique_ids():
    ids = [t.id for t in T.TRIALS]
    assert len(ids) == len(set(ids))
    for m in T.METHODS:
        assert sum(t.method == m for t in T.TRIALS) == T.TRIALS_PER_METHOD


def test_generalist_trials_need_the_winners_and_take_their_optimisers(tmp_path):
    g = next(t for t in T.TRIALS if t.id == "generalist-g0.6")
    with pytest.raises(ConfigError, match="winners of standard, pgd_at"):
        g.overrides({})
    std = next(t for t in T.TRIALS if t.id == "standard-lr0.1")
    adv = next(t for t in T.TRIALS if t.id == "pgd_at-lr0.02-linear")
    ov = g.overrides({"standard": std, "pgd_at": adv})
    assert ov["train.learners.0.optim.lr"] == 0.1 and ov["train.learners.0.optim.lr_schedule"] == T.PAPER
    assert ov["train.learners.1.optim.lr"] == 0.02 and ov["train.learners.1.optim.lr_schedule"] == T.LINEAR
    assert ov["train.learners.0.lr_from"] is None  # its own optimiser and schedule
    assert ov["train.learners.0.mix_schedule"][-1] == (1.0, 0.6)
    from generalist_bench.presets import resolve_config

    cfg = resolve_config(g.preset, ov)  # a valid config
    assert cfg.train.merge.warmup_epochs == 5 and cfg.train.merge.redistribute_every == 1
    own = next(t for t in T.TRIALS if t.id == "generalist-g0.6-nat0.01").overrides({"standard": std, "pgd_at": adv})
    assert own["train.learners.0.optim.lr"] == 0.01 and own["train.learners.0.optim.lr_schedule"] == ((0, 1), (1, 1))
    assert own["train.learners.1.optim.lr"] == 0.02 and own["train.learners.0.lr_from"] is None


def test_tune_runs_a_trial_with_the_test_split_locked_and_logs_validation_only(tiny_budget, tmp_path,
                                                                                monkeypatch, capsys):
    from generalist_bench.trainers import trainer as trainer_mod

    seen = []
    real_setup = trainer_mod.Trainer._setup

    def spy_setup(self):
        try:
            load_dataset("fashion_mnist", "test")
            seen.append("read")
        except SplitLockedError:
            seen.append("locked")
        real_setup(self)

    monkeypatch.setattr(trainer_mod.Trainer, "_setup", spy_setup)
    root, log = tmp_path / "runs", tmp_path / "docs" / "tuning_log"
    args = ["tune", "--only", "standard-lr0.05", "--root", str(root), "--log", str(log), "--no-progress"]
    assert cli_main(args) == 0
    assert seen == ["locked"]
    run = root / "standard-lr0.05"
    assert (run / "best.pt").exists() and not (run / "checkpoint.pt").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["selection"]["split"] == "val" and summary["n_train"] == 256
    md, csv_text = (tmp_path / "docs" / "tuning_log.md").read_text(), (tmp_path / "docs" / "tuning_log.csv").read_text()
    assert "Validation split only" in md and "| standard | standard-lr0.05 |" in md and "Not finished yet (23)" in md
    assert csv_text.splitlines()[0].split(",") == list(T.CSV_FIELDS) and len(csv_text.splitlines()) == 2
    png = tmp_path / "docs" / "tuning_log.png"  # the trade-off plot, shown by the log
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "![validation clean vs PGD-20" in md
    assert "(tuning_log.png)" in md
    o = T.outcome(T.TRIALS[2], root)
    assert o["epochs"] == 2 and o["n_val"] == 50 and 0 <= o["val_clean"] <= 100

    # a finished trial is not trained again
    monkeypatch.setattr(trainer_mod.Trainer, "run", lambda self: pytest.fail("retrained a finished trial"))
    assert cli_main(args) == 0
    # --list shows its score; an unknown trial is one clear error
    assert cli_main(["tune", "--list", "--root", str(root)]) == 0
    assert "done: score" in capsys.readouterr().out
    assert cli_main(["tune", "--only", "nope", "--root", str(root)]) == 2


def test_winner_is_the_best_validation_score_once_all_trials_of_a_method_finished(tmp_path):
    def fake(trial, clean, robust):
        d = T.run_dir(trial, tmp_path)
        d.mkdir(parents=True)
        hist = [{"epoch": 1, "val_clean": clean, "val_robust": robust}]
        (d / "history.jsonl").write_text(json.dumps(hist[0]) + "\n")
        (d / "summary.json").write_text(json.dumps({
            "config_name": trial.id, "trainer": trial.method, "epochs": 1, "seed": 0,
            "selection": {"split": "val", "criterion": "clean+robust", "n_val": 10, "attack": "PGD-20",
                          "chosen_epoch": 1, "chosen": {"epoch": 1, "val_clean": clean, "val_robust": robust}},
            "last": hist[0], "train_wall_time_s": 6.0, "img_per_s_mean": 1.0, "n_train": 10, "data_source": "fake",
            "world_size": 1, "hardware": {}, "versions": {}, "commit": "abc"}))

    std = [t for t in T.TRIALS if t.method == "standard"]
    for i, t in enumerate(std[:-1]):
        fake(t, 80 + i, 0.0)
    assert "standard" not in T.winners(tmp_path)  # one trial still pending
    fake(std[-1], 70, 1.0)
    assert T.winners(tmp_path)["standard"] is std[-2]
    md, _ = T.render_log(tmp_path)
    bold_rows = [line for line in md.splitlines() if line.startswith("| standard") and "**" in line]
    assert len(bold_rows) == 1 and f"**{std[-2].id}**" in bold_rows[0]


def test_each_fmnist_preset_is_its_methods_committed_tuning_winner_at_the_final_budget():
    """The presets the zoo trains are the winners in the committed tuning log: each winner's saved config equals
    the preset with the tuning budget's training subset (names, descriptions and standard training's selection
    criterion aside: the tuning rescored every epoch with the log's criterion)."""
    from pathlib import Path

    from generalist_bench.config import config_from_dict
    from generalist_bench.presets import get_preset

    root = Path(__file__).resolve().parents[1] / T.RUN_ROOT
    winners = T.winners(root)
    assert set(winners) == set(T.METHODS), f"tuning has not finished for {set(T.METHODS) - set(winners)}"
    for method, trial in winners.items():
        preset = get_preset(trial.preset)
        saved = config_from_dict(json.loads((T.run_dir(trial, root) / "config.json").read_text()))
        expected = preset.with_overrides({
            "data.train_subset": T.TUNE_BUDGET["data.train_subset"],
            "train.selection.criterion": saved.train.selection.criterion})
        assert saved.train.selection.criterion == preset.train.selection.criterion or method in T.CRITERION
        assert T.CRITERION.get(method, "clean+robust") == preset.train.selection.criterion
        a, b = expected.to_dict(), saved.to_dict()
        for k in ("name", "description"):
            a.pop(k), b.pop(k)
        assert a == b, f"{trial.preset} is not the tuning winner {trial.id}"


def _final_run(root, preset, seed, curve, criterion="clean+robust", epochs=None):
    """A finished final run directory ``root/preset/seed<k>`` with validation ``curve`` [(clean, robust), …]."""
    d = root / preset / f"seed{seed}"
    d.mkdir(parents=True)
    hist = [{"epoch": i + 1, "val_clean": c, "val_robust": r} for i, (c, r) in enumerate(curve)]
    (d / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in hist))
    (d / "summary.json").write_text(json.dumps({
        "config_name": preset, "trainer": preset.split("-")[-1], "epochs": epochs or len(hist), "seed": seed,
        "selection": {"split": "val", "criterion": criterion, "n_val": 10, "attack": "PGD-20",
                      "chosen_epoch": 1, "chosen": hist[0]},
        "last": hist[-1], "train_wall_time_s": 6.0, "img_per_s_mean": 1.0, "n_train": 10, "data_source": "fake",
        "world_size": 1, "hardware": {}, "versions": {}, "commit": "abc"}))
    return d


def test_budget_check_flags_a_curve_still_rising_at_the_end_and_skips_runs_still_training(tmp_path):
    full = tmp_path / "full"
    _final_run(full, "p-pgd_at", 0, [(70, 60), (75, 65), (76, 66), (77, 67), (78, 68), (79, 69)])    # +6 late
    _final_run(full, "p-pgd_at", 1, [(70, 60), (75, 65), (80, 70), (80.2, 70), (80, 70.3), (80.1, 70)])  # +0.3
    _final_run(full, "p-standard", 0, [(80, 5), (90, 0), (90, 0), (91.5, 0), (90, 0), (90, 0)], criterion="clean")
    training = full / "p-generalist" / "seed0"                              # in progress: history, no summary
    training.mkdir(parents=True)
    (training / "history.jsonl").write_text(json.dumps({"epoch": 1, "val_clean": 50, "val_robust": 40}) + "\n")
    rows = T.budget_rows(full)
    by = {(r["preset"], r["seed"]): r for r in rows}
    assert set(by) == {("p-pgd_at", 0), ("p-pgd_at", 1), ("p-standard", 0)}
    assert by["p-pgd_at", 0]["gain"] == pytest.approx(6.0) and not by["p-pgd_at", 0]["flat"]
    assert by["p-pgd_at", 0]["chosen_epoch"] == 6
    assert by["p-pgd_at", 1]["gain"] == pytest.approx(0.3) and by["p-pgd_at", 1]["flat"]
    # standard training is scored on clean accuracy alone, as its selection rule: +1.5 in the last 3 epochs
    assert by["p-standard", 0]["gain"] == pytest.approx(1.5) and not by["p-standard", 0]["flat"]
    md = T.render_budget(full)
    assert "`p-pgd_at`: 1 of 2 seed(s) flat (gains +6.0, +0.3)." in md
    assert "p-generalist" not in md

    out = tmp_path / "docs" / "budget"
    assert cli_main(["tune", "--budget-check", "--full-root", str(full), "--budget-out", str(out)]) == 0
    assert (tmp_path / "docs" / "budget.md").read_text() == md
    assert cli_main(["tune", "--budget-check", "--full-root", str(tmp_path / "nope"),
                     "--budget-out", str(out)]) == 2
    assert (tmp_path / "docs" / "budget.md").read_text() == md  # the bad call left the existing file alone
    # a finished run whose history does not cover its epochs: one clear error, the existing report untouched
    _final_run(full, "p-trades", 0, [(70, 60)] * 6, epochs=10)
    with pytest.raises(ConfigError, match="summary says 10 epochs, its history holds 6"):
        T.budget_rows(full)
    assert cli_main(["tune", "--budget-check", "--full-root", str(full), "--budget-out", str(out)]) == 2
    assert (tmp_path / "docs" / "budget.md").read_text() == md


def test_committed_budget_check_is_the_committed_final_runs_rendering():
    """docs/tuning/…_budget.md is regenerated whenever a final run is committed (`generalist-bench tune
    --budget-check`); a stale one fails here."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    committed = (repo / f"{T.BUDGET_STEM}.md").read_text()
    assert committed == T.render_budget(repo / T.FULL_ROOT)
