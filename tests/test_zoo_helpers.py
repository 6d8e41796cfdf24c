"""Helpers shared by the zoo / leaderboard / robustbench tests: realistic fabricated cards, built through the
public API (``make_card`` on a real preset, evaluation dicts shaped like ``EvalResult.to_dict()``).

Accuracies are exact counts over n (k/n), fixed dates, versions, commit and hardware, so outputs are
deterministic. They are test data only: nothing here is written to the real model_zoo/ or leaderboard/.
"""

from __future__ import annotations

import torch

from generalist_bench.presets import get_preset
from generalist_bench.trainers.summary import Selection, TrainSummary
from generalist_bench.zoo.card import ModelCard, Provenance, Work, make_card

VERSIONS = {"generalist-bench": "0.1.0", "torch": "2.14.1", "torchvision": "0.29.1", "torchattacks": "3.5.1",
            "pyautoattack": "0.2.0", "robustbench": "1.1.1", "numpy": "2.4.6", "python": "3.11.7"}
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CPU = {"cpu": "AMD EPYC 7B13", "cpu_count": 2, "torch_threads": 2, "cuda": False}
GPU = {"cpu": "Intel Xeon", "cpu_count": 8, "torch_threads": 8, "cuda": True, "gpu": "NVIDIA A100-SXM4-40GB"}
AA_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")


def pct(k: int, n: int) -> float:
    return 100.0 * k / n


def eval_result(dataset: str, eps: float, n: int, clean_k: int, per_attack_k: dict[str, int], *,
                suite: str = "autoattack", seed: int = 0) -> dict:
    """Shaped like ``EvalResult.to_dict()``; robust accuracy = the smallest per-attack count."""
    if suite == "autoattack":  # cumulative, one protocol entry for the whole standard AutoAttack
        attacks = [{"name": "autoattack", "params": {"version": "standard", "components": list(per_attack_k)}}]
        mode = "cumulative"
    else:
        attacks = [{"name": a, "params": {"steps": 20}} for a in per_attack_k]
        mode = "individual"
    return {
        "protocol": {"suite": suite, "mode": mode, "dataset": dataset, "split": "test", "index_rule": "first_n",
                     "sample_seed": None, "n_examples": n, "norm": "Linf", "eps": eps, "attacks": attacks,
                     "seed": seed, "batch_size": 500, "device": "cpu", "versions": VERSIONS, "git_commit": COMMIT},
        "clean_acc": pct(clean_k, n),
        "robust_acc": pct(min(per_attack_k.values()), n),
        "per_attack": {a: pct(k, n) for a, k in per_attack_k.items()},
        "per_attack_mode": mode,
        "n_examples": n,
        "sanity": {"ok": True, "violations": []},
        "wall_time_s": 123.0,
        "format": "generalist_bench.eval_result/1",
    }


# training-split sizes after the presets' 5,000 validation images are held out
N_TRAIN = {"fashion_mnist": 55_000, "cifar10": 45_000, "cifar100": 45_000}


def training(cfg, chosen_epoch: int | None, wall: float | None, hardware: dict) -> TrainSummary:
    """The summary of a (fabricated) training run of ``cfg``: what a card takes from it."""
    return TrainSummary(config_name=cfg.name, trainer=cfg.train.trainer, epochs=cfg.train.epochs, seed=cfg.train.seed,
                        selection=Selection("val", cfg.train.selection.criterion, cfg.train.selection.n_val, "PGD-20",
                                            chosen_epoch, None),
                        last=None, train_wall_time_s=wall, img_per_s_mean=None, n_train=N_TRAIN[cfg.data.dataset],
                        data_source="fabricated", world_size=1, hardware=hardware, versions=VERSIONS, commit=COMMIT)


def provenance(command: str, date: str = "2026-11-20T10:00:00+00:00") -> Provenance:
    return Provenance(date=date, command=command, commit=COMMIT, versions=VERSIONS)


