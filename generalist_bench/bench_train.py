"""``python -m generalist_bench.bench_train``: training throughput of presets, side by side in one run.

Times one epoch on the same training subset for each preset (and variant), interleaved over repeats so
that machine noise hits every entry alike, and reports images/s and the ratio to the first entry. Used
for the cost claims in the README (Generalist vs PGD-AT, TRADES vs PGD-AT, bf16 and channels_last).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from .config import get_preset
from .trainers.engine import Engine
from .utils.env import hardware, library_versions

DEFAULT = ("fmnist-smallcnn-pgd_at", "fmnist-smallcnn-generalist", "fmnist-smallcnn-trades",
           "fmnist-smallcnn-pgd_at+train.amp=bf16", "fmnist-smallcnn-pgd_at+train.channels_last=true")


def time_epoch(spec: str, n: int) -> float:
    preset, *ov = spec.split("+")
    cfg = get_preset(preset).with_overrides([f"data.train_subset={n}", "train.selection.n_val=64", *ov])
    engine = Engine(cfg, "/nonexistent/never-written", progress=False)
    engine._setup()
    start = time.perf_counter()
    engine._train_epoch(1)
    return n / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m generalist_bench.bench_train", description=__doc__)
    p.add_argument("specs", nargs="*", default=list(DEFAULT), help="PRESET[+key=value...] (default: %(default)s)")
    p.add_argument("--images", type=int, default=2560, help="training images per timed epoch")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
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
          f"{hw['cpu']} ({hw['cpu_count']} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
