"""A short real Fashion-MNIST run (a subset): PGD-AT must beat standard training on PGD accuracy, and
Generalist's global learner must be more accurate on clean data than PGD-AT — the paper's claim in
miniature. This is CI's guard against regressions of robust accuracy in the trainers."""

from __future__ import annotations

import pytest
import torch

from generalist_bench.presets import get_preset
from generalist_bench.trainers import Trainer
from generalist_bench.trainers.validation import validate

# under pytest-xdist every test of this module runs in one worker, which trains the module fixture once
pytestmark = pytest.mark.xdist_group("training_regression")

COMMON = ["data.train_subset=4000", "train.epochs=6", "train.batch_size=128", "train.selection.n_val=200",
          "train.selection.attack_steps=5", "train.selection.criterion=last",
          # fp32, as when these margins were set (the presets now train in bf16 + channels_last)
          "train.amp=off", "train.channels_last=false"]
# A flat lr for every trainer: with the paper's decaying schedule squeezed into 6 epochs the natural learner
# cannot move after its first redistribution, and the comparison would test the schedule, not the method.
FLAT_LR = [[0.0, 1.0], [1.0, 1.0]]


def _attack(cfg, i: int):
    return [f"train.learners.{i}.attack.steps=5", f"train.learners.{i}.attack.step_size=0.04"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fmnist_test):
    out = {}
    for trainer in ("standard", "pgd_at", "generalist"):
        cfg = get_preset(f"fmnist-smallcnn-{trainer}").with_overrides(COMMON)
        for i in range(len(cfg.train.learners)):
            cfg = cfg.with_overrides(_attack(cfg, i)).with_overrides({f"train.learners.{i}.optim.lr_schedule": FLAT_LR})
        if trainer == "generalist":
            # redistribution at the ends of epochs 4, 5, 6; the natural learner's weight leaves 0 in epoch 5
            cfg = cfg.with_overrides(["train.merge.warmup_epochs=3", "train.merge.redistribute_every=1"])
            # the paper's mixing schedule (γ_adv → 0.4, γ_nat → 0.6), not the tuned preset's γ_nat → 0.4: this is a
            # test of the mechanism (mixing in the natural learner raises clean accuracy), while whether the tuned
            # recipe beats PGD-AT at the full budget is the leaderboard's question
            cfg = cfg.with_overrides({"train.learners.0.mix_schedule": [[0.0, 0.0], [2 / 3, 0.0], [1.0, 0.6]],
                                      "train.learners.1.mix_schedule": [[0.0, 1.0], [2 / 3, 1.0], [1.0, 0.4]]})
        res = Trainer(cfg.validate(), tmp_path_factory.mktemp(trainer), progress=False).run()
        torch.manual_seed(0)
        out[trainer] = validate(res.model, fmnist_test.x[:1000], fmnist_test.y[:1000], eps=0.1, norm="Linf",
                                steps=20, seed=0)
    return out


def test_pgd_at_beats_standard_on_pgd_accuracy(trained):
    assert trained["pgd_at"]["val_robust"] > trained["standard"]["val_robust"] + 10.0, trained


def test_generalist_global_learner_is_cleaner_than_pgd_at(trained):
    assert trained["generalist"]["val_clean"] > trained["pgd_at"]["val_clean"], trained
    # and it keeps robustness that standard training does not have
    assert trained["generalist"]["val_robust"] > trained["standard"]["val_robust"] + 10.0, trained
