"""The training loop (``Trainer``): one epoch loop drives every objective and Generalist's W learners.

Per epoch: lr and γ from their schedules → for every batch, each learner takes one optimiser step on
its own objective (and augmentation) → the global learner merges them (Generalist) → redistribution at
the configured boundaries → validation on the held-out split → atomic checkpoint.

Determinism: every random draw of epoch e (shuffle, augmentation, attack starts, dropout) comes from
seeds derived from (seed, e), and a checkpoint is written at every epoch end, so a run killed after
epoch k and resumed ends bit-identical (on CPU) to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data.distributed import DistributedSampler

from ..config import Config, config_from_dict, interp_schedule, same_run
from ..data import load_dataset
from ..errors import CheckpointError, ConfigError, TrainingDivergedError
from ..models import model_for_dataset
from ..utils.env import git_commit, hardware, library_versions, resolve_device
from ..utils.io import atomic_torch_save, atomic_write_json, atomic_write_text, read_jsonl
from ..utils.testgate import gate
from .amp import Float32Kernels, amp_context, bf16_kernels, bf16_note, grad_scaler
from .augment import augment
from .distributed import DistInfo, all_reduce_mean, average_float_buffers, barrier, init_distributed
from .generalist import GlobalLearner, epoch_redistributes, iteration_redistributes, mixing_weights
from .objectives import build_objective
from .summary import Selection, TrainSummary
from .validation import score, validate

log = logging.getLogger("generalist_bench.train")
CHECKPOINT_FORMAT = "generalist_bench.checkpoint/1"


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + stream * 104_729) % (2**63 - 1)


@dataclass
class Learner:
    name: str
    model: nn.Module          # the bare module (attacked, merged, saved)
    wrapped: nn.Module        # what the update goes through (DDP in distributed runs)
    optimizer: torch.optim.Optimizer
    objective: Any
    cfg: Any


@dataclass
class TrainResult:
    """``model``: the selected model (best validation epoch), eval mode. ``final_model``: last epoch's (None for a
    finished run reopened without its ``checkpoint.pt``: best.pt, history and summary are all it kept)."""

    model: nn.Module
    final_model: nn.Module | None
    history: list[dict]
    checkpoint_path: Path
    best_path: Path
    out_dir: Path
    summary: TrainSummary | None = None


def default_out_dir(cfg: Config) -> Path:
    return Path("runs") / cfg.name / f"seed{cfg.train.seed}"


def _make_optimizer(params, ocfg) -> torch.optim.Optimizer:
    if ocfg.name == "sgd":
        return torch.optim.SGD(params, lr=ocfg.lr, momentum=ocfg.momentum, weight_decay=ocfg.weight_decay,
                               nesterov=ocfg.nesterov)
    return torch.optim.Adam(params, lr=ocfg.lr, weight_decay=ocfg.weight_decay)


class Trainer:
    def __init__(self, cfg: Config, out_dir: str | Path | None = None, *, resume: bool = False,
                 progress: bool = True, dist_info: DistInfo | None = None):
        self.cfg = cfg.validate()
        self.out_dir = Path(out_dir) if out_dir is not None else default_out_dir(cfg)
        self.resume = resume
        self.dist = dist_info or init_distributed()
        self.progress = progress and self.dist.is_primary
        t = cfg.train
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        dev = resolve_device(t.device)
        if dev == torch.device("cuda") and self.dist.enabled:
            dev = torch.device(f"cuda:{self.dist.local_rank}")
        self.device = dev
        bf16_kernels(t.amp, self.device)  # a bad GENERALIST_BENCH_BF16_KERNELS fails here, before any work
        self.checkpoint_path = self.out_dir / "checkpoint.pt"
        self.best_path = self.out_dir / "best.pt"

    # ------------------------------------------------------------------------------------------ setup
    def _setup(self) -> None:
        cfg, t = self.cfg, self.cfg.train
        d = cfg.data
        train = load_dataset(d.dataset, "train", d.data_dir, val_size=d.val_size, split_seed=d.split_seed)
        train = train.subset(d.train_subset)
        val = load_dataset(d.dataset, "val", d.data_dir, val_size=d.val_size, split_seed=d.split_seed)
        val = val.subset(t.selection.n_val)
        self.x, self.y = train.x.to(self.device), train.y.to(self.device)
        self.val_x, self.val_y = val.x.to(self.device), val.y.to(self.device)
        self.data_source = train.source
        if t.channels_last:
            self.x = self.x.contiguous(memory_format=torch.channels_last)

        torch.manual_seed(t.seed)  # one initialisation shared by every learner
        template = model_for_dataset(cfg.model.arch, d.dataset).to(self.device)
        if t.channels_last:
            template = template.to(memory_format=torch.channels_last)
        self.learners: list[Learner] = []
        for lc in t.learners:
            model = copy.deepcopy(template)
            wrapped = model
            if self.dist.enabled:
                wrapped = nn.parallel.DistributedDataParallel(
                    model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            opt = _make_optimizer(model.parameters(), lc.optim)
            self.learners.append(Learner(lc.name, model, wrapped, opt, build_objective(lc, cfg.threat), lc))
        self.merge = GlobalLearner(template, len(self.learners), t.merge) if t.merge is not None else None
        self.sampler = DistributedSampler(range(len(self.y)), num_replicas=self.dist.world_size, rank=self.dist.rank,
                                          shuffle=True, seed=t.seed, drop_last=False)
        self.scaler = grad_scaler(t.amp, self.device)
        self.history: list[dict] = []
        self.best: dict | None = None
        self.elapsed = 0.0
        self.start_epoch = 1
        self.last_decay = None
        self.best_state: dict | None = None

    @property
    def trained_model(self) -> nn.Module:
        return self.merge.model if self.merge is not None else self.learners[0].model

    # ------------------------------------------------------------------------------------ checkpoint
    def _state(self, epoch: int) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch,
            "config": self.cfg.to_dict(),
            "learners": [{"name": ln.name, "model": ln.model.state_dict(), "optimizer": ln.optimizer.state_dict()}
                         for ln in self.learners],
            "merge": self.merge.state_dict() if self.merge is not None else None,
            "history": self.history,
            "best": self.best,
            "best_state": self.best_state,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "elapsed_s": self.elapsed,
        }

    def _load(self) -> None:
        try:
            ck = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        except Exception as e:
            raise CheckpointError(f"cannot resume from {self.checkpoint_path}: {type(e).__name__}: {e}") from e
        if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{self.checkpoint_path} is not a generalist_bench training checkpoint")
        saved = config_from_dict(ck["config"])
        if not same_run(saved, self.cfg):
            diff = _diff(saved.to_dict(), self.cfg.to_dict())
            raise ConfigError(f"--resume: {self.checkpoint_path} was written with a different config "
                              f"({'; '.join(diff[:5])}); use the same settings or another --out directory")
        for ln, s in zip(self.learners, ck["learners"], strict=True):
            ln.model.load_state_dict(s["model"])
            ln.optimizer.load_state_dict(s["optimizer"])
        if self.merge is not None:
            self.merge.load_state_dict(ck["merge"])
        self.history, self.best, self.elapsed = ck["history"], ck["best"], float(ck["elapsed_s"])
        self.best_state = ck.get("best_state")
        if self.scaler is not None and ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
        if self.best_state is not None and self.dist.is_primary:  # best.pt always matches the checkpoint
            atomic_torch_save(self.best_state, self.best_path)
        self.start_epoch = int(ck["epoch"]) + 1

    def _save(self, epoch: int) -> None:
        if not self.dist.is_primary:
            return
        atomic_torch_save(self._state(epoch), self.checkpoint_path)
        atomic_write_text(self.out_dir / "history.jsonl", "".join(json.dumps(h) + "\n" for h in self.history))
        gate("train-checkpoint-saved")

    # ----------------------------------------------------------------------------------------- epoch
    def _lrs(self, epoch: int) -> dict[str, float]:
        E = self.cfg.train.epochs
        lrs = {ln.name: ln.cfg.optim.lr * interp_schedule(ln.cfg.optim.lr_schedule, epoch / E) for ln in self.learners}
        for ln in self.learners:
            if ln.cfg.lr_from:
                lrs[ln.name] = lrs[ln.cfg.lr_from]
        return lrs

    def _train_epoch(self, epoch: int) -> dict:
        """One epoch; bf16 products on the kernels ``bf16_kernels`` picks (entered around forward and backward
        alike), recorded in the epoch's record (a resumed run may have changed machine)."""
        kernels = bf16_kernels(self.cfg.train.amp, self.device)
        with Float32Kernels() if kernels == "float32" else contextlib.nullcontext():
            rec = self._epoch(epoch)
        if kernels is not None:
            rec["bf16_kernels"] = kernels
        return rec

    def _epoch(self, epoch: int) -> dict:
        cfg, t = self.cfg, self.cfg.train
        E = t.epochs
        r = 2 * self.dist.rank  # each rank its own streams; rank 0 = a single-process run
        torch.manual_seed(epoch_seed(t.seed, epoch, r))                     # dropout
        gen = torch.Generator().manual_seed(epoch_seed(t.seed, epoch, r + 1))  # augmentation and attack starts
        self.sampler.set_epoch(epoch)
        order = torch.tensor(list(self.sampler), dtype=torch.long)
        lrs = self._lrs(epoch)
        for ln in self.learners:
            for group in ln.optimizer.param_groups:
                group["lr"] = lrs[ln.name]
        gammas = mixing_weights(t.learners, epoch, E) if self.merge is not None else [1.0]
        per_iter = self.merge is not None and iteration_redistributes(t.merge, epoch, E)
        sums: dict[str, float] = {}
        n_batches = math.ceil(len(order) / t.batch_size)
        bar = None
        if self.progress and sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{E}", unit="batch", leave=False, dynamic_ncols=True)
        start = time.perf_counter()
        ctx = amp_context(t.amp, self.device)
        for b in range(n_batches):
            idx = order[b * t.batch_size:(b + 1) * t.batch_size].to(self.device)
            xb, yb = self.x[idx], self.y[idx]
            for ln in self.learners:
                xi = augment(xb, ln.cfg.augment, gen)
                with ctx:
                    out = ln.objective(ln.wrapped, ln.model, xi, yb, gen)
                loss = out["loss"]
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(
                        f"non-finite loss ({loss.item()}) for learner {ln.name!r} at epoch {epoch}, batch {b + 1}; "
                        f"the last good checkpoint ({self.checkpoint_path}, epoch {epoch - 1}) is kept")
                ln.optimizer.zero_grad(set_to_none=True)
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                    self.scaler.step(ln.optimizer)
                    self.scaler.update()
                else:
                    loss.backward()
                    ln.optimizer.step()
                for k, v in out.items():
                    key = f"{ln.name}/{k}"
                    sums[key] = sums.get(key, 0.0) + float(v.detach())
            if self.merge is not None:
                for ln in self.learners:
                    average_float_buffers(ln.model, self.dist)
                self.last_decay = self.merge.update([ln.model for ln in self.learners], gammas)
                if per_iter:
                    self.merge.redistribute([ln.model for ln in self.learners], [ln.optimizer for ln in self.learners])
            if bar is not None:
                rate = (b + 1) * t.batch_size / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix({k.split("/")[0] + ":" + k.split("/")[1]: f"{v / (b + 1):.3f}"
                                 for k, v in sums.items() if k.endswith("/loss")} | {"img/s": f"{rate:.0f}"})
                bar.update()
        if bar is not None:
            bar.close()
        redistributed = False
        if self.merge is not None and epoch_redistributes(t.merge, epoch, E):
            self.merge.redistribute([ln.model for ln in self.learners], [ln.optimizer for ln in self.learners])
            redistributed = True
        seconds = time.perf_counter() - start
        keys = sorted(sums)
        means = dict(zip(keys, all_reduce_mean([sums[k] / n_batches for k in keys], self.dist), strict=True))
        rec = {"epoch": epoch, "lr": lrs, "train": means, "train_seconds": seconds,
               "img_per_s": len(order) * self.dist.world_size / seconds}
        if self.merge is not None:
            rec["gamma"] = dict(zip([ln.name for ln in self.learners], gammas, strict=True))
            rec["ema_decay"] = self.last_decay  # the decay of the epoch's last merge step
            rec["redistributed"] = "every iteration" if per_iter else redistributed
        del cfg
        return rec

    # ------------------------------------------------------------------------------------------- run
    def run(self) -> TrainResult:
        if self.out_dir is None or not self.dist.is_primary:
            return self._run()
        from ..utils.io import exclusive_or_fail

        # one writer per run directory: a second process would interleave checkpoints with this one's
        with exclusive_or_fail(Path(self.out_dir) / ".run.lock",
                               f"training run directory {self.out_dir} is in use by another process (a "
                               "concurrent train/train_and_submit?); wait for it or choose another --out"):
            return self._run()

    def _finished_record(self) -> tuple[TrainSummary, list[dict]] | None:
        """A finished run of this config kept without ``checkpoint.pt`` (best.pt, config.json, history.jsonl and a
        summary of all its epochs): its summary and history; None when there is no such run. A run directory of
        another config is an error, as on resume."""
        d = self.out_dir
        if d is None or not self.resume or self.checkpoint_path.exists() or not self.best_path.exists() \
                or not (d / "summary.json").exists():
            return None
        # best.pt and summary.json without a checkpoint: a finished run. Damage is an error, not a reason to retrain
        # over it (that would replace its best.pt).
        try:
            saved = config_from_dict(json.loads((d / "config.json").read_text()))
            summary = TrainSummary.load(d / "summary.json")
            history = read_jsonl(d / "history.jsonl")
        except (OSError, ValueError, CheckpointError, ConfigError) as e:
            raise CheckpointError(f"{d} holds a finished run (best.pt, summary.json, no checkpoint.pt) that cannot be "
                                  f"reopened: {e}; repair it or move it away to retrain") from None
        if not same_run(saved, self.cfg):
            diff = _diff(saved.to_dict(), self.cfg.to_dict())
            raise ConfigError(f"--resume: {d} holds a finished run of a different config ({'; '.join(diff[:5])})")
        epochs = self.cfg.train.epochs
        if summary.epochs != epochs or len(history) != epochs or summary.selection.chosen is None:
            raise CheckpointError(f"{d} holds a run without checkpoint.pt whose summary/history do not cover its "
                                  f"{epochs} epochs ({summary.epochs} / {len(history)}); it cannot be resumed")
        return summary, history

    def _run(self) -> TrainResult:
        self._setup()
        cfg, t = self.cfg, self.cfg.train
        finished = self._finished_record()
        if finished is not None:  # reopened to publish it: nothing to train, no final weights to return
            summary, self.history = finished
            self.best, self.elapsed = summary.selection.chosen, summary.train_wall_time_s
            self.start_epoch = t.epochs + 1
            log.info("reopening the finished run %s (no checkpoint.pt: best.pt and its summary)", self.out_dir)
            return self._result(final=False)
        if self.checkpoint_path.exists():
            if not self.resume:
                raise ConfigError(f"{self.checkpoint_path} exists; pass --resume to continue it or choose another "
                                  f"--out directory")
            self._load()
            log.info("resuming %s from epoch %d", self.out_dir, self.start_epoch)
        if self.dist.is_primary:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out_dir / "config.json", cfg.to_dict())
            note = bf16_note(t.amp, self.device, bf16_kernels(t.amp, self.device))
            if note is not None and self.start_epoch <= t.epochs:
                log.log(logging.WARNING if note[0] else logging.INFO, "%s", note[1])
        barrier(self.dist)
        sel = t.selection
        epoch_bar = None
        if self.progress and sys.stderr.isatty():
            from tqdm import tqdm

            epoch_bar = tqdm(total=t.epochs, initial=self.start_epoch - 1, desc=cfg.name, unit="epoch",
                             dynamic_ncols=True)
        for epoch in range(self.start_epoch, t.epochs + 1):
            rec = self._train_epoch(epoch)
            if epoch % sel.every == 0 or epoch == t.epochs:
                t0 = time.perf_counter()
                val_steps = sel.attack_steps
                rec.update(validate(self.trained_model, self.val_x, self.val_y, eps=cfg.threat.eps,
                                    norm=cfg.threat.norm, steps=val_steps, seed=t.seed))
                rec["val_seconds"] = time.perf_counter() - t0
                s = score(rec, sel.criterion, epoch)
                if self.best is None or s > self.best["score"]:
                    self.best = {"epoch": epoch, "score": s, "criterion": sel.criterion,
                                 **{k: rec[k] for k in ("val_clean", "val_robust") if k in rec}}
                    self.best_state = {k: v.detach().clone() for k, v in self.trained_model.state_dict().items()}
            self.elapsed += rec["train_seconds"] + rec.get("val_seconds", 0.0)
            rec["elapsed_s"] = self.elapsed
            self.history.append(rec)
            self._save(epoch)  # the checkpoint (with the best state) first, then best.pt from it
            if self.dist.is_primary and self.best is not None and self.best["epoch"] == epoch:
                atomic_torch_save(self.best_state, self.best_path)
            if self.dist.is_primary:
                vals = " ".join(f"{k}={rec[k]:.2f}" for k in ("val_clean", "val_robust") if k in rec)
                losses = " ".join(f"{k}={v:.4f}" for k, v in rec["train"].items() if k.endswith("/loss"))
                eta = (t.epochs - epoch) * (self.elapsed / max(len(self.history), 1))
                line = (f"[{cfg.name}] epoch {epoch}/{t.epochs} {losses} {vals} {rec['img_per_s']:.0f} img/s "
                        f"elapsed {self.elapsed / 60:.1f} min eta {eta / 60:.1f} min")
                if epoch_bar is not None:
                    epoch_bar.write(line)
                    epoch_bar.set_postfix({k: f"{rec[k]:.1f}" for k in ("val_clean", "val_robust") if k in rec})
                    epoch_bar.update()
                else:
                    print(line, file=sys.stderr, flush=True)
        if epoch_bar is not None:
            epoch_bar.close()
        barrier(self.dist)
        return self._result()

    def _result(self, final: bool = True) -> TrainResult:
        final_model = copy.deepcopy(self.trained_model).eval() if final else None
        best = copy.deepcopy(self.trained_model).eval()
        if self.best_path.exists():
            best.load_state_dict(torch.load(self.best_path, map_location=self.device, weights_only=True))
        reopened = self.start_epoch > self.cfg.train.epochs
        prev = None
        if reopened:
            # nothing trained in this process (a finished run reopened, e.g. to publish it): the machine, thread
            # count, versions and commit that trained it stay those of the session that wrote the summary
            try:
                prev = TrainSummary.load(self.out_dir / "summary.json")
            except CheckpointError:
                prev = None
        summary = TrainSummary(
            config_name=self.cfg.name,
            trainer=self.cfg.train.trainer,
            epochs=self.cfg.train.epochs,
            seed=self.cfg.train.seed,
            selection=Selection(
                split="val", criterion=self.cfg.train.selection.criterion, n_val=len(self.val_y),
                attack=f"PGD-{self.cfg.train.selection.attack_steps} ({self.cfg.threat.norm}, eps "
                       f"{self.cfg.threat.eps:g}, step eps/4, seeded uniform start)",
                chosen_epoch=self.best["epoch"] if self.best else None, chosen=self.best),
            last={k: self.history[-1][k] for k in ("epoch", "val_clean", "val_robust") if k in self.history[-1]}
            if self.history else None,
            train_wall_time_s=self.elapsed,
            img_per_s_mean=(sum(h["img_per_s"] for h in self.history) / len(self.history)) if self.history else None,
            n_train=len(self.y),
            data_source=self.data_source,
            world_size=self.dist.world_size,
            hardware=prev.hardware if prev else hardware(),
            versions=prev.versions if prev else library_versions(),
            commit=prev.commit if prev else git_commit(),
        )
        if self.dist.is_primary:
            atomic_write_json(self.out_dir / "summary.json", summary.to_dict())
        return TrainResult(best, final_model, self.history, self.checkpoint_path, self.best_path, self.out_dir,
                           summary)


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += _diff(x, y, f"{path}.{i}")
        return out
    return [] if a == b else [f"{path}: {a!r} → {b!r}"]
