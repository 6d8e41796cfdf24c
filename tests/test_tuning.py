"""Tuning: the test split is locked, trials resume and skip when finished, the log holds validation numbers only,
Generalist's trials build on the standard and PGD-AT winners."""

from __future__ import annotations

import json
import shutil

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


def _spy_test_split_reads(monkeypatch) -> list[str]:
    """Each Trainer setup tries to read the test split first: "locked" or "read" per training, in order."""
    from generalist_bench.trainers import trainer as trainer_mod

    seen: list[str] = []
    real_setup = trainer_mod.Trainer._setup

    def spy_setup(self):
        try:
            load_dataset("fashion_mnist", "test")
            seen.append("read")
        except SplitLockedError:
            seen.append("locked")
        real_setup(self)

    monkeypatch.setattr(trainer_mod.Trainer, "_setup", spy_setup)
    return seen


def test_tune_runs_a_trial_with_the_test_split_locked_and_logs_validation_only(tiny_budget, tmp_path,
                                                                                monkeypatch, capsys):
    from generalist_bench.trainers import trainer as trainer_mod

    seen = _spy_test_split_reads(monkeypatch)
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
    the preset with the tuning budget's training subset and epochs (Generalist's t′ and c by the preset's rule at
    those epochs: the same fractions of training), names, descriptions and standard training's selection criterion
    aside (the tuning rescored every epoch with the log's criterion). Whatever the shared budget, the rest of the
    recipe is the tuned one."""
    from pathlib import Path

    from generalist_bench.config import config_from_dict
    from generalist_bench.presets import fmnist_merge_epochs, get_preset

    root = Path(__file__).resolve().parents[1] / T.RUN_ROOT
    winners = T.winners(root)
    assert set(winners) == set(T.METHODS), f"tuning has not finished for {set(T.METHODS) - set(winners)}"
    for method, trial in winners.items():
        preset = get_preset(trial.preset)
        saved = config_from_dict(json.loads((T.run_dir(trial, root) / "config.json").read_text()))
        epochs = T.TUNE_BUDGET["train.epochs"]
        expected = preset.with_overrides({
            "data.train_subset": T.TUNE_BUDGET["data.train_subset"], "train.epochs": epochs,
            "train.selection.criterion": saved.train.selection.criterion})
        if preset.train.merge is not None:
            warmup, every = fmnist_merge_epochs(epochs)
            expected = expected.with_overrides({"train.merge.warmup_epochs": warmup,
                                                "train.merge.redistribute_every": every})
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
    md = T.render_budget(full, tmp_path / "no-probes")
    assert "`p-pgd_at`: 1 of 2 seed(s) flat (gains +6.0, +0.3)." in md
    assert "p-generalist" not in md

    out = tmp_path / "docs" / "budget"
    probes = ["--probe-root", str(tmp_path / "no-probes")]
    assert cli_main(["tune", "--budget-check", "--full-root", str(full), "--budget-out", str(out), *probes]) == 0
    assert (tmp_path / "docs" / "budget.md").read_text() == md
    assert cli_main(["tune", "--budget-check", "--full-root", str(tmp_path / "nope"),
                     "--budget-out", str(out), *probes]) == 2
    assert (tmp_path / "docs" / "budget.md").read_text() == md  # the bad call left the existing file alone
    # a finished run whose history does not cover its epochs: one clear error, the existing report untouched
    _final_run(full, "p-trades", 0, [(70, 60)] * 6, epochs=10)
    with pytest.raises(ConfigError, match="summary says 10 epochs, its history holds 6"):
        T.budget_rows(full)
    assert cli_main(["tune", "--budget-check", "--full-root", str(full), "--budget-out", str(out), *probes]) == 2
    assert (tmp_path / "docs" / "budget.md").read_text() == md


def test_committed_budget_check_is_the_committed_final_runs_rendering():
    """docs/tuning/…_budget.md is regenerated whenever a final run is committed (`generalist-bench tune
    --budget-check`); a stale one fails here."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    committed = (repo / f"{T.BUDGET_STEM}.md").read_text()
    assert committed == T.render_budget(repo / T.FULL_ROOT, repo / T.PROBE_ROOT)


def test_budget_probe_is_each_final_preset_stretched_with_its_schedule():
    """The probe changes the epochs (and the seed, name, description) only; Generalist's t′ and c, absolute epochs,
    keep their fractions of training (0.5·E and 0.1·E at the shared budget); everything else is the preset's."""
    from dataclasses import replace

    from generalist_bench.presets import get_preset

    # the rungs are fixed epochs, multiples of the tuning budget, not of the shared budget
    assert T.PROBE_SCALES == (1.5, 2.0, 3.0, 4.0, 6.0) and T.PROBE_BASE_EPOCHS == T.TUNE_BUDGET["train.epochs"] == 10
    for scale, epochs in zip(T.PROBE_SCALES, (15, 20, 30, 40, 60), strict=True):
        for m in T.PROBE_ORDER:
            assert T.probe_epochs(scale) == epochs
            base, probe = get_preset(f"fmnist-smallcnn-{m}"), T.probe_config(m, epochs)
            assert probe.train.epochs == round(scale * T.PROBE_BASE_EPOCHS) == epochs
            assert probe.train.seed == T.PROBE_SEED and "validation only" in probe.description
            assert T.probe_dir(m, epochs).parent.name == f"fmnist-smallcnn-{m}-e{epochs}"
            a, b = base.to_dict(), probe.to_dict()
            for d in (a, b):
                d.pop("name"), d.pop("description"), d["train"].pop("epochs"), d["train"].pop("seed")
                if d["train"]["merge"] is not None:
                    d["train"]["merge"].pop("warmup_epochs"), d["train"]["merge"].pop("redistribute_every")
            assert a == b, m
    for m in T.PROBE_ORDER:  # the probe's rule, at the shared budget, is the preset itself: one rule for both
        base = get_preset(f"fmnist-smallcnn-{m}")
        same = T.probe_config(m, base.train.epochs)
        assert replace(same, name=base.name, description=base.description) == base, m
    for epochs, want in ((10, (5, 1)), (15, (8, 2)), (20, (10, 2)), (30, (15, 3)), (40, (20, 4)), (60, (30, 6))):
        g = T.probe_config("generalist", epochs).train.merge
        assert (g.warmup_epochs, g.redistribute_every) == want


def test_budget_probe_trains_with_the_test_split_locked_and_stops_once_longer_does_not_pay(tmp_path, monkeypatch):
    from generalist_bench.presets import resolve_config
    from generalist_bench.trainers import trainer as trainer_mod

    tiny = {"data.train_subset": 256, "train.selection.n_val": 50, "train.selection.attack_steps": 2}
    # a 4-epoch final run: probes of 6, 8, 12, 16 epochs, tiny trainings
    monkeypatch.setattr(T, "shared_epochs", lambda method: 4)
    monkeypatch.setattr(T, "PROBE_BASE_EPOCHS", 4)
    monkeypatch.setattr(T, "probe_config", lambda m, epochs: resolve_config(
        f"fmnist-smallcnn-{m}", tiny | {"train.epochs": epochs}))
    monkeypatch.setattr(T, "PROBE_ORDER", ("standard",))
    seen = _spy_test_split_reads(monkeypatch)
    full, probes, out = tmp_path / "full", tmp_path / "probes", tmp_path / "docs" / "budget"
    # a final run no tiny training gets near (99 % validation clean): the probes gain nothing, and the ladder stops
    # once PROBE_PATIENCE (2) longer budgets have failed to beat it
    _final_run(full, "fmnist-smallcnn-standard", 0, [(10, 0), (20, 0), (30, 0), (99, 0)], criterion="clean")
    args = ["tune", "--budget-probe", "--methods", "standard", "--full-root", str(full), "--probe-root", str(probes),
            "--budget-out", str(out), "--no-progress"]
    assert cli_main(args) == 0
    assert seen == ["locked", "locked"]  # two probes, each with the test split locked; the 12- and 16-epoch rungs not
    (row,) = T.probe_rows(full, probes)
    final, *ladder = row["ladder"]
    assert final["score"] == 99 and final["gain"] is None and [a["epochs"] for a in ladder] == [6, 8]
    prev = 99
    for epochs, a in zip((6, 8), ladder, strict=True):
        run = T.probe_dir("standard", epochs, probes)
        assert (run / "best.pt").exists() and not (run / "checkpoint.pt").exists()
        hist = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
        assert len(hist) == epochs and a["score"] == max(h["val_clean"] for h in hist) < 99
        assert a["gain"] == pytest.approx(a["score"] - prev)
        prev = a["score"]
    assert not T.probe_dir("standard", 12, probes).exists()
    assert row["enough_at"] == 4 and row["complete"] and row["next"] is None
    md = (tmp_path / "docs" / "budget.md").read_text()
    assert md == T.render_budget(full, probes)
    # one seed at the shared budget: no spread to show
    assert "| fmnist-smallcnn-standard | 0 | 4 (shared budget) | 4 | 99.0 / 0.0 | 99.0 | — |  |" in md
    assert "| fmnist-smallcnn-standard | 0 | 6 | " in md
    assert "Next rung" not in md
    assert "Shared budget the ladder supports: **4 epochs** (the longest of the methods' long-enough budgets), " \
           "against the presets' 4 epochs: long enough." in md
    # a finished probe is not trained again
    monkeypatch.setattr(trainer_mod.Trainer, "run", lambda self: pytest.fail("retrained a finished probe"))
    assert cli_main(args) == 0


def test_budget_probe_climbs_each_method_until_its_curve_is_flat(tmp_path, monkeypatch, capsys):
    """Rung by rung, shorter budgets first for every method; a method stops once a budget has PROBE_PATIENCE longer
    ones none of which beats it by FLAT_TOL points; the supported shared budget is the longest of those, once every
    method has one. A method without a finished seed-0 final run is skipped, not probed at every rung."""
    monkeypatch.setattr(T, "shared_epochs", lambda method: 4)  # rungs 6, 8, 12, 16
    monkeypatch.setattr(T, "PROBE_BASE_EPOCHS", 4)
    monkeypatch.setattr(T, "PROBE_ORDER", ("pgd_at", "standard", "generalist"))
    full, probes, out = tmp_path / "full", tmp_path / "probes", tmp_path / "docs" / "budget"
    _final_run(full, "fmnist-smallcnn-pgd_at", 0, [(70, 60), (80, 70)] * 2)             # score 150 at 4 epochs
    _final_run(full, "fmnist-smallcnn-standard", 0, [(90, 0)] * 4, criterion="clean")   # score 90
    tops = {("pgd_at", 6): (83, 70), ("pgd_at", 8): (85, 70), ("pgd_at", 12): (85.5, 70), ("pgd_at", 16): (85.2, 70),
            ("standard", 6): (90.2, 0), ("standard", 8): (90.4, 0), ("standard", 12): (99, 0),
            ("generalist", 6): (80.5, 70), ("generalist", 8): (80, 70)}
    calls = []

    def fake_run_probe(method, epochs, root, *, progress=True):
        calls.append((method, epochs))
        crit = "clean" if method == "standard" else "clean+robust"
        return _probe_run(root, method, [(50, 40)] * (epochs - 1) + [tops[method, epochs]], criterion=crit)

    monkeypatch.setattr(T, "run_probe", fake_run_probe)
    args = ["tune", "--budget-probe", "--full-root", str(full), "--probe-root", str(probes), "--budget-out", str(out),
            "--no-progress"]
    assert cli_main(args) == 0
    # PGD-AT: +3 at 6, +2 at 8, then 12 and 16 do not beat 8 → 8 is enough; standard: 6 and 8 do not beat 4 → 4,
    # and its 12-epoch rung (which would have beaten it) is never trained; Generalist: no final run, skipped
    assert calls == [("pgd_at", 6), ("standard", 6), ("pgd_at", 8), ("standard", 8), ("pgd_at", 12), ("pgd_at", 16)]
    assert "generalist: no finished seed-0 final run" in capsys.readouterr().err
    rows = {r["method"]: r for r in T.probe_rows(full, probes)}
    assert rows["pgd_at"]["enough_at"] == 8 and rows["standard"]["enough_at"] == 4
    assert all(r["complete"] and r["next"] is None for r in rows.values())
    assert T.supported_budget(list(rows.values())) is None  # Generalist not measured
    md = (tmp_path / "docs" / "budget.md").read_text()
    assert "- `fmnist-smallcnn-pgd_at`: **8 epochs** (4 → 6: +3.0, 6 → 8: +2.0, 8 → 12: +0.5, 12 → 16: -0.3)" in md
    assert "Shared budget the ladder supports: **not known yet**" in md
    calls.clear()
    assert cli_main(args) == 0 and calls == []  # stopped ladders are not climbed again
    # Generalist's final run arrives: it climbs alone, and is flat at 4 after two rungs
    _final_run(full, "fmnist-smallcnn-generalist", 0, [(80, 70)] * 4)
    assert cli_main(args) == 0 and calls == [("generalist", 6), ("generalist", 8)]
    rows = T.probe_rows(full, probes)
    assert T.supported_budget(rows) == 8
    md = (tmp_path / "docs" / "budget.md").read_text()
    assert "Shared budget the ladder supports: **8 epochs** (the longest of the methods' long-enough budgets), " \
           "against the presets' 4 epochs: too short, the presets' budget should grow to it." in md
    # a final run of another budget than the preset's (FMNIST_EPOCHS changed, not adopted yet): refused, untrained
    monkeypatch.setattr(T, "shared_epochs", lambda method: 5)
    calls.clear()
    assert cli_main(args) == 2 and calls == []
    assert "run `generalist-bench tune --adopt-budget` first" in capsys.readouterr().err


def _probe_run(root, method, curve, criterion="clean+robust"):
    """A finished budget probe ``root/<preset>-e<epochs>/seed0``: the preset stretched to len(curve) epochs."""
    d = _final_run(root, f"fmnist-smallcnn-{method}-e{len(curve)}", 0, curve, criterion)
    (d / "config.json").write_text(json.dumps(T.probe_config(method, len(curve)).to_dict()))
    return d


def test_budget_probe_ladder_says_from_which_budget_longer_training_stops_paying(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "shared_epochs", lambda method: 4)  # 4-epoch final runs: 6 and 8
    monkeypatch.setattr(T, "PROBE_BASE_EPOCHS", 4)
    full, probes = tmp_path / "full", tmp_path / "probes"
    for seed, top in ((0, (80, 70)), (1, (81, 70)), (2, (79.5, 70))):
        _final_run(full, "fmnist-smallcnn-pgd_at", seed, [(70, 60), (75, 65), (76, 66), top])
    # PGD-AT: 4 → 6 gains 3 points, 6 → 8 only 0.5: 6 epochs are enough
    _probe_run(probes, "pgd_at", [(70, 60), (75, 65), (80, 70), (82, 71), (81, 70), (80, 69)])
    _probe_run(probes, "pgd_at", [(70, 60), (82.5, 71)] + [(80, 70)] * 6)
    # TRADES: a dip at 6, then 8 only 0.8 above 4: 4 epochs are enough (no longer budget beats it by 1 point)
    _final_run(full, "fmnist-smallcnn-trades", 0, [(70, 60), (75, 65), (80, 70), (80, 70)])
    _probe_run(probes, "trades", [(70, 60), (79, 70)] + [(78, 70)] * 4)
    _probe_run(probes, "trades", [(70, 60), (80.8, 70)] + [(78, 70)] * 6)
    # a probe as long as the final run (after a change of the shared budget) is the final run's budget: left out
    _probe_run(probes, "trades", [(99, 99)] * 4)
    # Generalist: a small first step, then a large one: no budget shown long enough
    _final_run(full, "fmnist-smallcnn-generalist", 0, [(70, 60), (75, 65), (80, 70), (80, 70)])
    _probe_run(probes, "generalist", [(70, 60), (80.5, 70)] + [(80, 70)] * 4)
    _probe_run(probes, "generalist", [(70, 60), (82.5, 70)] + [(80, 70)] * 6)
    # standard training: the 6-epoch probe finished, the 8-epoch one still training (no summary): verdict so far
    _final_run(full, "fmnist-smallcnn-standard", 0, [(70, 0), (80, 0), (90, 0), (91, 0)], criterion="clean")
    moved = _probe_run(probes, "standard", [(70, 0), (91.5, 0)] + [(90, 0)] * 4, criterion="clean")
    # … kept under the preset's own name, as the final run of an earlier shared budget moved into the ladder is
    cfg = json.loads((moved / "config.json").read_text())
    (moved / "config.json").write_text(json.dumps(cfg | {"name": "fmnist-smallcnn-standard"}))
    running = probes / "fmnist-smallcnn-standard-e8" / "seed0"
    running.mkdir(parents=True)
    (running / "checkpoint.pt").write_bytes(b"x")
    (running / "history.jsonl").write_text(json.dumps({"epoch": 1, "val_clean": 99.0}) + "\n")

    # one probe trained on another CPU: each row names its CPU, and the report says the rows mix hardware
    summary = probes / "fmnist-smallcnn-generalist-e8" / "seed0" / "summary.json"
    summary.write_text(json.dumps(json.loads(summary.read_text()) | {"hardware": {"cpu": "AMD EPYC"}}))

    rows = {r["method"]: r for r in T.probe_rows(full, probes)}
    pgd = rows["pgd_at"]["ladder"]
    assert [a["score"] for a in pgd] == [150, 153, 153.5] and pgd[1]["chosen"] == 4 and pgd[2]["chosen"] == 2
    assert [a["gain"] for a in pgd[1:]] == [pytest.approx(3.0), pytest.approx(0.5)]
    # PGD-AT: 6 not beaten by 8, but one longer budget is not PROBE_PATIENCE: flat so far; TRADES: 4 not beaten twice
    assert rows["pgd_at"]["enough_at"] is None and rows["pgd_at"]["flat_so_far"] == 6
    assert rows["pgd_at"]["next"] == 12 and rows["trades"]["enough_at"] == 4
    assert [a["score"] for a in rows["trades"]["ladder"]] == [150, 149, 150.8]
    assert rows["generalist"]["enough_at"] is None
    # standard: 4 → 6 gains +0.5, one longer budget only: flat so far (the 8-epoch run in progress is not a rung)
    assert [a["score"] for a in rows["standard"]["ladder"]] == [91, 91.5] and not rows["standard"]["complete"]
    assert rows["standard"]["flat_so_far"] == 4 and rows["standard"]["next"] == 8
    assert rows["generalist"]["next"] == 12 and not rows["generalist"]["complete"]
    assert T.supported_budget(list(rows.values())) is None
    md = T.render_budget(full, probes)
    assert "| fmnist-smallcnn-pgd_at | 0 | 4 (shared budget) | 4 | 80.0 / 70.0 | 150.0 | — | 1.5 (3) |" in md
    assert "| fmnist-smallcnn-pgd_at | 0 | 6 | 4 | 82.0 / 71.0 | 153.0 | +3.0 |  |" in md
    assert "- `fmnist-smallcnn-pgd_at`: **6 epochs** if the next rung agrees (no longer budget beats it, but only 1 " \
           "of the 2 longer budgets asked for have run; *so far*) (4 → 6: +3.0, 6 → 8: +0.5)" in md
    assert "- `fmnist-smallcnn-trades`: **4 epochs** (4 → 6: -1.0, 6 → 8: +1.8)" in md
    assert "- `fmnist-smallcnn-generalist`: **not shown** up to 8 epochs *so far* (4 → 6: +0.5, 6 → 8: +2.0)" in md
    assert "- `fmnist-smallcnn-standard`: **4 epochs** if the next rung agrees" in md
    assert "Next rung to probe: `fmnist-smallcnn-pgd_at` at 12 epochs, `fmnist-smallcnn-standard` at 8 epochs, " \
           "`fmnist-smallcnn-generalist` at 12 epochs." in md
    assert "Shared budget the ladder supports: **not known yet**" in md
    assert "| 2.5 |  | 0 | AMD EPYC |" not in md and "| +2.0 |  | 0 | AMD EPYC |" in md and "| 0 | unknown |" in md
    assert "Trained on 2 kinds of CPU (AMD EPYC, unknown)" in md
    # a run that recorded its instruction set is told apart from another CPU of the same model name
    assert T.cpu_label({"cpu": "AMD EPYC", "cpu_capability": "AVX2", "bf16_native": False}) == \
        "AMD EPYC (AVX2, no bf16 instructions)"
    assert T.cpu_label({"cpu": "AMD EPYC", "cpu_capability": "AVX512", "bf16_native": True}) == \
        "AMD EPYC (AVX512, bf16 instructions)"
    # a probe whose name and length disagree, or of an edited preset, is one clear error
    bad = _probe_run(probes, "standard", [(70, 0)] * 7, criterion="clean")
    bad.parent.rename(probes / "fmnist-smallcnn-standard-e9")
    with pytest.raises(ConfigError, match="named for 9 epochs whose summary says 7"):
        T.render_budget(full, probes)
    shutil.rmtree(probes / "fmnist-smallcnn-standard-e9")
    cfg = json.loads((probes / "fmnist-smallcnn-pgd_at-e6" / "seed0" / "config.json").read_text())
    cfg["train"]["learners"][0]["optim"]["lr"] = 0.01
    (probes / "fmnist-smallcnn-pgd_at-e6" / "seed0" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="another recipe than `fmnist-smallcnn-pgd_at` stretched to 6 epochs"):
        T.render_budget(full, probes)


def test_a_damaged_budget_probe_stops_the_probe_command_before_any_training(tmp_path, monkeypatch):
    from generalist_bench.trainers import trainer as trainer_mod

    monkeypatch.setattr(T, "shared_epochs", lambda method: 4)
    monkeypatch.setattr(T, "PROBE_BASE_EPOCHS", 4)
    full, probes, out = tmp_path / "full", tmp_path / "probes", tmp_path / "docs" / "budget"
    _final_run(full, "fmnist-smallcnn-trades", 0, [(70, 60), (75, 65), (80, 70), (80, 70)])
    d = _probe_run(probes, "trades", [(70, 60), (80, 70.5)] + [(79, 70)] * 4)
    args = ["tune", "--budget-probe", "--full-root", str(full), "--probe-root", str(probes), "--budget-out", str(out),
            "--no-progress"]
    out.parent.mkdir(parents=True)
    out.with_suffix(".md").write_text("the report before")
    (d / "history.jsonl").write_text("")
    monkeypatch.setattr(trainer_mod.Trainer, "__init__", lambda *a, **k: pytest.fail("trained past a damaged probe"))
    assert cli_main(args) == 2
    assert out.with_suffix(".md").read_text() == "the report before"
    with pytest.raises(ConfigError, match="summary says 6 epochs, its history holds 0"):
        T.render_budget(full, probes)


def _tree(root):
    """Every path under ``root`` but lock files (the locks a command takes leave their empty files behind)."""
    return sorted(str(p) for p in root.rglob("*") if not p.name.endswith(".lock"))


def _old_budget_run(full, preset, method, seed, epochs, weights):
    """A finished final run of ``preset`` at an earlier shared budget of ``epochs``: the preset stretched to them."""
    from dataclasses import replace

    from generalist_bench.presets import get_preset

    d = _final_run(full, preset, seed, [(70, 60)] * (epochs - 1) + [(80, 70)])
    cfg = replace(T.probe_config(method, epochs), name=preset, description=get_preset(preset).description)
    (d / "config.json").write_text(json.dumps(cfg.with_overrides({"train.seed": seed}).to_dict()))
    (d / "best.pt").write_bytes(weights)
    return d


def test_adopt_budget_moves_old_final_runs_into_the_ladder_and_makes_the_probe_the_seed0_run(tmp_path):
    from generalist_bench.trainers.trainer import Trainer

    full, probes, out = tmp_path / "full", tmp_path / "probes", tmp_path / "docs" / "budget"
    preset, epochs = "fmnist-smallcnn-pgd_at", T.shared_epochs("pgd_at")  # the presets' current budget
    for seed in (0, 1, 2):  # the old budget: 4 epochs
        _old_budget_run(full, preset, "pgd_at", seed, 4, b"w%d" % seed)
    probe = _probe_run(probes, "pgd_at", [(70, 60)] * (epochs - 1) + [(85, 75)])
    (probe / "best.pt").write_bytes(b"probe")
    std = _final_run(full, "fmnist-smallcnn-standard", 0, [(90, 0)] * epochs, criterion="clean")  # already current
    (std / "config.json").write_text(json.dumps(T._final_config("fmnist-smallcnn-standard", 0).to_dict()))
    before = (std / "config.json").read_text()

    args = ["tune", "--adopt-budget", "--full-root", str(full), "--probe-root", str(probes), "--budget-out", str(out)]
    assert cli_main(args) == 0
    for seed in (0, 1, 2):  # the old budget's runs, weights and all, now in the ladder
        assert (probes / f"{preset}-e4" / f"seed{seed}" / "best.pt").read_bytes() == b"w%d" % seed
    new = full / preset / "seed0"
    assert (new / "best.pt").read_bytes() == b"probe" and not probe.parent.exists()
    assert sorted(p.name for p in (full / preset).iterdir() if p.is_dir()) == ["seed0"]
    want = T._final_config(preset, 0)
    assert json.loads((new / "config.json").read_text()) == want.to_dict()
    assert json.loads((new / "summary.json").read_text())["config_name"] == preset
    # train_and_submit's trainer reopens it as the finished run of its config: nothing to train, no config error
    summary, history = Trainer(want, new, resume=True, progress=False)._finished_record()
    assert summary.epochs == len(history) == epochs
    assert (std / "config.json").read_text() == before
    (row,) = [r for r in T.probe_rows(full, probes) if r["method"] == "pgd_at"]
    assert [a["epochs"] for a in row["ladder"]] == [4, epochs] and row["ladder"][1]["score"] == 160
    md = (tmp_path / "docs" / "budget.md").read_text()
    assert md == T.render_budget(full, probes)
    # the old budget's seed spread stays in the report, on its rung: seeds 1 and 2 moved beside the ladder's seed 0
    assert f"| {preset} | 0 | 4 | 4 | 80.0 / 70.0 | 150.0 | — | 0.0 (3) |" in md
    assert f"| {preset} | 0 | {epochs} (shared budget) | {epochs} | 85.0 / 75.0 | 160.0 | +10.0 |  |" in md
    assert T.adopt_budget(full, probes) == []  # done: a second call changes nothing


def test_the_ladder_and_its_verdict_stay_when_the_shared_budget_moves_onto_a_rung(tmp_path, monkeypatch, capsys):
    """The rungs are fixed epochs (multiples of the tuning budget), not multiples of the shared budget: after
    FMNIST_EPOCHS moves to the budget the ladder supports and --adopt-budget, the same runs give the same verdict, the
    presets' budget reads as long enough, and --budget-probe trains nothing (rungs relative to the shared budget would
    have asked for 1.5× and 2× the new budget and called the verdict *so far* again)."""
    S = T.shared_epochs("pgd_at")  # the presets' budget: one of the rungs below
    monkeypatch.setattr(T, "PROBE_ORDER", ("pgd_at",))
    monkeypatch.setattr(T, "PROBE_BASE_EPOCHS", 4)
    monkeypatch.setattr(T, "PROBE_SCALES", (1.5, S / 4, (S + 4) / 4))  # rungs 6, S, S + 4
    full, probes, out = tmp_path / "full", tmp_path / "probes", tmp_path / "docs" / "budget"
    preset = "fmnist-smallcnn-pgd_at"
    for seed in (0, 1, 2):  # the old shared budget: 4 epochs, score 150
        _old_budget_run(full, preset, "pgd_at", seed, 4, b"w%d" % seed)
    for epochs, top in ((6, (82, 71)), (S, (83, 72)), (S + 4, (83.5, 72))):
        (_probe_run(probes, "pgd_at", [(70, 60)] * (epochs - 1) + [top]) / "best.pt").write_bytes(b"p%d" % epochs)
    verdict = f"- `{preset}`: **{S} epochs** (4 → 6: +3.0, 6 → {S}: +2.0, {S} → {S + 4}: +0.5)"

    before = T.render_budget(full, probes)
    assert verdict in before and T.supported_budget(T.probe_rows(full, probes)) == S
    assert f"Shared budget the ladder supports: **{S} epochs** (the longest of the methods' long-enough budgets), " \
           "against the presets' 4 epochs: too short, the presets' budget should grow to it." in before
    assert T.adopt_budget(full, probes)  # the presets train S epochs: the 4-epoch runs join the ladder
    (row,) = T.probe_rows(full, probes)
    assert [a["epochs"] for a in row["ladder"]] == [4, 6, S, S + 4] and row["shared"] == S
    assert row["enough_at"] == S and row["complete"] and row["next"] is None
    after = T.render_budget(full, probes)
    assert verdict in after and "Next rung" not in after
    assert f"Shared budget the ladder supports: **{S} epochs** (the longest of the methods' long-enough budgets), " \
           f"against the presets' {S} epochs: long enough." in after
    monkeypatch.setattr(T, "run_probe", lambda *a, **k: pytest.fail("trained a rung after the budget moved"))
    args = ["tune", "--budget-probe", "--full-root", str(full), "--probe-root", str(probes), "--budget-out", str(out),
            "--no-progress"]
    assert cli_main(args) == 0
    assert out.with_suffix(".md").read_text() == after


def test_adopt_budget_refuses_before_moving_anything(tmp_path):
    full, probes = tmp_path / "full", tmp_path / "probes"
    preset = "fmnist-smallcnn-trades"
    seed0 = _old_budget_run(full, preset, "trades", 0, 4, b"w0")
    # a run directory another process holds: a trainer's lock, a train_and_submit's lock
    from generalist_bench.errors import GeneralistBenchError
    from generalist_bench.utils.io import file_lock

    for lock, what in ((seed0 / ".run.lock", "training process"), (seed0.parent / ".submit-seed0.lock",
                                                                    "train_and_submit")):
        with file_lock(lock), pytest.raises(GeneralistBenchError, match=f"in use by a {what}"):
            T.adopt_budget(full, probes)
        assert (seed0 / "best.pt").read_bytes() == b"w0" and not probes.exists()
    snapshot = _tree(tmp_path)
    # a run of the old budget still training
    running = full / preset / "seed1"
    running.mkdir()
    (running / "config.json").write_text((seed0 / "config.json").read_text())
    (running / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="still training"):
        T.adopt_budget(full, probes)
    shutil.rmtree(running)
    assert _tree(tmp_path) == snapshot
    # a destination already taken
    (probes / f"{preset}-e4" / "seed0").mkdir(parents=True)
    taken = _tree(tmp_path)
    with pytest.raises(ConfigError, match="which exists"):
        T.adopt_budget(full, probes)
    assert _tree(tmp_path) == taken
    shutil.rmtree(probes)
    # a probe at the new budget of another recipe
    probe = _probe_run(probes, "trades", [(70, 60)] * T.shared_epochs("trades"))
    cfg = json.loads((probe / "config.json").read_text())
    cfg["train"]["learners"][0]["optim"]["lr"] = 0.01
    (probe / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="another recipe"):
        T.adopt_budget(full, probes)
    assert (seed0 / "best.pt").read_bytes() == b"w0" and probe.is_dir()
    # a probe at the new budget that train_and_submit could not reopen (no best.pt; a checkpoint.pt left behind)
    (probe / "config.json").write_text(json.dumps(T.probe_config("trades", T.shared_epochs("trades")).to_dict()))
    for damage in ("no best.pt", "checkpoint.pt"):
        if damage == "checkpoint.pt":
            (probe / "best.pt").write_bytes(b"probe")
            (probe / "checkpoint.pt").write_bytes(b"x")
        with pytest.raises(ConfigError, match="needs best.pt and no checkpoint.pt"):
            T.adopt_budget(full, probes)
        assert (seed0 / "best.pt").read_bytes() == b"w0" and probe.is_dir()


def test_adopt_budget_finishes_an_interrupted_promotion_and_leaves_a_probe_when_seed0_is_current(tmp_path, capsys):
    full, probes = tmp_path / "full", tmp_path / "probes"
    preset, epochs = "fmnist-smallcnn-generalist", T.shared_epochs("generalist")
    _old_budget_run(full, preset, "generalist", 0, 4, b"w0")
    probe = _probe_run(probes, "generalist", [(80, 70)] * epochs)
    (probe / "best.pt").write_bytes(b"probe")
    # interrupted after the probe's config was renamed in place, before the move
    (probe / "config.json").write_text(json.dumps(T._final_config(preset, 0).to_dict()))
    T.adopt_budget(full, probes)
    assert (full / preset / "seed0" / "best.pt").read_bytes() == b"probe"
    assert json.loads((full / preset / "seed0" / "config.json").read_text()) == T._final_config(preset, 0).to_dict()
    # seed 0 already at the current budget and another finished probe of it: the probe stays, and the call says so
    probe = _probe_run(probes, "generalist", [(81, 70)] * epochs)
    (probe / "best.pt").write_bytes(b"probe2")
    assert T.adopt_budget(full, probes) == []
    assert (probe / "best.pt").read_bytes() == b"probe2"
    assert (full / preset / "seed0" / "best.pt").read_bytes() == b"probe"
    assert "left in place" in capsys.readouterr().err


def test_a_gain_of_exactly_one_point_is_not_flat_despite_float_residue(tmp_path, monkeypatch):
    """86.9 + 70.7 is 157.60000000000002 in floats: 87.0 + 71.6 beats it by 0.99999…; the rule says 1 point or more,
    and the report prints +1.0, so it must count as a gain (the TRADES 15 → 20 epoch probe was exactly this)."""
    assert 87.0 + 71.6 - (86.9 + 70.7) < T.FLAT_TOL  # the residue this test is about
    monkeypatch.setattr(T, "shared_epochs", lambda method: 4)
    monkeypatch.setattr(T, "PROBE_BASE_EPOCHS", 4)
    full, probes = tmp_path / "full", tmp_path / "probes"
    _final_run(full, "fmnist-smallcnn-trades", 0, [(70, 60), (75, 65), (80, 70), (86.9, 70.7)])
    _probe_run(probes, "trades", [(70, 60)] * 5 + [(87.0, 71.6)])
    (row,) = T.probe_rows(full, probes)
    assert row["ladder"][1]["gain"] == 1.0 and row["enough_at"] is None and row["next"] == 8
    # the within-run check: the last 3 epochs add exactly 1 point over the best before them
    _final_run(full, "p-trades", 0, [(80, 70), (86.9, 70.7), (85, 70), (86, 70), (87.0, 71.6)])
    (r,) = [r for r in T.budget_rows(full) if r["preset"] == "p-trades"]
    assert r["gain"] == 1.0 and not r["flat"]


def test_a_probe_in_progress_resumes_under_its_own_description(tmp_path, monkeypatch):
    """Nothing in a probe's config depends on the shared budget (its description once named the scale, which
    changes with FMNIST_EPOCHS); a probe started under the old description resumes under it, a probe of another
    recipe is handed to the trainer as the current probe config, whose resume check refuses it."""
    from dataclasses import replace

    from generalist_bench.trainers import trainer as trainer_mod

    want = T.probe_config("pgd_at", 30)
    assert "x the shared budget" not in want.description and "30 epochs" in want.description
    seen = []
    monkeypatch.setattr(trainer_mod.Trainer, "__init__", lambda self, cfg, d, **k: seen.append(cfg))
    monkeypatch.setattr(trainer_mod.Trainer, "run", lambda self: None)
    d = T.probe_dir("pgd_at", 30, tmp_path)
    d.mkdir(parents=True)
    old = replace(want, description="budget probe: fmnist-smallcnn-pgd_at at 30 epochs (3x the shared budget), "
                                    "validation only")
    (d / "config.json").write_text(json.dumps(old.to_dict()))
    T.run_probe("pgd_at", 30, tmp_path, progress=False)
    other = old.with_overrides({"train.learners.0.optim.lr": 0.01})
    (d / "config.json").write_text(json.dumps(other.to_dict()))
    T.run_probe("pgd_at", 30, tmp_path, progress=False)
    assert seen == [old, want]
