"""Hyperparameter tuning on the validation split, one budget for every method, and its committed log.

``python -m generalist_bench.tuning`` (also ``generalist-bench tune``) trains every trial of ``TRIALS`` that has
not finished yet, in order, each resumable from its own run directory, and rewrites the tuning log
(``docs/tuning/fashion_mnist_Linf_0.1.{md,csv}``) from the finished runs. The test split is locked for the whole
command (``data.split_locked``): any attempt to read it raises ``SplitLockedError``.

The tuning budget is the same for every method: ``TRIALS_PER_METHOD`` configurations, each trained on the
first ``TUNE_BUDGET['data.train_subset']`` training images for ``TUNE_BUDGET['train.epochs']`` epochs (bf16
autocast, channels_last, batch 128, PGD-10 step eps/4 for the adversarial objectives) and scored by the
selection rule of the presets: validation clean + PGD-20 accuracy on the first 1,000 validation images, at the
epoch that rule selects. Within a method the trials change one or two knobs of a centre configuration.

Generalist's trials depend on two earlier winners: its adversarial learner takes the PGD-AT winner's optimiser
and its natural learner the standard-training winner's (its own optimiser and schedule, no ``lr_from``); the
trials then vary what only Generalist has: the natural learner's final mixing weight γ, the warm-up t′ and the
redistribution period c (as fractions of training, so that they scale to the final budget).

``--budget-check`` reports whether the final runs' validation curves flattened by the end of the shared budget;
``--budget-probe`` trains each final preset again at the ladder's rungs, ``PROBE_SCALES`` × ``PROBE_BASE_EPOCHS`` (the
tuning budget) epochs, in turn (seed ``PROBE_SEED``, test split locked), stopping for a method once a budget has
``PROBE_PATIENCE`` longer ones none of which beats it by ``FLAT_TOL`` points, and adds to that report how much each
longer budget gains over the next shorter one and the shared budget the ladder supports.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .config import config_from_dict
from .data.splits import split_locked
from .errors import ConfigError
from .presets import fmnist_merge_epochs, get_preset, resolve_config
from .trainers.summary import SummaryError, TrainSummary
from .utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_jsonl

TUNE_BUDGET: dict[str, Any] = {
    "data.train_subset": 20000,
    "train.epochs": 10,
    "train.amp": "bf16",
    "train.channels_last": True,
    "train.seed": 0,
}
LOG_STEM = Path("docs") / "tuning" / "fashion_mnist_Linf_0.1"
RUN_ROOT = Path("runs") / "tuning"
PAPER = ((0.0, 1.0), (1 / 3, 1.0), (2 / 3, 0.1), (1.0, 0.01))   # the presets' step-like lr multiplier
LINEAR = ((0.0, 1.0), (1.0, 0.02))                               # linear decay to 2 % of the peak
METHODS = ("standard", "pgd_at", "trades", "generalist")


@dataclass(frozen=True)
class Trial:
    """One configuration: ``method``'s preset + ``changes`` (dotted config keys) + the tuning budget.

    ``changes`` may be a function of the earlier winners (``{method: Trial}``), for trials built on them.
    """

    id: str
    method: str
    what: str
    changes: Mapping[str, Any] | Callable[[Mapping[str, Trial]], Mapping[str, Any]] = field(default_factory=dict)
    needs: tuple[str, ...] = ()

    @property
    def preset(self) -> str:
        return f"fmnist-smallcnn-{self.method}"

    def overrides(self, winners: Mapping[str, Trial]) -> dict[str, Any]:
        missing = [m for m in self.needs if m not in winners]
        if missing:
            raise ConfigError(f"trial {self.id} is built on the winners of {', '.join(missing)}, which have not "
                              "finished tuning yet")
        changes = self.changes(winners) if callable(self.changes) else self.changes
        return {**TUNE_BUDGET, **changes}


def _single(lr: float, schedule=PAPER, **extra) -> dict[str, Any]:
    return {"train.learners.0.optim.lr": lr, "train.learners.0.optim.lr_schedule": schedule, **extra}


def _optim_of(trial: Trial, winners: Mapping[str, Trial]) -> dict[str, Any]:
    ov = trial.overrides(winners)
    return {"lr": ov["train.learners.0.optim.lr"], "lr_schedule": ov["train.learners.0.optim.lr_schedule"]}


def _generalist(gamma_end: float, warmup: float, every: float, natural: Mapping[str, Any] | None = None) -> Callable:
    """Natural learner 0 with the standard winner's optimiser (or ``natural``'s lr and schedule), adversarial
    learner 1 with PGD-AT's."""
    def changes(winners: Mapping[str, Trial]) -> dict[str, Any]:
        nat, adv = _optim_of(winners["standard"], winners), _optim_of(winners["pgd_at"], winners)
        nat = {**nat, **(natural or {})}
        epochs = TUNE_BUDGET["train.epochs"]
        ov = {f"train.learners.0.optim.{k}": v for k, v in nat.items()}
        ov |= {f"train.learners.1.optim.{k}": v for k, v in adv.items()}
        ov |= {"train.learners.0.lr_from": None,  # its own optimiser and schedule
               "train.learners.0.mix_schedule": ((0.0, 0.0), (2 / 3, 0.0), (1.0, gamma_end)),
               "train.learners.1.mix_schedule": ((0.0, 1.0), (2 / 3, 1.0), (1.0, 1.0 - gamma_end)),
               "train.merge.warmup_epochs": round(warmup * epochs),
               "train.merge.redistribute_every": max(1, round(every * epochs))}
        return ov
    return changes


def _g(id_: str, what: str, **kw) -> Trial:
    return Trial(id_, "generalist", what, _generalist(**kw), needs=("standard", "pgd_at"))