def _work(kw: dict) -> dict:
    """make_card keywords, with the RobustBench work fields gathered into ``work=Work(...)``."""
    fields = {k: kw.pop(k) for k in ("name", "link", "authors", "venue", "footnote", "reported", "additional_data")
              if k in kw}
    return {**kw, "work": Work(**fields)} if fields else kw


def fmnist_card(trainer: str, clean_k: int, aa_k: tuple[int, int, int, int], *, n: int = 1000, quick: bool = False,
                wall: float = 1800.0, date: str = "2026-11-20T10:00:00+00:00", extra_suite: bool = False,
                **kw) -> ModelCard:
    # epochs pinned: the golden files must not change when a preset's budget does
    cfg = get_preset(f"fmnist-smallcnn-{trainer}").with_overrides(["train.epochs=12"])
    evals = {"autoattack": eval_result("fashion_mnist", 0.1, n, clean_k, dict(zip(AA_ATTACKS, aa_k, strict=True)))}
    if extra_suite:
        evals["paper"] = eval_result("fashion_mnist", 0.1, n, clean_k, {"pgd-20": aa_k[0] + 12, "cw": aa_k[0] + 5},
                                     suite="paper")
    if quick:
        cfg = cfg.with_overrides(["train.epochs=2"])
    chosen = cfg.train.epochs if trainer == "standard" else cfg.train.epochs - 1
    return make_card(cfg, evals, training=training(cfg, chosen, wall, CPU), quick=quick,
                     provenance=provenance(f"generalist-bench submit fmnist-smallcnn-{trainer}", date), **_work(kw))


def cifar_card(trainer: str = "generalist", clean_k: int = 8012, aa_k=(4702, 4421, 4410, 4398), n: int = 10000,
               arch: str = "resnet18", **kw) -> ModelCard:
    cfg = get_preset(f"cifar10-resnet18-{trainer}")
    if arch != "resnet18":
        cfg = cfg.with_overrides([f"model.arch={arch}"])
    evals = {"autoattack": eval_result("cifar10", 8 / 255, n, clean_k, dict(zip(AA_ATTACKS, aa_k, strict=True)))}
    date = kw.pop("date", "2026-11-21T09:30:00+00:00")
    return make_card(cfg, evals, training=training(cfg, 110, 5.4 * 3600, GPU),
                     provenance=provenance(f"generalist-bench submit cifar10-resnet18-{trainer}", date), **_work(kw))


def small_cnn_state(dataset: str = "cifar10", seed: int = 0) -> dict[str, torch.Tensor]:
    """A small_cnn state dict with a random (not zero) last layer, so the model's predictions vary."""
    from generalist_bench.models import model_for_dataset

    torch.manual_seed(seed)
    model = model_for_dataset("small_cnn", dataset)
    torch.nn.init.normal_(model.classifier[-1].weight, std=0.3)
    return model.state_dict()


def fabricate_leaderboard_zoo(model_dir) -> list[ModelCard]:
    """Five Fashion-MNIST cards (4 trainers + a quick run) and one CIFAR-10 card, saved with save_to_zoo."""
    from generalist_bench.models import model_for_dataset
    from generalist_bench.zoo.store import save_to_zoo

    cards = [
        fmnist_card("generalist", 858, (742, 731, 729, 728), extra_suite=True),
        fmnist_card("pgd_at", 821, (735, 722, 720, 719)),
        fmnist_card("trades", 805, (741, 733, 731, 731), wall=2400.0),
        fmnist_card("standard", 912, (0, 0, 0, 0), wall=600.0),
        fmnist_card("generalist", 158, (131, 128, 128, 127), n=200, quick=True, wall=300.0),
    ]
    torch.manual_seed(0)
    fm = model_for_dataset("small_cnn", "fashion_mnist").state_dict()
    out = [ModelCard.load(save_to_zoo(fm, c, model_dir)[1]) for c in cards]
    cifar = cifar_card(arch="small_cnn", model_id="cifar10-smallcnn-generalist_seed0")
    out.append(ModelCard.load(save_to_zoo(small_cnn_state("cifar10"), cifar, model_dir)[1]))
    return out
