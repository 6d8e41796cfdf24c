"""``generalist-bench train --preset NAME [--config FILE] [--epochs N] [--out DIR] [--resume] [--set k=v ...]``."""

from __future__ import annotations

import argparse

from ..presets import DEFAULT_PRESET


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, help=f"preset name (default {DEFAULT_PRESET}); see `generalist-bench "
                                                  "presets`")
    p.add_argument("--config", default=None, help="TOML/YAML config file merged over the preset")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", default=None, help="output directory (default runs/<preset>/seed<seed>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. train.learners.0.optim.lr=0.05 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ..presets import resolve_config
    from .trainer import Trainer

    overrides = list(args.overrides)
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    base = args.preset if args.preset or not args.config else None
    cfg = resolve_config(base, overrides, args.config) if base or not args.config else \
        resolve_config(args.config, overrides)
    result = Trainer(cfg, args.out, resume=args.resume, progress=not args.no_progress).run()
    if result.out_dir and result.summary is not None:
        chosen = result.summary.selection.chosen or {}
        print(f"trained {cfg.name}: selected epoch {chosen.get('epoch')} by {chosen.get('criterion')} on the "
              f"validation split (clean {chosen.get('val_clean', float('nan')):.2f}%, PGD "
              f"{chosen.get('val_robust', float('nan')):.2f}%); outputs in {result.out_dir}")
    return 0