TRIALS: tuple[Trial, ...] = (
    # standard training: peak lr × schedule
    Trial("standard-lr0.01", "standard", "lr 0.01, step schedule", _single(0.01)),
    Trial("standard-lr0.02", "standard", "lr 0.02, step schedule", _single(0.02)),
    Trial("standard-lr0.05", "standard", "lr 0.05, step schedule (the pre-tuning preset)", _single(0.05)),
    Trial("standard-lr0.1", "standard", "lr 0.1, step schedule", _single(0.1)),
    Trial("standard-lr0.02-linear", "standard", "lr 0.02, linear decay", _single(0.02, LINEAR)),
    Trial("standard-lr0.05-linear", "standard", "lr 0.05, linear decay", _single(0.05, LINEAR)),
    # PGD-AT: the same six
    Trial("pgd_at-lr0.01", "pgd_at", "lr 0.01, step schedule", _single(0.01)),
    Trial("pgd_at-lr0.02", "pgd_at", "lr 0.02, step schedule", _single(0.02)),
    Trial("pgd_at-lr0.05", "pgd_at", "lr 0.05, step schedule (the pre-tuning preset)", _single(0.05)),
    Trial("pgd_at-lr0.1", "pgd_at", "lr 0.1, step schedule", _single(0.1)),
    Trial("pgd_at-lr0.02-linear", "pgd_at", "lr 0.02, linear decay", _single(0.02, LINEAR)),
    Trial("pgd_at-lr0.05-linear", "pgd_at", "lr 0.05, linear decay", _single(0.05, LINEAR)),
    # TRADES: peak lr × β (TRADES' own SmallCNN recipe: lr 0.01, β 1 or 6)
    *(Trial(f"trades-lr{lr:g}-beta{b:g}", "trades", f"lr {lr:g}, β {b:g}, step schedule"
            + (" (the pre-tuning preset)" if (lr, b) == (0.05, 6.0) else ""),
            _single(lr, **{"train.learners.0.trades_beta": b}))
      for lr in (0.01, 0.02, 0.05) for b in (1.0, 6.0)),
    # Generalist, on the standard and PGD-AT winners' optimisers
    _g("generalist-g0.6", "γ_nat → 0.6, t′ 0.5, c 0.1 (own natural lr)", gamma_end=0.6, warmup=0.5, every=0.1),
    _g("generalist-g0.8", "γ_nat → 0.8, t′ 0.5, c 0.1", gamma_end=0.8, warmup=0.5, every=0.1),
    _g("generalist-g0.4", "γ_nat → 0.4, t′ 0.5, c 0.1", gamma_end=0.4, warmup=0.5, every=0.1),
    _g("generalist-g0.6-t0.3", "γ_nat → 0.6, t′ 0.3, c 0.1", gamma_end=0.6, warmup=0.3, every=0.1),
    _g("generalist-g0.6-c0.2", "γ_nat → 0.6, t′ 0.5, c 0.2", gamma_end=0.6, warmup=0.5, every=0.2),
    # The natural learner with a schedule of its own that stays high while it is mixed in (t ≥ 2/3). (A trial with
    # its lr overwritten by the adversarial learner's, the reference code's lr_from, was bit-identical to
    # generalist-g0.6 here, because the standard and PGD-AT winners share one optimiser; this one replaced it.)
    _g("generalist-g0.6-nat0.01", "γ_nat → 0.6, t′ 0.5, c 0.1, natural learner lr 0.01 constant", gamma_end=0.6,
       warmup=0.5, every=0.1, natural={"lr": 0.01, "lr_schedule": ((0.0, 1.0), (1.0, 1.0))}),
)
TRIALS_PER_METHOD = 6
assert all(sum(t.method == m for t in TRIALS) == TRIALS_PER_METHOD for m in METHODS)


# ------------------------------------------------------------------------------------------- outcomes
# Epoch selection and trial score: validation clean + PGD-20 accuracy, except for standard training, whose PGD-20
# accuracy is ~0 once trained: clean + PGD-20 would select an under-trained first epoch (its spurious 20-30 %
# PGD-20 accuracy outweighs 13 points of clean accuracy), so standard training is scored on clean accuracy. The
# score is recomputed from every epoch's validation numbers in history.jsonl, whatever the run's own criterion was.
CRITERION = {"standard": "clean"}


def _score(h: Mapping[str, Any], criterion: str) -> float:
    return h["val_clean"] + (h.get("val_robust", 0.0) if criterion == "clean+robust" else 0.0)


def run_dir(trial: Trial, root: Path = RUN_ROOT) -> Path:
    return Path(root) / trial.id


def outcome(trial: Trial, root: Path = RUN_ROOT) -> dict[str, Any] | None:
    """The finished trial's validation numbers, or None while it has not finished all its epochs."""
    d = run_dir(trial, root)
    try:
        summary = TrainSummary.load(d / "summary.json")
        history = read_jsonl(d / "history.jsonl")
    except (OSError, ValueError, SummaryError):
        return None
    if summary.epochs != len(history) or not history:
        return None
    criterion = CRITERION.get(trial.method, "clean+robust")
    chosen = max(history, key=lambda h: (_score(h, criterion), -h["epoch"]))  # first epoch on ties
    last = history[-1]
    return {"trial": trial.id, "method": trial.method, "what": trial.what, "criterion": criterion,
            "chosen_epoch": chosen["epoch"], "epochs": len(history),
            "val_clean": chosen["val_clean"], "val_pgd20": chosen.get("val_robust", 0.0),
            "score": _score(chosen, criterion),
            "last_val_clean": last["val_clean"], "last_val_pgd20": last.get("val_robust", 0.0),
            "curve": [(h["epoch"], round(h["val_clean"], 1), round(h.get("val_robust", 0.0), 1)) for h in history],
            "wall_min": summary.train_wall_time_s / 60, "img_per_s": summary.img_per_s_mean,
            "n_train": summary.n_train, "n_val": summary.selection.n_val, "commit": summary.commit}


def winners(root: Path = RUN_ROOT) -> dict[str, Trial]:
    """Per method whose trials have all finished: the trial with the highest validation score (first on ties)."""
    best: dict[str, Trial] = {}
    for m in METHODS:
        trials = [t for t in TRIALS if t.method == m]
        results = [(outcome(t, root), t) for t in trials]
        if all(r is not None for r, _ in results):
            best[m] = max(results, key=lambda rt: rt[0]["score"])[1]
    return best


# ------------------------------------------------------------------------------------------------ log
CSV_FIELDS = ("method", "trial", "what", "criterion", "chosen_epoch", "epochs", "val_clean", "val_pgd20", "score",
              "last_val_clean", "last_val_pgd20", "wall_min", "img_per_s", "n_train", "n_val", "winner", "commit")


def _rows(root: Path) -> list[dict[str, Any]]:
    """Every finished trial's outcome, with ``winner`` set."""
    win = {t.id for t in winners(root).values()}
    return [{**o, "winner": o["trial"] in win} for t in TRIALS if (o := outcome(t, root)) is not None]


