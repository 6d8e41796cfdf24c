"""``python -m generalist_bench.train_and_submit``: the one entry that walks the whole flow.

data → train (each requested trainer, resuming what exists, model selection on the validation split)
→ evaluate the selected model on the TEST split (official AutoAttack on the first n points, clean and
PGD-20 on the whole test set) → publish checkpoint + model card into ``model_zoo/`` → regenerate
``leaderboard/``.

``--quick`` is a small profile (``QUICK``: 5,000 training images, 3 epochs at a constant lr, AutoAttack on 100
test points, clean + PGD-20 on 2,000). Its cards and leaderboard rows are labelled quick, stored under
``<name>_quick``, and never overwrite a full entry. The full profile (``FULL``) uses the presets as they are.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .config import Config
from .errors import ConfigError, GeneralistBenchError, UnknownNameError
from .presets import is_preset_recipe, list_presets, resolve_config, tuning_log_for
from .threat import eps_arg

DEFAULT_FAMILY = "fmnist-smallcnn"
ALL_TRAINERS = ("standard", "pgd_at", "trades", "generalist")


@dataclass(frozen=True)
class Profile:
    """How much work one submission does. Numbers are images, epochs and test points."""

    name: str
    overrides: tuple[str, ...]
    aa_n_examples: int            # AutoAttack on the first n test points
    quick_n_examples: int | None  # clean + PGD-20 on the first n test points (None: all)
    eval_batch_size: int = 500
    flat_lr: bool = False         # constant lr for every learner (short runs: a decaying schedule never trains)
    generalist_warmup: int | None = None  # merge.warmup_epochs override (redistribute before mixing starts)
    generalist_every: int | None = None   # merge.redistribute_every override (the preset's scales with its budget)
    bf16_native_only: bool = False        # bf16 autocast only where the CPU has bfloat16 instructions, else float32

    def precision(self, cfg: Config) -> Config | None:
        """The profile's last step, on the fully resolved config (overrides and seed included): with
        ``bf16_native_only``, ``cfg`` in float32 if it would train under bf16 autocast on a CPU without bfloat16
        instructions; None when nothing changes. The quick recipe then depends on the machine, as its card says."""
        if not self.bf16_native_only or cfg.train.amp != "bf16":
            return None
        from .trainers.amp import emulated_bf16
        from .utils.env import resolve_device

        if not emulated_bf16("bf16", resolve_device(cfg.train.device)):
            return None
        return cfg.with_overrides({"train.amp": "off"})

    def apply(self, cfg: Config) -> Config:
        cfg = cfg.with_overrides(list(self.overrides))
        if self.flat_lr:
            cfg = cfg.with_overrides({f"train.learners.{i}.optim.lr_schedule": [[0.0, 1.0], [1.0, 1.0]]
                                      for i in range(len(cfg.train.learners))})
        if cfg.train.merge is not None:
            if self.generalist_warmup is not None:
                cfg = cfg.with_overrides({"train.merge.warmup_epochs": self.generalist_warmup})
            if self.generalist_every is not None:
                cfg = cfg.with_overrides({"train.merge.redistribute_every": self.generalist_every})
        return cfg

    def describe(self, cfg: Config | None = None, fp32: bool = False) -> str:
        """What the profile changes (for ``cfg``: the Generalist merge only where it redistributes by epoch; ``fp32``:
        ``precision`` switched the run to float32)."""
        extra = ["constant lr"] if self.flat_lr else []
        if fp32:
            extra.append("float32 (bf16 autocast only on a CPU with bfloat16 instructions; this one has none)")
        if cfg is None or (cfg.train.merge is not None and cfg.train.merge.redistribute == "epoch"):
            if self.generalist_warmup is not None:
                extra.append(f"Generalist warm-up {self.generalist_warmup} epoch(s)")
            if self.generalist_every is not None:
                extra.append(f"redistribution every {self.generalist_every} epoch(s)")
        return ", ".join([*self.overrides, *extra])


def card_description(cfg: Config, profile: Profile, overrides: Sequence[str] = (), fp32: bool = False) -> str:
    """The card's recipe description. A preset run as registered (any seed) keeps the preset's; a preset run under
    a profile or ``--set`` overrides says what ran instead, so that no card claims the preset's tuned budget for a
    shorter or different run. A config that is not a registered preset keeps its own."""
    if is_preset_recipe(cfg) or cfg.name not in list_presets():
        return cfg.description
    n = "all" if cfg.data.train_subset is None else f"{cfg.data.train_subset:,}"
    e = cfg.train.epochs
    what = ", ".join(x for x in (profile.describe(cfg, fp32), *(f"--set {o}" for o in overrides)) if x)
    return (f"{cfg.name} under the {profile.name} profile ({what}): {e} epoch{'s' * (e != 1)} on {n} training "
            "images; not the preset's tuned recipe")


FULL = Profile("full", (), aa_n_examples=1000, quick_n_examples=None)
# 3 epochs on 5,000 images with a constant lr (a decaying schedule squeezed into 3 epochs never trains). Generalist
# redistributes at the ends of epochs 2 and 3 (warm-up and period pinned: the preset's scale with the shared budget);
# its natural learner is mixed in during epoch 3. On a CPU without bfloat16 instructions it trains in float32, the
# quick profile being a recipe of its own. The rule predates the trainer's float32 kernels for bf16 products there
# (trainers/amp.py; benchmarks/bf16/BF16.md); the committed quick cards were made under it.
QUICK = Profile("quick", ("data.train_subset=5000", "train.epochs=3", "train.selection.n_val=500"),
                aa_n_examples=100, quick_n_examples=2000, flat_lr=True, generalist_warmup=1, generalist_every=1,
                bf16_native_only=True)


def presets_for(family_or_preset: str, trainers: list[str]) -> list[str]:
    """``fmnist-smallcnn`` + trainers → preset names; a full preset name stands for itself."""
    presets = list_presets()
    if family_or_preset in presets:
        return [family_or_preset]
    names = [f"{family_or_preset}-{t}" for t in trainers]
    missing = [n for n in names if n not in presets]
    if missing:
        families = sorted({p.rsplit("-", 1)[0] for p in presets if p.rsplit("-", 1)[1] in ALL_TRAINERS})
        raise UnknownNameError("preset family", family_or_preset, families + presets)
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=DEFAULT_FAMILY,
                   help=f"a preset family (default {DEFAULT_FAMILY}: one preset per trainer, "
                        "<family>-<trainer>) or one full preset name")
    p.add_argument("--trainers", default=",".join(ALL_TRAINERS),
                   help=f"comma list of trainers to train and submit (default: {','.join(ALL_TRAINERS)})")
    p.add_argument("--seeds", default=None, metavar="S[,S...]",
                   help="comma list of training seeds; each trainer is trained once per seed, seed by seed "
                        "(default: the preset's seed, 0)")
    p.add_argument("--quick", action="store_true", help="the quick profile (≈15 min on 2 CPU cores), labelled quick")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override applied to every trainer (repeatable)")
    p.add_argument("--n-examples", type=int, default=None, help="AutoAttack test points (default: the profile's)")
    p.add_argument("--model-dir", default="model_zoo", help="zoo directory (default model_zoo)")
    p.add_argument("--leaderboard-dir", default="leaderboard", help="leaderboard directory (default leaderboard)")
    p.add_argument("--runs-dir", default="runs", help="training runs and evaluation states (default runs)")
    p.add_argument("--no-progress", action="store_true")
    ext = p.add_argument_group("external submission (a model trained elsewhere; evaluated and published, not trained)")
    ext.add_argument("--checkpoint", default=None, help="state-dict checkpoint of the submitted model")
    ext.add_argument("--arch", default=None, help="its architecture (a registered model name)")
    ext.add_argument("--name", default=None, help="zoo name of the entry (must not exist)")
    ext.add_argument("--dataset", default="fashion_mnist", help="data set (default fashion_mnist)")
    ext.add_argument("--threat-model", default="Linf", help="Linf (default) or L2")
    ext.add_argument("--eps", type=eps_arg, default=None, help="eps, e.g. 0.1 or 8/255 (default: the data set's Linf "
                                                               "default)")
    ext.add_argument("--title", default=None, help="title of the work")
    ext.add_argument("--link", default="", help="paper link")
    ext.add_argument("--authors", default="")
    ext.add_argument("--venue", default="")


def _evaluate(model, cfg: Config, suite: str, n: int | None, out_dir: Path, profile: Profile, progress: bool):
    from .evaluation.api import evaluate, model_fingerprint

    # the state file is keyed by the model's weights: a retrained model never meets a stale state
    state = out_dir / f"eval_{suite}_n{n if n is not None else 'all'}_{model_fingerprint(model)[:12]}.state.json"
    result = evaluate(model, dataset=cfg.data.dataset, threat_model=cfg.threat.norm, eps=cfg.threat.eps, suite=suite,
                      n_examples=n, batch_size=profile.eval_batch_size, seed=0, split="test",
                      data_dir=cfg.data.data_dir, state_path=state, progress=progress)
    from .utils.io import atomic_write_text

    atomic_write_text(out_dir / f"eval_{suite}.json", result.to_json())
    return result


def parse_seeds(text: str | None) -> list[int | None]:
    """``"0,1,2"`` → [0, 1, 2]; None → [None] (the preset's own seed)."""
    if text is None:
        return [None]
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds must be a comma list of integers, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must list distinct non-negative integers, got {text!r}")
    return list(seeds)


def submit_one(preset: str, profile: Profile, args: argparse.Namespace, command: str,
               seed: int | None = None) -> dict:
    from .leaderboard.render import render_leaderboard  # noqa: F401  (fail early if missing)
    from .utils.io import file_lock

    seed_override = [] if seed is None else [f"train.seed={seed}"]
    cfg = resolve_config(profile.apply(resolve_config(preset)), [*args.overrides, *seed_override])
    fp32_cfg = profile.precision(cfg)
    cfg = fp32_cfg or cfg
    out_dir = Path(args.runs_dir) / profile.name / cfg.name / f"seed{cfg.train.seed}"
    # concurrent submissions of the same preset take turns: the second resumes the first's finished work
    lock = out_dir.parent / f".submit-seed{cfg.train.seed}.lock"
    try:
        with file_lock(lock, timeout=0):
            pass
    except GeneralistBenchError:
        print(f"== {cfg.name}: another train_and_submit is working on it; waiting for it to finish",
              file=sys.stderr, flush=True)
    with file_lock(lock):
        return _submit_locked(cfg, out_dir, profile, args, command, fp32=fp32_cfg is not None)


def _submit_locked(cfg: Config, out_dir: Path, profile: Profile, args: argparse.Namespace, command: str, *,
                   fp32: bool = False) -> dict:
    from .trainers.trainer import Trainer
    from .zoo.card import Provenance, Work, make_card
    from .zoo.store import save_to_zoo, unchanged_entry

    progress = not args.no_progress
    t0 = time.perf_counter()
    print(f"== {cfg.name} ({profile.name}): training into {out_dir}", file=sys.stderr, flush=True)
    result = Trainer(cfg, out_dir, resume=True, progress=progress).run()
    n_aa = args.n_examples if args.n_examples is not None else profile.aa_n_examples
    print(f"== {cfg.name}: AutoAttack (standard) on the first {n_aa} test points", file=sys.stderr, flush=True)
    aa = _evaluate(result.model, cfg, "autoattack", n_aa, out_dir, profile, progress)
    print(f"== {cfg.name}: clean + PGD-20 on {profile.quick_n_examples or 'all'} test points", file=sys.stderr,
          flush=True)
    quick = _evaluate(result.model, cfg, "quick", profile.quick_n_examples, out_dir, profile, progress)
    summary = result.summary
    card_cfg = replace(cfg, description=card_description(cfg, profile, args.overrides, fp32))  # trains as cfg
    card = make_card(card_cfg, {"autoattack": aa, "quick": quick}, training=summary,
                     provenance=Provenance.here(command), quick=profile.name == "quick", tuning_log=tuning_log_for(cfg),
                     work=Work(footnote=f"quick profile: {profile.describe(cfg, fp32)}" if profile.name == "quick"
                               else None))
    kept = unchanged_entry(result.model.state_dict(), card, args.model_dir)
    if kept is not None:  # a finished run submitted again: its card keeps the date and commit that made it
        print(f"== {cfg.name}: already published with these weights and results; keeping {kept}", file=sys.stderr,
              flush=True)
        pt, js = kept.with_suffix(".pt"), kept
    else:
        pt, js = save_to_zoo(result.model.state_dict(), card, args.model_dir)
    row = {"model_id": js.stem, "trainer": cfg.train.trainer, "clean_acc": aa.clean_acc,
           "autoattack_acc": aa.robust_acc,
           "n_examples": n_aa, "pgd20_acc_full": quick.robust_acc, "clean_acc_full": quick.clean_acc,
           "chosen_epoch": summary.selection.chosen_epoch, "card": str(js), "checkpoint": str(pt),
           "seconds": time.perf_counter() - t0}
    print(f"== {cfg.name}: clean {aa.clean_acc:.2f}%  AutoAttack {aa.robust_acc:.2f}% (n={n_aa}) → {js}",
          file=sys.stderr, flush=True)
    return row


def run(args: argparse.Namespace) -> int:
    from .leaderboard.render import render_leaderboard

    if args.checkpoint is not None or args.arch is not None or args.name is not None:
        return _run_external(args)
    trainers = [t.strip() for t in args.trainers.split(",") if t.strip()]
    for t in trainers:
        if t not in ALL_TRAINERS:
            raise UnknownNameError("trainer", t, ALL_TRAINERS)
    if not trainers:
        raise ConfigError("--trainers is empty")
    profile = QUICK if args.quick else FULL
    presets = presets_for(args.preset, trainers)
    seeds = parse_seeds(args.seeds)
    if args.seeds is not None and any(o.split("=", 1)[0].strip() == "train.seed" for o in args.overrides):
        raise ConfigError("--seeds and --set train.seed=… both choose the seed; give one of them")
    command = shlex.join(["python", "-m", "generalist_bench.train_and_submit", *args._argv])
    # seed by seed: an interrupted sweep leaves complete seeds (every method) behind, not complete methods
    rows = [submit_one(p, profile, args, command, seed) for seed in seeds for p in presets]
    written = render_leaderboard(args.model_dir, args.leaderboard_dir)
    print("\nmodel                                    clean    AutoAttack  (n)   epoch  card")
    for r in rows:
        print(f"{r['model_id']:<40} {r['clean_acc']:6.2f}%  {r['autoattack_acc']:6.2f}%  ({r['n_examples']})  "
              f"{r['chosen_epoch']!s:>3}    {r['card']}")
    print(f"\nleaderboard regenerated: {', '.join(str(p) for p in written[:4])}{' …' if len(written) > 4 else ''}")
    from .utils.io import atomic_write_json

    atomic_write_json(Path(args.runs_dir) / profile.name / "last_submission.json", {"profile": profile.name,
                                                                                   "command": command, "rows": rows})
    return 0


def _run_external(args: argparse.Namespace) -> int:
    from .zoo.external import Submission, submit

    missing = [f"--{k}" for k in ("checkpoint", "arch", "name") if getattr(args, k) is None]
    if missing:
        raise ConfigError(f"an external submission needs --checkpoint, --arch and --name (missing: "
                          f"{', '.join(missing)})")
    sub = Submission(checkpoint=Path(args.checkpoint), arch=args.arch, name=args.name, dataset=args.dataset,
                     threat_model=args.threat_model, eps=args.eps,
                     n_examples=args.n_examples if args.n_examples is not None else FULL.aa_n_examples,
                     title=args.title, link=args.link, authors=args.authors, venue=args.venue)
    command = shlex.join(["generalist-bench", "submit", *args._argv])
    card = submit(sub, model_dir=args.model_dir, leaderboard_dir=args.leaderboard_dir, runs_dir=args.runs_dir,
                  progress=not args.no_progress, command=command)
    print(f"submitted {args.name}: card {card}; leaderboard regenerated in {args.leaderboard_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .cli import main as cli_main

    argv = sys.argv[1:] if argv is None else list(argv)
    return cli_main(["submit", *argv])


if __name__ == "__main__":
    sys.exit(main())
