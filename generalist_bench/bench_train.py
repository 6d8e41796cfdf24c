"""``python -m generalist_bench.bench_train``: training throughput of presets, side by side in one run.

Times one epoch on the same training subset for each preset (and variant), interleaved over repeats so
that machine noise hits every entry alike, and reports images/s and the ratio to the first entry. Used
for the cost claims in the README (Generalist vs PGD-AT, TRADES vs PGD-AT, bf16 and channels_last).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from unittest import mock

import torch

from .config import Config
from .errors import ConfigError
from .presets import get_preset
from .trainers.amp import BF16_KERNELS_ENV
from .trainers.trainer import Trainer
from .utils.env import hardware, library_versions

DEFAULT = ("fmnist-smallcnn-pgd_at", "fmnist-smallcnn-generalist", "fmnist-smallcnn-trades",
           "fmnist-smallcnn-pgd_at+train.amp=bf16", "fmnist-smallcnn-pgd_at+train.channels_last=true")


def parse_spec(spec: str, *base: str) -> tuple[Config, str | None]:
    """``PRESET[+key=value...][@native|@float32]`` → (the preset with ``base`` overrides, then the spec's; kernels):
    the ``@`` suffix picks the kernels of bf16 autocast on a CPU (trainers/amp.py) and needs a spec that trains
    under bf16."""
    spec, at, kernels = spec.partition("@")
    preset, *ov = spec.split("+")
    cfg = get_preset(preset).with_overrides([*base, *ov])
    if at and (kernels not in ("native", "float32") or cfg.train.amp != "bf16"):
        raise ConfigError(f"{spec}@{kernels}: the suffix is @native or @float32, on a spec that trains under bf16 "
                          f"autocast (this one: train.amp={cfg.train.amp})")
    return cfg, kernels or None


def kernels_env(kernels: str | None):
    """``GENERALIST_BENCH_BF16_KERNELS`` set to ``kernels`` for one entry (None: as the caller's environment has it)."""
    return mock.patch.dict(os.environ, {BF16_KERNELS_ENV: kernels}) if kernels else contextlib.nullcontext()


def time_epoch(spec: str, n: int) -> float:
    """One training epoch of ``spec`` (``parse_spec``) on ``n`` images, in img/s."""
    cfg, kernels = parse_spec(spec, f"data.train_subset={n}", "train.selection.n_val=64")
    trainer = Trainer(cfg, "/nonexistent/never-written", progress=False)
    trainer._setup()
    with kernels_env(kernels):
        start = time.perf_counter()
        trainer._train_epoch(1)
        return n / (time.perf_counter() - start)


def train_and_score(spec: str, n: int, epochs: int, n_test: int) -> tuple[float, float, float]:
    """Train ``spec`` for ``epochs`` on ``n`` images; clean and PGD-20 accuracy (%) on the first ``n_test`` test
    points (fp32 evaluation), and the training img/s."""
    import tempfile

    from .data import load_dataset
    from .trainers.validation import validate

    cfg, kernels = parse_spec(spec, f"data.train_subset={n}", f"train.epochs={epochs}",
                              "train.selection.criterion=last", "train.selection.n_val=200")
    with tempfile.TemporaryDirectory() as tmp, kernels_env(kernels):
        res = Trainer(cfg, tmp, progress=False).run()
    x, y = load_dataset(cfg.data.dataset, "test").subset(n_test)
    m = validate(res.model.float(), x, y, eps=cfg.threat.eps, norm=cfg.threat.norm, steps=20, seed=0)
    rate = sum(h["img_per_s"] for h in res.history) / len(res.history)
    return m["val_clean"], m["val_robust"], rate


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m generalist_bench.bench_train", description=__doc__)
    p.add_argument("specs", nargs="*", default=list(DEFAULT),
                   help="PRESET[+key=value...][@native|@float32] (the suffix: bf16 autocast's kernels on a CPU, "
                   "trainers/amp.py; default: %(default)s)")
    p.add_argument("--images", type=int, default=2560, help="training images per timed epoch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--accuracy", action="store_true", help="instead: train each spec for --epochs on --images "
                   "images and report test clean / PGD-20 accuracy on the first --n-test points")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--n-test", type=int, default=1000)
    args = p.parse_args(argv)
    if args.accuracy:
        print(f"| run | clean % | PGD-20 % | train img/s |  ({args.images} images, {args.epochs} epochs, "
              f"first {args.n_test} test points)")
        print("|---|---:|---:|---:|")
        for s in args.specs:
            clean, robust, rate = train_and_score(s, args.images, args.epochs, args.n_test)
            print(f"| {s} | {clean:.1f} | {robust:.1f} | {rate:.0f} |", flush=True)
        return 0
    rates: dict[str, list[float]] = {s: [] for s in args.specs}
    for _ in range(args.repeats):
        for s in args.specs:
            rates[s].append(time_epoch(s, args.images))
    base = statistics.median(rates[args.specs[0]])
    print(f"| run | img/s (median of {args.repeats}) | epoch cost vs {args.specs[0]} |")
    print("|---|---:|---:|")
    for s in args.specs:
        med = statistics.median(rates[s])
        print(f"| {s} | {med:.0f} | {base / med:.2f}× |")
    hw = hardware()
    print(f"\n{args.images} images per epoch, torch {library_versions()['torch']}, {torch.get_num_threads()} threads, "
          f"{hw['cpu']} ({hw['cpu_count']} cores, {hw['cpu_capability']}, bfloat16 instructions: "
          f"{'yes' if hw['bf16_native'] else 'no'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