def render_log(root: Path = RUN_ROOT, png: str | None = None) -> tuple[str, str]:
    """(Markdown, CSV) of every finished trial; the pending ones are listed as such in the Markdown, which shows
    the trade-off plot ``png`` (a path relative to it) if given."""
    rows = _rows(root)
    win = {r["trial"] for r in rows if r["winner"]}
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "winner": r["trial"] in win, **{k: f"{r[k]:.2f}" for k in
                                                          ("val_clean", "val_pgd20", "score", "last_val_clean",
                                                           "last_val_pgd20", "wall_min", "img_per_s")}})
    b = TUNE_BUDGET
    md = [
        "# Tuning log: Fashion-MNIST, SmallCNN, Linf eps 0.1",
        "",
        "Written by `python -m generalist_bench.tuning` from the run directories under `runs/tuning/`. "
        "**Validation split only**: every number is on the first 1,000 images of the validation split (5,000 "
        "images held out of the training set, split seed 0); the test split is locked while the command runs "
        "(`SplitLockedError` on any read).",
        "",
        f"Budget per trial, the same for every method: the first {b['data.train_subset']:,} training images, "
        f"{b['train.epochs']} epochs, batch 128, bf16 autocast + channels_last, seed {b['train.seed']}, "
        "PGD-10 (step eps/4) as the training attack; "
        f"{TRIALS_PER_METHOD} trials per method. Score = validation clean + PGD-20 accuracy at the epoch that "
        "maximises it (clean accuracy alone for standard training, whose PGD-20 accuracy is ~0 once trained: "
        "clean + PGD-20 would pick its under-trained first epoch), recomputed from every epoch's validation numbers; "
        "the winner of each method is in bold. Generalist's trials "
        "use the standard winner's optimiser for the natural learner (except where the row says otherwise) and the "
        "PGD-AT winner's for the adversarial learner. A Generalist trial with the natural learner's lr overwritten "
        "by the adversarial learner's (the reference code's `lr_from`) was bit-identical to `generalist-g0.6` "
        "(same validation curve and weights: the standard and PGD-AT winners share one optimiser and schedule) "
        "and was replaced by `generalist-g0.6-nat0.01`.",
        "",
        "Wall time and img/s are as measured on a shared 2-core machine: many trials ran while tests or CI ran "
        "beside them, so they vary by up to 4× between trials of equal cost and say nothing about a method's "
        "speed (`benchmarks/` compares speeds side by side).",
        "",
        "| method | trial | what changed | epoch chosen / run | val clean | val PGD-20 | score | last-epoch "
        "clean / PGD-20 | wall (min) | img/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        bold = "**" if r["trial"] in win else ""
        md.append(f"| {r['method']} | {bold}{r['trial']}{bold} | {r['what']} | {r['chosen_epoch']} / {r['epochs']} "
                  f"| {r['val_clean']:.1f} | {r['val_pgd20']:.1f} | {bold}{r['score']:.1f}{bold} | "
                  f"{r['last_val_clean']:.1f} / {r['last_val_pgd20']:.1f} | {r['wall_min']:.1f} | "
                  f"{r['img_per_s']:.0f} |")
    pending = [t.id for t in TRIALS if outcome(t, root) is None]
    if pending:
        md += ["", f"Not finished yet ({len(pending)}): " + ", ".join(f"`{p}`" for p in pending) + "."]
    if rows and png:
        md += ["", "Every trial's trade-off and the frontiers the grid traces (TRADES' β at each learning rate, "
               "Generalist's γ_nat end value); validation numbers only, at the tuning budget:", "",
               f"![validation clean vs PGD-20 of every tuning trial]({png})"]
    md += ["", "Validation curves (epoch: clean / PGD-20):", ""]
    for r in rows:
        md.append(f"- `{r['trial']}`: " + ", ".join(f"{e}: {c} / {p}" for e, c, p in r["curve"]))
    md += ["", "Commits that trained them: " + ", ".join(sorted({str(r['commit'])[:12] for r in rows})) + "."
           if rows else ""]
    return "\n".join(md).rstrip() + "\n", buf.getvalue()


# The trade-off frontiers the tuning grid traces: the trials that differ only in the knob that trades clean for
# robust accuracy (TRADES' β at each learning rate; Generalist's end value of γ_nat, t′ and c fixed).
FRONTIERS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    *((f"TRADES, lr {lr}: β", "trades", tuple((f"trades-lr{lr}-beta{b}", f"β {b}") for b in (6, 1)))
      for lr in ("0.01", "0.02", "0.05")),
    ("Generalist: γ_nat end value", "generalist",
     tuple((f"generalist-g{g}", f"γ {g}") for g in ("0.4", "0.6", "0.8"))),
)
PLOT_MIN_CLEAN = 50.0  # trials below this validation clean accuracy (diverged) are listed under the plot, not drawn


