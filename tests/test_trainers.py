"""Trainers: attacks stay in the threat model, the Generalist merge equals its formula, schedules and
redistribution happen where configured, resume is bit-identical, and bad input fails clearly."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from generalist_bench.attacks import PGD
from generalist_bench.config import MergeConfig, interp_schedule
from generalist_bench.errors import CheckpointError, ConfigError, TrainingDivergedError, UnknownNameError
from generalist_bench.presets import get_preset
from generalist_bench.trainers import GlobalLearner, Trainer, mixing_weights, naive_merge, redistribution_epochs
from generalist_bench.trainers import trainer as trainer_mod
from generalist_bench.trainers.augment import crop, flip
from generalist_bench.trainers.generalist import epoch_redistributes, iteration_redistributes

TINY = ["data.train_subset=256", "train.batch_size=64", "train.selection.n_val=64",
        "train.selection.attack_steps=2"]


def tiny(preset: str, *extra: str):
    cfg = get_preset(preset).with_overrides([*TINY, *extra])
    # cheap inner maximisation for every learner
    for i, _ in enumerate(cfg.train.learners):
        cfg = cfg.with_overrides([f"train.learners.{i}.attack.steps=2", f"train.learners.{i}.attack.step_size=0.05"])
    return cfg.validate()


# ---------------------------------------------------------------------------------------------- attacks
@pytest.mark.parametrize("norm,eps,loss,start", [("Linf", 0.1, "ce", "uniform"), ("L2", 1.0, "ce", "uniform"),
                                                 ("Linf", 0.1, "kl", "normal"), ("Linf", 0.1, "cw", "uniform")])
def test_attack_examples_stay_in_ball_and_box(clean_small_cnn, fmnist_test, norm, eps, loss, start):
    x, y = fmnist_test.x[:64], fmnist_test.y[:64]
    x_adv = PGD(eps=eps, steps=5, step_size=eps / 3, norm=norm, start=start, loss=loss)(clean_small_cnn, x, y)
    d = (x_adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "Linf" else d.norm(dim=1)
    assert (size <= eps + 1e-5).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (size > 0).any()


def test_attack_restores_model_mode(clean_small_cnn, fmnist_test):
    m = copy.deepcopy(clean_small_cnn).train()
    PGD(eps=0.1, steps=1, bn_mode="eval")(m, fmnist_test.x[:4], fmnist_test.y[:4])
    assert all(mod.training for mod in m.modules())


def test_pgd_at_objective_beats_clean_on_loss(clean_small_cnn, fmnist_test):
    from generalist_bench.config import AttackConfig, ThreatModel
    from generalist_bench.trainers.objectives import PGDAT, Standard, build_attack

    m = copy.deepcopy(clean_small_cnn)
    x, y = fmnist_test.x[:128], fmnist_test.y[:128]
    clean = Standard()(m, m, x, y)["loss"]
    adv = PGDAT(build_attack(AttackConfig(steps=5, step_size=0.03), ThreatModel("Linf", 0.1)))(m, m, x, y)["loss"]
    assert adv > clean


def test_augmentations_are_batched_and_shape_preserving():
    x = torch.rand(8, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    out = crop(x, 4, g)
    assert out.shape == x.shape
    fl = flip(x, torch.Generator().manual_seed(1))
    assert all(torch.equal(fl[i], x[i]) or torch.equal(fl[i], x[i].flip(2)) for i in range(8))


# ------------------------------------------------------------------------------------------- the merge
class TinyBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


@pytest.mark.parametrize("mode", ["per_learner", "mixed"])
def test_merge_equals_naive_formula(mode):
    torch.manual_seed(0)
    template = TinyBN()
    learners = [copy.deepcopy(template) for _ in range(3)]
    glob = GlobalLearner(template, 3, MergeConfig(ema_mode=mode, ema_decay=0.9))
    ref_global = {k: v.clone() for k, v in template.state_dict().items()}
    ref_emas = [{k: v.clone() for k, v in template.state_dict().items()} for _ in range(3)]
    gammas = [0.5, 0.3, 0.2]
    for step in range(6):
        for ln in learners:  # perturb weights and BN statistics as training would
            ln.train()(torch.randn(4, 1, 6, 6))
            with torch.no_grad():
                for p in ln.parameters():
                    p.add_(0.1 * torch.randn_like(p))
        d = min(0.9, (step + 1) / (step + 10))
        assert glob.decay() == pytest.approx(d)
        glob.update(learners, gammas)
        states = [ln.state_dict() for ln in learners]
        if mode == "per_learner":
            ref_emas = [naive_merge(e, [s], [1.0], d) for e, s in zip(ref_emas, states, strict=True)]
            sources = ref_emas
        else:
            sources = states
        ref_global = naive_merge(ref_global, sources, gammas, d)
        for k, v in glob.model.state_dict().items():
            assert torch.allclose(v.float(), ref_global[k].float(), atol=1e-6), k
    assert glob.step == 6


def test_redistribute_copies_weights_and_buffers_and_optionally_resets_optimizer():
    torch.manual_seed(0)
    template = TinyBN()
    learners = [copy.deepcopy(template) for _ in range(2)]
    opts = [torch.optim.SGD(ln.parameters(), lr=0.1, momentum=0.9) for ln in learners]
    for ln, opt in zip(learners, opts, strict=True):
        ln.train()
        ln(torch.randn(4, 1, 6, 6)).sum().backward()
        opt.step()
    glob = GlobalLearner(template, 2, MergeConfig(reset_optimizer=True))
    glob.update(learners, [0.5, 0.5])
    glob.redistribute(learners, opts)
    for ln in learners:
        for (k, a), b in zip(ln.state_dict().items(), glob.model.state_dict().values(), strict=True):
            assert torch.equal(a, b), k
    assert all(len(o.state) == 0 for o in opts)


def test_mixing_schedule_reference_values():
    cfg = get_preset("cifar10-resnet18-generalist")  # the paper's schedule; natural first, adversarial second
    ln = cfg.train.learners
    assert [x.name for x in ln] == ["natural", "adversarial"]
    E = 120
    for epoch, adv in [(1, 1.0), (40, 1.0), (80, 1.0), (100, 0.7), (120, 0.4)]:
        nat_w, adv_w = mixing_weights(ln, epoch, E)
        assert adv_w == pytest.approx(adv) and nat_w + adv_w == pytest.approx(1.0)
    assert interp_schedule(((0, 1.0), (2 / 3, 1.0), (1, 0.4)), 5 / 6) == pytest.approx(0.7)


def test_three_learner_weights_sum_to_one():
    from generalist_bench.config import LearnerConfig

    lns = (LearnerConfig(name="a", mix_schedule=((0, 2.0), (1, 2.0))),
           LearnerConfig(name="b", mix_schedule=((0, 1.0), (1, 0.0))), LearnerConfig(name="c"))
    for e in (1, 5, 10):
        w = mixing_weights(lns, e, 10)
        assert sum(w) == pytest.approx(1.0) and min(w) >= 0


def test_redistribution_schedules():
    m = MergeConfig(redistribute="epoch", warmup_epochs=75, redistribute_every=5)
    assert redistribution_epochs(m, 120) == list(range(80, 121, 5))
    ref = MergeConfig(redistribute="reference")
    assert redistribution_epochs(ref, 120) == list(range(75, 121, 5))  # the published `epoch >= 75 and % 5`
    assert all(iteration_redistributes(ref, e, 120) for e in range(75, 121, 5))
    assert not any(epoch_redistributes(ref, e, 120) for e in range(1, 121))
    assert redistribution_epochs(MergeConfig(redistribute="never"), 120) == []
    assert redistribution_epochs(MergeConfig(warmup_epochs=2, redistribute_every=2), 6) == [4, 6]


def test_engine_redistributes_exactly_at_configured_epochs(tmp_path, monkeypatch):
    calls = []
    orig = GlobalLearner.redistribute
    current = {}

    def spy(self, learners, optimizers=None):
        calls.append(current["epoch"])
        return orig(self, learners, optimizers)

    orig_epoch = Trainer._train_epoch

    def track(self, epoch):
        current["epoch"] = epoch
        return orig_epoch(self, epoch)

    monkeypatch.setattr(GlobalLearner, "redistribute", spy)
    monkeypatch.setattr(Trainer, "_train_epoch", track)
    cfg = tiny("fmnist-smallcnn-generalist", "train.epochs=5", "train.merge.warmup_epochs=1",
               "train.merge.redistribute_every=2", "train.selection.every=5")
    res = Trainer(cfg, tmp_path / "a", progress=False).run()
    assert calls == [3, 5]
    assert [h["redistributed"] for h in res.history] == [False, False, True, False, True]

    calls.clear()
    cfg = tiny("fmnist-smallcnn-generalist-reference", "train.epochs=3", "train.selection.every=3")
    # E=3: start round(1.875)=2, period max(1, round(0.125))=1 → every iteration of epochs 2 and 3
    Trainer(cfg, tmp_path / "b", progress=False).run()
    n_batches = 256 // 64
    assert calls == [2] * n_batches + [3] * n_batches


# --------------------------------------------------------------------------------------- Trainer
def _states_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_after_kill_is_bit_identical(tmp_path, monkeypatch):
    cfg = tiny("fmnist-smallcnn-generalist", "train.epochs=3", "train.merge.warmup_epochs=1",
               "train.merge.redistribute_every=1")
    full = Trainer(cfg, tmp_path / "full", progress=False).run()

    orig = Trainer._train_epoch

    def killed(self, epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return orig(self, epoch)

    monkeypatch.setattr(Trainer, "_train_epoch", killed)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "part", progress=False).run()
    ck = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 2
    monkeypatch.setattr(Trainer, "_train_epoch", orig)
    with pytest.raises(ConfigError, match="--resume"):
        Trainer(cfg, tmp_path / "part", progress=False).run()
    # the thread count is speed, not recipe: a run resumes under an explicit one (here the current count, so the
    # arithmetic, and the bit-identity checked below, stay those of the uninterrupted run)
    threads = f"train.num_threads={torch.get_num_threads()}"
    resumed = Trainer(cfg.with_overrides([threads]), tmp_path / "part", resume=True, progress=False).run()
    assert _states_equal(full.final_model, resumed.final_model)
    assert _states_equal(full.model, resumed.model)
    assert [h["val_clean"] for h in full.history] == [h["val_clean"] for h in resumed.history]
    # resuming with another config is refused
    with pytest.raises(ConfigError, match="different config"):
        Trainer(cfg.with_overrides(["train.seed=1"]), tmp_path / "part", resume=True, progress=False).run()


def test_a_finished_run_without_its_checkpoint_is_reopened_not_retrained(tmp_path, monkeypatch):
    """A finished run keeps best.pt, config, history and summary; resuming it without checkpoint.pt trains nothing
    and returns the same selected model and summary. Another config there is refused; an unfinished run without a
    checkpoint trains from the start."""
    cfg = tiny("fmnist-smallcnn-pgd_at", "train.epochs=2")
    run = tmp_path / "run"
    first = Trainer(cfg, run, progress=False).run()
    summary = (run / "summary.json").read_text()
    (run / "checkpoint.pt").unlink()

    def no_training(self, epoch):
        raise AssertionError("a finished run was retrained")

    monkeypatch.setattr(Trainer, "_train_epoch", no_training)
    again = Trainer(cfg, run, resume=True, progress=False).run()
    assert _states_equal(first.model, again.model) and again.final_model is None
    from generalist_bench.utils.io import read_jsonl

    assert again.history == read_jsonl(run / "history.jsonl") and len(again.history) == 2
    assert again.summary.to_dict() == first.summary.to_dict() and (run / "summary.json").read_text() == summary
    assert not (run / "checkpoint.pt").exists()
    # a config naming a thread count is the same run (speed only): reopened, not refused, not retrained. The count
    # is the current one, so that the trainer's torch.set_num_threads leaves this test process as it was
    threads = Trainer(cfg.with_overrides([f"train.num_threads={torch.get_num_threads()}"]), run, resume=True,
                      progress=False).run()
    assert _states_equal(first.model, threads.model) and threads.summary.to_dict() == first.summary.to_dict()
    with pytest.raises(ConfigError, match="finished run of a different config"):
        Trainer(cfg.with_overrides(["train.seed=1"]), run, resume=True, progress=False).run()
    for damaged, text in (("summary.json", '{"epochs": "2"'), ("history.jsonl", '{"epoch": 1}\n')):
        good = (run / damaged).read_text()
        (run / damaged).write_text(text)  # damaged: an error naming the run, not a retraining over its best.pt
        with pytest.raises(CheckpointError, match="finished run|do not cover"):
            Trainer(cfg, run, resume=True, progress=False).run()
        (run / damaged).write_text(good)
    (run / "summary.json").unlink()  # no record of a finished run: it trains from the start
    with pytest.raises(AssertionError, match="retrained"):
        Trainer(cfg, run, resume=True, progress=False).run()


def test_outputs_record_selection_on_validation_split(tmp_path):
    res = Trainer(tiny("fmnist-smallcnn-trades", "train.epochs=2"), tmp_path, progress=False).run()
    s = res.summary
    assert s.selection.split == "val" and s.selection.criterion == "clean+robust"
    assert s.selection.chosen_epoch in (1, 2)
    from generalist_bench.trainers.summary import TrainSummary

    assert TrainSummary.load(tmp_path / "summary.json") == s  # the file round-trips to the same typed summary
    for name in ("config.json", "checkpoint.pt", "best.pt", "history.jsonl", "summary.json"):
        assert (tmp_path / name).is_file()
    rec = res.history[-1]
    for key in ("lr", "train", "val_clean", "val_robust", "img_per_s", "train_seconds"):
        assert key in rec
    assert {"trades/loss", "trades/natural", "trades/robust_kl"} <= set(rec["train"])


def test_nonfinite_loss_stops_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    cfg = tiny("fmnist-smallcnn-pgd_at", "train.epochs=2")
    from generalist_bench.trainers import objectives

    orig = objectives.PGDAT.__call__
    state = {"epoch": 0}
    orig_epoch = Trainer._train_epoch

    def track(self, epoch):
        state["epoch"] = epoch
        return orig_epoch(self, epoch)

    def nan_in_epoch2(self, *a, **k):
        out = orig(self, *a, **k)
        if state["epoch"] == 2:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(Trainer, "_train_epoch", track)
    monkeypatch.setattr(objectives.PGDAT, "__call__", nan_in_epoch2)
    with pytest.raises(TrainingDivergedError, match="non-finite"):
        Trainer(cfg, tmp_path, progress=False).run()
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 1


@pytest.mark.parametrize("override,exc", [("train.trainer=nope", UnknownNameError),
                                          ("model.arch=nope", UnknownNameError),
                                          ("threat.eps=1.5", ConfigError),
                                          ("train.learners.0.attack.steps=-1", ConfigError)])
def test_bad_config_is_refused(override, exc):
    with pytest.raises(exc):
        get_preset("fmnist-smallcnn-pgd_at").with_overrides([override]).validate()


def test_train_api_and_callable_module(tmp_path):
    import generalist_bench
    import generalist_bench.train as train_module

    res = generalist_bench.train("fmnist-smallcnn-standard", out_dir=tmp_path / "a", epochs=1, train_subset=256,
                                 n_val=64, progress=False)
    assert res.checkpoint_path.is_file() and res.history[0]["epoch"] == 1
    res2 = train_module("fmnist-smallcnn-standard", out_dir=tmp_path / "b", epochs=1, train_subset=256, n_val=64,
                        progress=False)
    assert _states_equal(res.model, res2.model)  # same seed, same data → same weights


def test_bf16_autocast_runs(tmp_path):
    res = Trainer(tiny("fmnist-smallcnn-pgd_at", "train.epochs=1", "train.amp=bf16", "train.channels_last=true"),
                 tmp_path, progress=False).run()
    assert res.history[0]["train"]["pgd_at/loss"] > 0


def test_bf16_on_a_cpu_without_bfloat16_instructions_runs_float32_kernels_and_says_so_once(tmp_path, monkeypatch,
                                                                                         caplog):
    """bf16 autocast on a CPU without bfloat16 instructions: every product of training (forward, the attack's
    backward, the training backward) reaches its kernel in float32 (trainers/amp.py), training notes it once and every
    epoch's record names the kernels; PyTorch's own kernels forced by GENERALIST_BENCH_BF16_KERNELS=native run bfloat16
    products and are one warning (slow); a CPU with bfloat16 instructions records "native" and says nothing; float32
    training records nothing; reopening a finished run says nothing; a bad variable fails before any work."""
    import logging

    from torch.utils._python_dispatch import TorchDispatchMode

    from generalist_bench.trainers import amp

    class Products(TorchDispatchMode):  # below the trainer's mode: the dtypes products reach their kernels with
        def __init__(self):
            super().__init__()
            self.dtypes = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in amp.PRODUCTS:
                self.dtypes |= {a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()}
            return func(*args, **(kwargs or {}))

    cfg = tiny("fmnist-smallcnn-pgd_at", "train.epochs=1", "train.amp=bf16", "train.selection.n_val=16")
    caplog.set_level(logging.INFO, logger="generalist_bench.train")
    monkeypatch.delenv(amp.BF16_KERNELS_ENV, raising=False)
    bf16, fp32 = torch.bfloat16, torch.float32
    cases = ((False, "bf16", None, "float32", logging.INFO, {fp32}),
             (False, "bf16", "native", "native", logging.WARNING, {bf16, fp32}),  # validation runs in float32
             (True, "bf16", None, "native", None, {bf16, fp32}), (False, "off", None, None, None, {fp32}))
    for native, amp_mode, env, kernels, level, dtypes in cases:
        monkeypatch.setattr(amp, "bf16_native", lambda native=native: native)
        if env:
            monkeypatch.setenv(amp.BF16_KERNELS_ENV, env)
        caplog.clear()
        run = tmp_path / f"{native}-{amp_mode}-{env}"
        with Products() as seen:
            res = Trainer(cfg.with_overrides([f"train.amp={amp_mode}"]), run, progress=False).run()
        monkeypatch.delenv(amp.BF16_KERNELS_ENV, raising=False)
        case = (native, amp_mode, env)
        assert res.summary.epochs == 1 and res.history[0].get("bf16_kernels") == kernels, case
        assert seen.dtypes == dtypes, case
        msgs = [r for r in caplog.records if "bfloat16 instructions" in r.getMessage()]
        assert [r.levelno for r in msgs] == ([level] if level else []), case
        if level == logging.INFO:
            assert "float32 kernels" in msgs[0].getMessage() and "=native" in msgs[0].getMessage()
        if level == logging.WARNING:
            assert "slower than float32" in msgs[0].getMessage()
    monkeypatch.setattr(amp, "bf16_native", lambda: False)
    run = tmp_path / "False-bf16-None"
    for keep_checkpoint in (True, False):  # a finished run reopened, with its checkpoint or without: nothing trained
        if not keep_checkpoint:
            (run / "checkpoint.pt").unlink()
        caplog.clear()
        Trainer(cfg, run, resume=True, progress=False).run()
        assert not [r for r in caplog.records if "bfloat16 instructions" in r.getMessage()], keep_checkpoint
    monkeypatch.setenv(amp.BF16_KERNELS_ENV, "fp32")
    with pytest.raises(ConfigError, match="GENERALIST_BENCH_BF16_KERNELS='fp32'; valid: auto, native, float32"):
        Trainer(cfg, tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


def test_epoch_seed_streams_differ():
    assert trainer_mod.epoch_seed(0, 1, 0) != trainer_mod.epoch_seed(0, 1, 1) != trainer_mod.epoch_seed(0, 2, 1)


@pytest.mark.parametrize("preset", ["cifar10-resnet18-generalist", "cifar10-wrn34-generalist",
                                    "fmnist-smallcnn-generalist"])
def test_presets_redistribute_before_the_natural_learner_is_mixed_in(preset):
    cfg = get_preset(preset)
    E, merge, learners = cfg.train.epochs, cfg.train.merge, cfg.train.learners
    epochs = redistribution_epochs(merge, E)
    first_mixed = min(e for e in range(1, E + 1) if mixing_weights(learners, e, E)[0] > 0)
    assert epochs and epochs[0] < first_mixed
    if preset.startswith("cifar10"):
        assert epochs == list(range(75, 121, 5))  # the reference's epochs, at their boundaries


def test_multinorm_generalist_trains_from_the_config_file_alone(tmp_path):
    from pathlib import Path

    from generalist_bench.presets import resolve_config

    path = Path(__file__).resolve().parents[1] / "configs" / "fmnist-multinorm-generalist.toml"
    cfg = resolve_config(path, [*TINY, "train.epochs=2", "train.merge.warmup_epochs=1",
                                "train.merge.redistribute_every=1"]  # the preset's c follows the shared budget
                         + [f"train.learners.{i}.attack.steps=1" for i in (1, 2)])
    assert [(ln.name, ln.attack.norm) for ln in cfg.train.learners] == [("natural", None), ("linf", "Linf"),
                                                                          ("l2", "L2")]
    res = Trainer(cfg, tmp_path, progress=False).run()
    last = res.history[-1]
    assert set(last["gamma"]) == {"natural", "linf", "l2"} and sum(last["gamma"].values()) == pytest.approx(1.0)
    assert {"natural/loss", "linf/loss", "l2/loss"} <= set(last["train"])
    assert [h["redistributed"] for h in res.history] == [False, True]


def test_reopening_a_finished_run_keeps_the_training_sessions_machine(tmp_path):
    """Publishing a finished run resumes it without training: the summary keeps the hardware, versions and
    commit of the session that trained it (a reopening process may use another thread count)."""
    import json

    cfg = tiny("fmnist-smallcnn-pgd_at", "train.epochs=1")
    Trainer(cfg, tmp_path, progress=False).run()
    path = tmp_path / "summary.json"
    s = json.loads(path.read_text())
    s["hardware"]["torch_threads"], s["commit"] = 77, "trained-here"
    path.write_text(json.dumps(s))
    again = Trainer(cfg, tmp_path, resume=True, progress=False).run()
    assert again.summary.hardware["torch_threads"] == 77 and again.summary.commit == "trained-here"
    assert json.loads(path.read_text())["commit"] == "trained-here"


def test_a_damaged_summary_is_one_clear_error(tmp_path):
    """summary.json is a typed hand-off: a missing or ill-typed field is named, not a KeyError downstream."""
    import json

    from generalist_bench.trainers.summary import SummaryError, TrainSummary

    cfg = tiny("fmnist-smallcnn-standard", "train.epochs=1")
    Trainer(cfg, tmp_path, progress=False).run()
    path = tmp_path / "summary.json"
    good = json.loads(path.read_text())
    for change, match in (({"epochs": "1"}, "field 'epochs' must be an integer"),
                          ({"selection": {**good["selection"], "n_val": 1.5}}, "field 'selection.n_val'"),
                          ({"surprise": 1}, "unknown field"),
                          ({"selection": {k: v for k, v in good["selection"].items() if k != "split"}},
                           "missing field.*selection.split")):
        path.write_text(json.dumps({**good, **change}))
        with pytest.raises(SummaryError, match=match):
            TrainSummary.load(path)
    path.write_text("{not json")
    with pytest.raises(SummaryError, match="not valid JSON"):
        TrainSummary.load(path)


def test_train_device_auto_is_cuda_where_available(monkeypatch):
    """``train.device=auto``: CUDA where available, else the CPU (trainer and the quick profile's precision rule read it
    through ``utils.env.resolve_device``); a named device is kept."""
    from generalist_bench.utils.env import resolve_device

    for available, want in ((False, "cpu"), (True, "cuda")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda available=available: available)
        assert resolve_device("auto") == torch.device(want)
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device("cuda:1") == torch.device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    trainer = Trainer(tiny("fmnist-smallcnn-standard", "train.device=auto"), "/nonexistent/x")
    assert trainer.device == torch.device("cpu")