def frontier_png(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Validation clean vs PGD-20 accuracy of every finished trial, each method's frontiers drawn as lines."""
    from dataclasses import astuple

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .registry import plot_style
    from .registry import title as display_title

    by_id = {r["trial"]: r for r in rows}
    win = {r["trial"] for r in rows if r.get("winner")}
    shown = [r for r in rows if r["val_clean"] >= PLOT_MIN_CLEAN]
    fig = Figure(figsize=(11, 5.2), dpi=110)
    FigureCanvasAgg(fig)
    full, zoom = fig.subplots(1, 2, gridspec_kw={"width_ratios": (3, 2)})

    def draw(ax, pts_of: Sequence[Mapping[str, Any]], labels: bool) -> None:
        for m in METHODS:
            pts = [r for r in pts_of if r["method"] == m]
            if not pts:
                continue
            colour, marker = astuple(plot_style(m))
            ax.scatter([r["val_clean"] for r in pts], [r["val_pgd20"] for r in pts], marker=marker, s=45,
                       facecolors="none", edgecolors=colour, linewidths=1.3, label=display_title("trainer", m),
                       zorder=3)
            best = [r for r in pts if r["trial"] in win]
            ax.scatter([r["val_clean"] for r in best], [r["val_pgd20"] for r in best], marker=marker, s=90,
                       c=colour, edgecolors="black", zorder=4)
        ids = {r["trial"] for r in pts_of}
        for _title, method, members in FRONTIERS:
            pts = [(by_id[t], label) for t, label in members if t in ids]
            if len(pts) < 2:
                continue
            colour = plot_style(method).colour
            ax.plot([r["val_clean"] for r, _ in pts], [r["val_pgd20"] for r, _ in pts], color=colour, lw=1,
                    alpha=0.7, zorder=2)
            if labels:
                for r, label in pts:
                    ax.annotate(label, (r["val_clean"], r["val_pgd20"]), textcoords="offset points",
                                xytext=(5, 4), fontsize=7, color=colour)
        ax.set_xlabel("Validation clean accuracy (%)")
        ax.grid(True, alpha=0.3)

    draw(full, shown, labels=not any(r["method"] == "generalist" for r in shown))
    full.set_ylabel("Validation PGD-20 accuracy (%)")
    full.set_title("Tuning trials (validation split, tuning budget)", fontsize=10)
    if shown:
        full.legend(loc="best", fontsize=8)
    # the adversarial methods' region, where Generalist's trials lie within a fraction of a point of each other
    near = [r for r in shown if r["method"] in ("pgd_at", "generalist")]
    if near:
        draw(zoom, near, labels=False)
        zoom.set_title("PGD-AT and Generalist, enlarged", fontsize=10)
        xs = [r["val_clean"] for r in near]
        zoom.set_xlim(min(xs) - 0.3, max(xs) + 0.25 * (max(xs) - min(xs)) + 0.5)  # room for the labels
        # every trial by name and numbers; trials at the same PGD-20 accuracy (to 0.1) share one stacked label
        # under the leftmost of them
        rows_at: dict[float, list[Mapping[str, Any]]] = {}
        for r in near:
            rows_at.setdefault(round(r["val_pgd20"], 1), []).append(r)
        for same in rows_at.values():
            same.sort(key=lambda r: (r["val_clean"], r["trial"]))
            text = "\n".join(f"{r['trial'].removeprefix(r['method'] + '-')}: {r['val_clean']:.1f} / "
                             f"{r['val_pgd20']:.1f}" for r in same)
            zoom.annotate(text, (same[0]["val_clean"], same[0]["val_pgd20"]), textcoords="offset points",
                          xytext=(4, -6), va="top", fontsize=6.5, color=plot_style(same[0]["method"]).colour)
    else:
        zoom.set_axis_off()
    hidden = [r["trial"] for r in rows if r["val_clean"] < PLOT_MIN_CLEAN]
    foot = ("Filled: each method's winner. Lines: trials differing only in TRADES' β (per lr) or Generalist's γ_nat "
            "end value. First 1,000 validation images; never the test split.")
    if hidden:
        foot += f" Not drawn (validation clean < {PLOT_MIN_CLEAN:g} %): {', '.join(hidden)}."
    fig.text(0.01, 0.01, foot, fontsize=6.5, color="#444444", wrap=True)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def write_log(root: Path = RUN_ROOT, stem: Path = LOG_STEM) -> tuple[Path, Path]:
    """``<stem>.md``, ``<stem>.csv`` and the trade-off plot ``<stem>.png`` (once a trial has finished)."""
    md_path, csv_path, png_path = Path(f"{stem}.md"), Path(f"{stem}.csv"), Path(f"{stem}.png")
    md, csv_text = render_log(root, png=png_path.name)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    rows = _rows(root)
    if rows:
        atomic_write_bytes(png_path, frontier_png(rows))
    atomic_write_text(md_path, md)
    atomic_write_text(csv_path, csv_text)
    return md_path, csv_path


# ------------------------------------------------------------------------------------------------ budget
# Has the shared budget's validation curve flattened? Read from the final runs (``runs/full/<preset>/seed<k>``),
# each scored with its own selection criterion: what the last FLAT_WINDOW epochs added to the best score of the
# epochs before them. Under FLAT_TOL points the curve counts as flat at the end of the budget.
FULL_ROOT = Path("runs") / "full"
BUDGET_STEM = LOG_STEM.with_name(LOG_STEM.name + "_budget")
FLAT_WINDOW = 3
FLAT_TOL = 1.0
PROBE_ROOT = Path("runs") / "budget_probe"
PROBE_SCALES = (1.5, 2.0, 3.0, 4.0, 6.0)  # the ladder's rungs, in × PROBE_BASE_EPOCHS, climbed until flat
# (6× added when PGD-AT's 40-epoch rung beat its 30 by more than FLAT_TOL: geometric steps of about 1.5× above 20)
# The rungs are fixed epochs, not multiples of the current shared budget: when the shared budget moves onto a rung
# (FMNIST_EPOCHS, then --adopt-budget), the ladder, its verdict and the probes already trained stay what they were.
PROBE_BASE_EPOCHS: int = TUNE_BUDGET["train.epochs"]  # the budget the hyperparameters were tuned at (and the first
                                                      # shared budget)
PROBE_SEED = 0
PROBE_PATIENCE = 2  # longer budgets that must fail to beat one before it counts as long enough (one seed each)
PROBE_ORDER = ("pgd_at", "trades", "standard", "generalist")  # most in doubt first (see the budget check)


def _gain(new: float, old: float) -> float:
    """``new - old`` for scores that are sums of percentages with one decimal (accuracies on 1,000 validation
    images), without the float residue that would make a gain printed as +1.0 fall under FLAT_TOL (86.9 + 70.7 is
    157.60000000000002). With finer scores a gain of 0.96 would still print +1.0 and count as under 1."""
    return round(new - old, 6)


def budget_rows(root: Path = FULL_ROOT) -> list[dict[str, Any]]:
    """One row per final run whose training has finished (it has a ``summary.json``: written once, after the last
    epoch). Runs still training are left out, so the report is the same in every clone that holds the same
    finished runs; a finished run whose summary or history is damaged or does not cover its epochs is an error."""
    rows: list[dict[str, Any]] = []
    for d in sorted(Path(root).glob("*/seed*")):
        if not (d / "summary.json").is_file():
            continue
        try:
            summary = TrainSummary.load(d / "summary.json")
            history = read_jsonl(d / "history.jsonl")
        except (OSError, ValueError, SummaryError) as e:
            raise ConfigError(f"{d}: a finished run whose summary or history cannot be read ({e})") from None
        if summary.epochs != len(history) or len(history) <= FLAT_WINDOW:
            raise ConfigError(f"{d}: its summary says {summary.epochs} epochs, its history holds {len(history)} "
                              f"(the budget check needs all of them, and more than {FLAT_WINDOW})")
        criterion = summary.selection.criterion
        scores = [_score(h, criterion) for h in history]
        before, best = max(scores[:-FLAT_WINDOW]), max(scores)
        chosen = max(history, key=lambda h: (_score(h, criterion), -h["epoch"]))
        rows.append({"preset": d.parent.name, "seed": summary.seed, "trainer": summary.trainer,
                     "criterion": criterion, "epochs": len(history), "chosen_epoch": chosen["epoch"],
                     "val_clean": chosen["val_clean"], "val_pgd20": chosen.get("val_robust", 0.0),
                     "best_before": before, "best": best, "gain": _gain(best, before),
                     "last_step": _gain(scores[-1], scores[-2]), "flat": _gain(best, before) < FLAT_TOL,
                     "curve": [(h["epoch"], round(h["val_clean"], 1), round(h.get("val_robust", 0.0), 1))
                               for h in history]})
    return rows


def render_budget(root: Path = FULL_ROOT, probe_root: Path | None = None) -> str:
    """Markdown: per final run, its selection score before and within the last ``FLAT_WINDOW`` epochs; then each
    budget probe under ``probe_root`` (default PROBE_ROOT) against the final run of its seed."""
    rows = budget_rows(root)
    w, tol = FLAT_WINDOW, FLAT_TOL
    md = [
        "# Budget check: have the final runs' validation curves flattened?",
        "",
        f"Written by `generalist-bench tune --budget-check` from the final runs under `{FULL_ROOT.as_posix()}/` "
        "(the presets at the shared budget, one directory per seed). **Validation split only**: the numbers are the "
        "ones each run's checkpoint selection computed on the first 1,000 validation images (clean and PGD-20). "
        "Runs still training are not listed.",
        "",
        f"Score = the run's own selection criterion (clean + PGD-20; clean alone for standard training). "
        f"*Gain* = best score over all epochs − best score before the last {w} epochs: what the end of the budget "
        f"still added. A run counts as **flat** when the gain is under {tol:g} point. The presets' learning rate "
        "drops 10× at two thirds of training and decays to 1 % at the end, so part of any late gain is that decay; "
        "a flat end says more epochs at this schedule would add little, a rising one says they might.",
        "",
        f"| preset | seed | epoch chosen / run | val clean | val PGD-20 | best score before the last {w} epochs | "
        "best score | gain | last epoch's change | flat |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        md.append(f"| {r['preset']} | {r['seed']} | {r['chosen_epoch']} / {r['epochs']} | {r['val_clean']:.1f} | "
                  f"{r['val_pgd20']:.1f} | {r['best_before']:.1f} | {r['best']:.1f} | {r['gain']:+.1f} | "
                  f"{r['last_step']:+.1f} | {'yes' if r['flat'] else '**no**'} |")
    by_preset: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_preset.setdefault(r["preset"], []).append(r)
    if by_preset:
        md += ["", "Per preset:", ""]
        for preset, rs in by_preset.items():
            flat = sum(r["flat"] for r in rs)
            gains = ", ".join(f"{r['gain']:+.1f}" for r in rs)
            md.append(f"- `{preset}`: {flat} of {len(rs)} seed(s) flat (gains {gains}).")
    md += ["", "Validation curves (epoch: clean / PGD-20):", ""]
    for r in rows:
        md.append(f"- `{r['preset']}` seed {r['seed']}: " + ", ".join(f"{e}: {c} / {p}" for e, c, p in r["curve"]))
    md += render_probe(root, PROBE_ROOT if probe_root is None else probe_root)
    return "\n".join(md).rstrip() + "\n"


def write_budget(root: Path = FULL_ROOT, stem: Path = BUDGET_STEM, probe_root: Path = PROBE_ROOT) -> Path:
    path = Path(f"{stem}.md")
    text = render_budget(root, probe_root)  # render first: an error leaves the existing file alone
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path


# ------------------------------------------------------------------------------------------ budget probe
# A curve still rising at the end of a decaying schedule may be the decay, not a short budget. The direct test: a
# ladder of longer budgets. Each final preset is trained again at each rung, PROBE_SCALES × PROBE_BASE_EPOCHS epochs
# (seed PROBE_SEED, its schedule stretched with it: the lr multiplier and γ are functions of the fraction of
# training; Generalist's t′ and c, absolute epochs in the preset, scale as the tuning's fractions 0.5·E and 0.1·E
# did), and each budget's best validation score compared with the next shorter one's (the shared budget's rung is
# the final run of the same seed; an earlier shared budget's final runs join the ladder through --adopt-budget).
# A budget is long enough for a method once PROBE_PATIENCE longer ones have run and none beats it by FLAT_TOL
# points (one flat step is not enough: one seed per rung, and standard training's 15-epoch rung gained 0.9 over its
# 10 epochs, its 20-epoch rung 1.4). The ladder is climbed rung by rung and stops for a method as soon as such a
# budget exists (each rung is CPU hours), or at its top rung (then one longer rung suffices). The shared budget the
# ladder supports is the longest of the methods' long-enough budgets. Validation split only: the test split is
# locked while a probe trains.


def shared_epochs(method: str) -> int:
    """The epochs of ``method``'s final preset: the shared budget."""
    return get_preset(f"fmnist-smallcnn-{method}").train.epochs


def probe_epochs(scale: float) -> int:
    """The ladder's rung at ``scale`` × PROBE_BASE_EPOCHS, rounded up (1.5 × 15 would be 23). Fixed epochs, the
    same for every method and whatever the shared budget is now."""
    return math.ceil(round(scale * PROBE_BASE_EPOCHS, 6))


def probe_dir(method: str, epochs: int, root: Path = PROBE_ROOT) -> Path:
    return Path(root) / f"fmnist-smallcnn-{method}-e{epochs}" / f"seed{PROBE_SEED}"


def probe_config(method: str, epochs: int):
    """The final preset of ``method`` stretched to ``epochs``, seed PROBE_SEED."""
    preset = f"fmnist-smallcnn-{method}"
    base = resolve_config(preset)
    ov: dict[str, Any] = {"train.epochs": epochs, "train.seed": PROBE_SEED}
    if base.train.merge is not None:  # t′ and c by the preset's rule, not rounded again from its rounded epochs
        warmup, every = fmnist_merge_epochs(epochs)
        ov |= {"train.merge.warmup_epochs": warmup, "train.merge.redistribute_every": every}
    cfg = resolve_config(preset, ov)
    # nothing here depends on the shared budget: a probe still training resumes after the budget changes
    return replace(cfg, name=f"probe-{preset}-e{epochs}",
                   description=f"budget probe: {preset} at {epochs} epochs, validation only")


def _finished_curve(d: Path) -> tuple[TrainSummary, list[dict[str, Any]]] | None:
    """(summary, history) of a finished run, None while it has no summary.json; damaged or short → ConfigError."""
    if not (d / "summary.json").is_file():
        return None
    try:
        summary = TrainSummary.load(d / "summary.json")
        history = read_jsonl(d / "history.jsonl")
    except (OSError, ValueError, SummaryError) as e:
        raise ConfigError(f"{d}: a finished run whose summary or history cannot be read ({e})") from None
    if summary.epochs != len(history) or not history:
        raise ConfigError(f"{d}: its summary says {summary.epochs} epochs, its history holds {len(history)}")
    return summary, history


def _check_probe(d: Path, method: str, epochs: int) -> None:
    """A finished probe must be this method's current preset stretched to ``epochs`` (its name and description
    aside: the description names the scale it was stretched by, and the final run of an earlier shared budget,
    moved to ``<preset>-e<epochs>/seed0`` when the budget changes, keeps the preset's name): a probe of an edited
    preset measures another recipe."""
    try:
        saved = config_from_dict(json.loads((d / "config.json").read_text()))
    except (OSError, ValueError, ConfigError) as e:
        raise ConfigError(f"{d}: a finished budget probe whose config.json cannot be read ({e})") from None
    want = probe_config(method, epochs)
    if replace(saved, name=want.name, description=want.description) != want:
        raise ConfigError(f"{d}: a budget probe of another recipe than `fmnist-smallcnn-{method}` stretched to "
                          f"{epochs} epochs (the preset changed since it ran); delete it and run "
                          "`generalist-bench tune --budget-probe` again")


def probe_rows(full_root: Path = FULL_ROOT, probe_root: Path = PROBE_ROOT) -> list[dict[str, Any]]:
    """Per method whose seed-PROBE_SEED final run has finished: its ladder of finished budgets in order of epochs
    (the final run and every finished probe under ``probe_root``, ``<preset>-e<epochs>/seed0``, whatever budget
    it was stretched from; a probe as long as the final run is left out; a run still training is not finished),
    each with its selected epoch, its score and its gain over the budget before it. ``enough_at``: the shortest
    budget that no longer one beats by FLAT_TOL points or more, with PROBE_PATIENCE longer ones run (or fewer once
    every rung has run; None while there is none); ``flat_so_far``: the shortest budget no longer one beats, however
    few longer ones have run; ``complete``: the ladder has stopped for this method (``enough_at`` found, or every
    rung of the ladder finished); ``next``: the next budget to probe, None once complete."""
    rows = []
    for method in PROBE_ORDER:
        final = _finished_curve(Path(full_root) / f"fmnist-smallcnn-{method}" / f"seed{PROBE_SEED}")
        if final is None:
            continue
        runs = {final[0].epochs: final}
        for d in sorted(Path(probe_root).glob(f"fmnist-smallcnn-{method}-e*/seed{PROBE_SEED}")):
            m = re.fullmatch(rf"fmnist-smallcnn-{method}-e(\d+)", d.parent.name)
            probe = _finished_curve(d) if m else None
            if probe is None:
                continue
            if probe[0].epochs != int(m[1]):
                raise ConfigError(f"{d}: a budget probe named for {m[1]} epochs whose summary says "
                                  f"{probe[0].epochs}")
            _check_probe(d, method, probe[0].epochs)
            if probe[0].epochs != final[0].epochs:
                runs[probe[0].epochs] = probe
        ladder = []
        for epochs in sorted(runs):
            summary, history = runs[epochs]
            criterion = summary.selection.criterion
            chosen = max(history, key=lambda h: (_score(h, criterion), -h["epoch"]))
            score = _score(chosen, criterion)
            ladder.append({"epochs": len(history), "chosen": chosen["epoch"], "clean": chosen["val_clean"],
                           "pgd20": chosen.get("val_robust", 0.0), "score": score,
                           "gain": _gain(score, ladder[-1]["score"]) if ladder else None,
                           "wall_min": summary.train_wall_time_s / 60,
                           "cpu": cpu_label(summary.hardware)})
        flat = [(a["epochs"], len(ladder) - 1 - i) for i, a in enumerate(ladder[:-1])
                if _gain(max(b["score"] for b in ladder[i + 1:]), a["score"]) < FLAT_TOL]
        todo = [e for e in (probe_epochs(s) for s in PROBE_SCALES) if e not in runs]
        enough = next((e for e, longer in flat if longer >= PROBE_PATIENCE or not todo), None)
        complete = enough is not None or not todo
        rows.append({"preset": f"fmnist-smallcnn-{method}", "method": method, "seed": PROBE_SEED,
                     "shared": final[0].epochs, "ladder": ladder, "enough_at": enough,
                     "flat_so_far": flat[0][0] if flat else None, "complete": complete,
                     "next": None if complete else todo[0]})
    return rows


def cpu_label(hw: Mapping[str, Any]) -> str:
    """A run's CPU as the report names it: the model name, and where the run recorded them its widest vector
    instruction set and whether it computes bfloat16 natively (one model name has covered both kinds here)."""
    label = hw.get("cpu") or "unknown"
    if "cpu_capability" in hw:
        label += f" ({hw['cpu_capability']}, {'bf16' if hw.get('bf16_native') else 'no bf16'} instructions)"
    return label


def supported_budget(rows: list[dict[str, Any]]) -> int | None:
    """The shared budget the ladder supports: the longest of the methods' long-enough budgets, once every method of
    PROBE_ORDER has a row in ``rows`` with one (None before; a method whose ladder topped out without one keeps it
    None)."""
    if {r["method"] for r in rows} != set(PROBE_ORDER) or any(r["enough_at"] is None for r in rows):
        return None
    return max(r["enough_at"] for r in rows)


def render_probe(full_root: Path = FULL_ROOT, probe_root: Path = PROBE_ROOT) -> list[str]:
    rows = probe_rows(full_root, probe_root)
    spread: dict[str, list[float]] = {}  # best score per finished seed: "<preset>" at the shared budget, …
    for r in budget_rows(full_root):
        spread.setdefault(r["preset"], []).append(r["best"])
    if Path(probe_root).is_dir():  # … "<preset>-e<epochs>" at a budget of the ladder (an earlier shared budget's
        for r in budget_rows(probe_root):  # seeds, moved there by --adopt-budget, besides its probe's seed 0)
            spread.setdefault(r["preset"], []).append(r["best"])
    rungs = ", ".join(str(probe_epochs(s)) for s in PROBE_SCALES)
    scales = ", ".join(f"{s:g}×" for s in PROBE_SCALES)
    md = ["", "## Longer budgets: does training longer help?", "",
          f"Written by `generalist-bench tune --budget-probe` (runs under `{PROBE_ROOT.as_posix()}/`): each preset "
          f"again at {rungs} epochs in turn ({scales} the {PROBE_BASE_EPOCHS}-epoch tuning budget: fixed rungs, so "
          "the ladder does not move when the shared budget moves onto one of them), seed "
          f"{PROBE_SEED}, its schedule stretched with it (lr and γ "
          "follow the fraction of training; Generalist's t′ and c scale as the tuning's 0.5·E and 0.1·E), the test "
          "split locked. The shared budget's row is the final run of the same seed. Each budget is scored at its own "
          "selected epoch, and its *gain* is its score minus the next shorter budget's. A budget is **long "
          f"enough** for a method when {PROBE_PATIENCE} longer budgets have run and none beats its score by "
          f"{FLAT_TOL:g} point or more (one flat step can be seed noise); the ladder stops for a method at its first "
          "such budget (or at its top rung, where one longer budget suffices), and until it has stopped the verdict "
          "is marked *so far*. \"No longer budget beats it\" covers the rungs trained, nothing beyond them. Each "
          "budget's score is its best epoch's, as the final runs select: a longer run has more epochs to pick "
          "from, a small bias towards longer budgets. The shared budget the ladder supports is the longest of the "
          "methods' long-enough budgets. "
          "One seed per budget: read a gain beside the *seed spread*, the range of the best score over the seeds "
          "trained at a budget (the final runs' at the shared budget; an earlier shared budget's, moved into the "
          "ladder by `--adopt-budget`, at that one), shown where two or more have finished; a gain inside it is "
          "within seed noise.", ""]
    probed = [r for r in rows if len(r["ladder"]) > 1]
    if not probed:
        return md + ["No probe has finished yet."]
    md += ["| preset | seed | epochs | epoch chosen | val clean / PGD-20 | score | gain | seed spread (seeds) | "
           "wall time (min) | CPU |", "|---|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in probed:
        for a in r["ladder"]:
            gain = "—" if a["gain"] is None else f"{a['gain']:+.1f}"
            shared = a["epochs"] == r["shared"]
            best = spread.get(r["preset"] if shared else f"{r['preset']}-e{a['epochs']}", [])
            sp = f"{max(best) - min(best):.1f} ({len(best)})" if len(best) > 1 else ""
            epochs = f"{a['epochs']} (shared budget)" if shared else f"{a['epochs']}"
            md.append(f"| {r['preset']} | {r['seed']} | {epochs} | {a['chosen']} | {a['clean']:.1f} / "
                      f"{a['pgd20']:.1f} | {a['score']:.1f} | {gain} | {sp} | {a['wall_min']:.0f} | {a['cpu']} |")
    cpus = sorted({a["cpu"] for r in probed for a in r["ladder"]})
    if len(cpus) > 1:
        md += ["", f"Trained on {len(cpus)} kinds of CPU ({', '.join(cpus)}): the same recipe and seed give slightly "
               "different floating-point results on each, so a gain between rows of different CPUs holds that "
               "noise too, and their wall times are not comparable."]
    md += ["", "Long enough?", ""]
    for r in probed:
        lad = r["ladder"]
        steps = ", ".join(f"{a['epochs']} → {b['epochs']}: {b['gain']:+.1f}"
                          for a, b in zip(lad, lad[1:], strict=False))
        if r["enough_at"] is not None:
            verdict = f"**{r['enough_at']} epochs**"
        elif r["flat_so_far"] is not None:
            longer = sum(a["epochs"] > r["flat_so_far"] for a in lad)
            verdict = (f"**{r['flat_so_far']} epochs** if the next rung agrees (no longer budget beats it, but only "
                       f"{longer} of the {PROBE_PATIENCE} longer budgets asked for have run; *so far*)")
        else:
            verdict = f"**not shown** up to {lad[-1]['epochs']} epochs"
        if not r["complete"] and r["flat_so_far"] is None:  # the flat-so-far verdict says so itself
            verdict += " *so far*"
        md.append(f"- `{r['preset']}`: {verdict} ({steps})")
    todo = [f"`{r['preset']}` at {r['next']} epochs" for r in rows if r["next"] is not None]
    if todo:
        md += ["", "Next rung to probe: " + ", ".join(todo) + "."]
    budget, shared = supported_budget(rows), sorted({r["shared"] for r in rows})
    if budget is None:
        md += ["", "Shared budget the ladder supports: **not known yet** (not every method has a long-enough budget)."]
    else:
        now = f"the presets' {shared[0]} epochs" if len(shared) == 1 else "the presets' budgets"
        md += ["", f"Shared budget the ladder supports: **{budget} epochs** (the longest of the methods' long-enough "
               f"budgets), against {now}" + (": long enough." if max(shared) >= budget else
                                               ": too short, the presets' budget should grow to it.")]
    return md


def run_probe(method: str, epochs: int, root: Path = PROBE_ROOT, *, progress: bool = True) -> Path:
    """Train ``method``'s budget probe at ``epochs`` (resuming its run directory) unless it has finished."""
    from .trainers.trainer import Trainer

    d = probe_dir(method, epochs, root)
    if _finished_curve(d) is not None:
        _check_probe(d, method, epochs)
        (d / "checkpoint.pt").unlink(missing_ok=True)  # interrupted after its summary was written
        return d
    cfg = probe_config(method, epochs)
    if (d / "config.json").is_file():  # in progress: probes started before the description lost its scale resume
        saved = _saved_config(d)
        if replace(saved, description=cfg.description) == cfg:
            cfg = saved
    with split_locked("test", "the budget probe reads the validation split only"):
        Trainer(cfg, d, resume=True, progress=progress).run()
    (d / "checkpoint.pt").unlink(missing_ok=True)  # finished: best.pt + history suffice
    return d


# ------------------------------------------------------------------------------------------ budget change
# When the shared budget changes (presets.FMNIST_EPOCHS), the final runs of the old budget are no longer the presets'
# runs: train_and_submit would refuse them as runs of another config. ``adopt_budget`` moves each of them into the
# ladder, ``<probe_root>/<preset>-e<old epochs>/seed<k>`` (seed 0 is the ladder's rung of that budget; the other seeds
# are kept beside it, read by nothing yet), and makes a finished probe at the new budget the seed-0 final run: it is
# the new preset's recipe exactly (checked), trained with the test split locked, so only its name and description
# change. Everything listed as an error is checked before anything moves; each move is one rename, and a promotion
# renames the probe's config and summary in place first, so an interrupted call is finished by calling it again.


def _final_config(preset: str, seed: int):
    """The config train_and_submit trains for ``preset`` at ``seed`` under the full profile."""
    from .train_and_submit import FULL

    return resolve_config(FULL.apply(resolve_config(preset)), [f"train.seed={seed}"])


def _saved_config(d: Path):
    try:
        return config_from_dict(json.loads((d / "config.json").read_text()))
    except (OSError, ValueError, ConfigError) as e:
        raise ConfigError(f"{d}: a run whose config.json cannot be read ({e})") from None


def adopt_budget(full_root: Path = FULL_ROOT, probe_root: Path = PROBE_ROOT) -> list[str]:
    """Make the run directories follow the presets' current budget (see above); returns what it did, one line per
    move. A run of another budget still training, a destination already taken or a probe of another recipe is one
    ConfigError before any move; so is a run directory another process holds (a trainer's ``.run.lock``, a
    train_and_submit's ``.submit-seed<k>.lock``), and none can start on one while this runs."""
    from contextlib import ExitStack

    from .utils.io import exclusive_or_fail

    with ExitStack() as held:
        for method in PROBE_ORDER:
            base = Path(full_root) / f"fmnist-smallcnn-{method}"
            dirs = sorted(base.glob("seed*")) if base.is_dir() else []
            for d in dirs:
                held.enter_context(exclusive_or_fail(
                    base / f".submit-{d.name}.lock", f"{d} is in use by a train_and_submit; wait for it to finish"))
            for d in [*dirs, *sorted(Path(probe_root).glob(f"fmnist-smallcnn-{method}-e*/seed{PROBE_SEED}"))]:
                held.enter_context(exclusive_or_fail(
                    d / ".run.lock", f"{d} is in use by a training process; wait for it to finish"))
        return _adopt_budget(full_root, probe_root)


def _adopt_budget(full_root: Path, probe_root: Path) -> list[str]:
    moves: list[tuple[Path, Path]] = []
    promote: list[tuple[Path, Path, Any]] = []
    for method in PROBE_ORDER:
        preset = f"fmnist-smallcnn-{method}"
        base = Path(full_root) / preset
        epochs = shared_epochs(method)
        seed_dirs = sorted(base.glob("seed*")) if base.is_dir() else []
        for d in seed_dirs:
            seed = int(d.name[4:]) if d.name[4:].isdigit() else None
            if seed is None:
                raise ConfigError(f"{d}: not a seed directory (seed<k>) of a final run; move it away")
            if _saved_config(d) == _final_config(preset, seed):
                continue  # already a run of the current budget
            finished = _finished_curve(d)
            if finished is None:
                raise ConfigError(f"{d}: a run of another recipe than `{preset}` still training (no summary.json); "
                                  "finish it under the old budget or delete it before changing the budget")
            old = finished[0].epochs
            if old == epochs:
                raise ConfigError(f"{d}: a finished run of `{preset}` at its current {epochs} epochs but of another "
                                  "recipe (the preset changed otherwise); delete it to retrain")
            dest = Path(probe_root) / f"{preset}-e{old}" / d.name
            if dest.exists():
                raise ConfigError(f"{d} would move to {dest}, which exists; resolve by hand")
            if seed == PROBE_SEED:
                _check_probe_recipe(d, method, old)
            moves.append((d, dest))
        probe = probe_dir(method, epochs, probe_root)
        seed0 = base / f"seed{PROBE_SEED}"
        free = not seed0.exists() or any(src == seed0 for src, _ in moves)
        if _finished_curve(probe) is not None and not free:
            print(f"[adopt budget] {probe}: left in place, {seed0} already holds a run at the current budget",
                  file=sys.stderr, flush=True)
        if free and _finished_curve(probe) is not None:
            _check_probe(probe, method, epochs)
            if not (probe / "best.pt").is_file() or (probe / "checkpoint.pt").exists():
                raise ConfigError(f"{probe}: a finished probe needs best.pt and no checkpoint.pt to be reopened as a "
                                  "final run (train_and_submit would train over it); run `generalist-bench tune "
                                  "--budget-probe` to finish it")
            want = _final_config(preset, PROBE_SEED)
            saved = _saved_config(probe)
            if replace(saved, name=want.name, description=want.description) != want:
                raise ConfigError(f"{probe}: its recipe is not `{preset}`'s final run at seed {PROBE_SEED}")
            promote.append((probe, seed0, want))
    done = []
    for src, dest in moves:
        dest.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dest)
        done.append(f"moved {src} -> {dest} (a run of an earlier budget: kept in the ladder)")
    for src, dest, want in promote:
        summary = json.loads((src / "summary.json").read_text())
        atomic_write_json(src / "config.json", want.to_dict())  # the probe check ignores the name: still a probe
        atomic_write_json(src / "summary.json", summary | {"config_name": want.name})
        dest.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dest)
        done.append(f"moved {src} -> {dest} (the finished probe at the new budget is its seed-{PROBE_SEED} final "
                    "run: same recipe, renamed)")
        if src.parent.is_dir() and not any(src.parent.iterdir()):
            src.parent.rmdir()
    return done


def _check_probe_recipe(d: Path, method: str, epochs: int) -> None:
    """A final run of an earlier budget moving into the ladder must be the current preset stretched to its epochs
    (what the ladder's probe check will ask of it), else the move would break the budget check."""
    try:
        _check_probe(d, method, epochs)
    except ConfigError:
        raise ConfigError(f"{d}: a final run of `fmnist-smallcnn-{method}` at {epochs} epochs whose recipe is not the "
                          "current preset's stretched to them (the preset changed beyond its budget); it cannot join "
                          "the ladder: move or delete it by hand") from None


# ------------------------------------------------------------------------------------------------ run
def run_trial(trial: Trial, root: Path = RUN_ROOT, *, progress: bool = True) -> dict[str, Any]:
    """Train ``trial`` (resuming its run directory) unless it has finished; returns its outcome."""
    from .trainers.trainer import Trainer

    done = outcome(trial, root)
    if done is not None:
        return done
    cfg = replace(resolve_config(trial.preset, trial.overrides(winners(root))), name=f"tune-{trial.id}")
    with split_locked("test", "hyperparameter tuning reads the validation split only"):
        Trainer(cfg, run_dir(trial, root), resume=True, progress=progress).run()
    (run_dir(trial, root) / "checkpoint.pt").unlink(missing_ok=True)  # finished: best.pt + history suffice
    result = outcome(trial, root)
    assert result is not None, f"trial {trial.id} ended without a complete history"
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--only", nargs="*", default=None, metavar="TRIAL", help="run these trials only (default: all, "
                   "in order)")
    p.add_argument("--methods", nargs="*", default=None, choices=METHODS, help="run these methods' trials only")
    p.add_argument("--root", default=str(RUN_ROOT), help=f"run directories (default {RUN_ROOT})")
    p.add_argument("--log", default=str(LOG_STEM), help=f"log path without suffix (default {LOG_STEM})")
    p.add_argument("--list", action="store_true", help="list the trials and their state, train nothing")
    p.add_argument("--log-only", action="store_true", help="rewrite the log from finished runs, train nothing")
    p.add_argument("--budget-check", action="store_true",
                   help="write the budget check (--budget-out) from the final runs under --full-root (has each "
                        "validation curve flattened by the end of the shared budget?), train nothing")
    p.add_argument("--budget-probe", action="store_true",
                   help=f"train the budget probes of --methods (default all: {', '.join(PROBE_ORDER)}) that have "
                        f"not finished: each final preset at {', '.join(str(probe_epochs(x)) for x in PROBE_SCALES)} "
                        f"epochs in turn until {PROBE_PATIENCE} longer budgets fail to beat one by {FLAT_TOL:g} point, "
                        f"seed {PROBE_SEED}, "
                        "validation only; then write the budget check with their comparison")
    p.add_argument("--probe-root", default=str(PROBE_ROOT), help=f"budget probe runs (default {PROBE_ROOT})")
    p.add_argument("--adopt-budget", action="store_true",
                   help="after a change of the shared budget (presets.FMNIST_EPOCHS): move the final runs of the old "
                        "budget into the probe ladder and make each finished probe at the new budget its preset's "
                        "seed-0 final run; train nothing")
    p.add_argument("--full-root", default=str(FULL_ROOT), help=f"final run directories (default {FULL_ROOT})")
    p.add_argument("--budget-out", default=str(BUDGET_STEM),
                   help=f"budget check path without suffix (default {BUDGET_STEM})")
    p.add_argument("--threads", type=int, default=None, help="torch threads (train.num_threads)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    root = Path(args.root)
    known = {t.id for t in TRIALS}
    for name in args.only or ():
        if name not in known:
            raise ConfigError(f"unknown trial {name!r}; `generalist-bench tune --list` lists them")
    selected = [t for t in TRIALS if (args.only is None or t.id in args.only)
                and (args.methods is None or t.method in args.methods)]
    if args.threads:  # speed only: not part of the config, so a run resumes under any thread count
        import torch

        torch.set_num_threads(args.threads)
    if args.adopt_budget:
        for line in adopt_budget(Path(args.full_root), Path(args.probe_root)):
            print(line)
        print(f"budget check: {write_budget(Path(args.full_root), Path(args.budget_out), Path(args.probe_root))}")
        return 0
    if args.budget_check or args.budget_probe:
        full, probes = Path(args.full_root), Path(args.probe_root)
        if not full.is_dir():
            raise ConfigError(f"--full-root {full}: no such directory")
        render_budget(full, probes)  # a damaged run is reported before any training
        if args.budget_probe:
            methods = [m for m in PROBE_ORDER if args.methods is None or m in args.methods]
            for r in probe_rows(full, probes):
                now = shared_epochs(r["method"])
                if r["method"] in methods and r["shared"] != now:
                    raise ConfigError(f"{full}/{r['preset']}/seed{PROBE_SEED}: a final run of {r['shared']} epochs "
                                      f"while the preset trains {now}: the shared budget changed; run "
                                      "`generalist-bench tune --adopt-budget` first")
            for scale in PROBE_SCALES:  # every method at the shorter budget first, each until its curve is flat
                for m in methods:
                    row = next((r for r in probe_rows(full, probes) if r["method"] == m), None)
                    if row is None:
                        if scale == PROBE_SCALES[0]:
                            print(f"[budget probe] {m}: no finished seed-{PROBE_SEED} final run under {full} to "
                                  "compare with; skipped (train it with train_and_submit first)", file=sys.stderr,
                                  flush=True)
                        continue
                    if row["complete"] or probe_epochs(scale) in {a["epochs"] for a in row["ladder"]}:
                        continue
                    d = run_probe(m, probe_epochs(scale), probes, progress=not args.no_progress)
                    print(f"[budget probe] {m} x{scale:g}: finished in {d}", file=sys.stderr, flush=True)
                    write_budget(full, Path(args.budget_out), probes)
        print(f"budget check: {write_budget(full, Path(args.budget_out), probes)}")
        return 0
    if args.list:
        for t in TRIALS:
            o = outcome(t, root)
            state = f"done: score {o['score']:.1f} (epoch {o['chosen_epoch']})" if o else "pending"
            print(f"{t.id:<28} {t.method:<11} {state:<32} {t.what}")
        return 0
    with split_locked("test", "hyperparameter tuning reads the validation split only"):
        if not args.log_only:
            for t in selected:
                o = run_trial(t, root, progress=not args.no_progress)
                print(f"[tune] {t.id}: val clean {o['val_clean']:.2f} PGD-20 {o['val_pgd20']:.2f} "
                      f"(epoch {o['chosen_epoch']}/{o['epochs']}, {o['wall_min']:.1f} min)", file=sys.stderr,
                      flush=True)
                write_log(root, Path(args.log))
        md, _ = write_log(root, Path(args.log))
    print(f"tuning log: {md}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import main as cli_main

    return cli_main(["tune", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
