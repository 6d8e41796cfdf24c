"""The evaluation loop: clean pass, then each attack on the points that need it, batch by batch, with the
per-sample results saved after every batch (resumable), forward/backward passes counted and progress shown.

Batching follows ``pyautoattack.AutoAttack.run_standard_evaluation``: an attack's points (the still-robust ones)
are taken in index order, ``batch_size`` at a time. With the same batch size and no interruption the batches
are exactly upstream's, so the numbers are bit-identical to upstream given the same random starts. Every
attack draws its random numbers per sample, so other batchings (resumes, shards, other batch sizes) give the
same per-sample results up to floating-point differences of batch-size-dependent kernels
(``sanity.batch_invariance`` records whether the model's logits depend on the batch size at all).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..attacks.base import model_mode
from ..attacks.model_call import ModelCall
from ..errors import ConfigError, GeneralistBenchError
from ..utils.io import atomic_write_json
from ..utils.testgate import gate
from .checks import perturbation_stats
from .result import decode_flags, decode_ranges, encode_flags, encode_ranges

STATE_FORMAT = "generalist_bench.eval_state/1"


@contextlib.contextmanager
def prepared(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and frozen parameters for the duration (both restored): attacks need input gradients only."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    with model_mode(model, False):
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            yield model
        finally:
            for p, r in flags:
                p.requires_grad_(r)


# ------------------------------------------------------------------------------------------ state
@dataclass
class AtomState:
    done: torch.Tensor
    robust: torch.Tensor
    stats: dict[str, Any] = field(default_factory=dict)
    perturbation: dict[str, Any] = field(default_factory=dict)


class EvalState:
    """Per-sample progress of one evaluation, saved atomically as JSON after every batch."""

    def __init__(self, key: dict[str, Any], indices: torch.Tensor, atoms: tuple[str, ...], path: Path | None):
        n = len(indices)
        self.key, self.indices, self.path = key, indices, path
        self.clean: torch.Tensor | None = None
        self.clean_stats: dict[str, Any] = {}
        self.atoms = {a: AtomState(torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)) for a in atoms}
        self.aa_messages: dict[str, int] = {}
        self.extra: dict[str, Any] = {}
        self.elapsed_s = 0.0
        self.sessions = 0

    def progress(self) -> tuple[bool, tuple[int, ...]]:
        """What has been attacked so far: whether the clean pass ran, and each attack's count of points done."""
        return self.clean is not None, tuple(int(s.done.sum()) for s in self.atoms.values())

    def to_dict(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "key": self.key, "indices": encode_ranges(self.indices),
                "clean": None if self.clean is None else encode_flags(None, self.clean),
                "clean_stats": self.clean_stats,
                "atoms": {a: {"flags": encode_flags(s.done, s.robust), "stats": s.stats,
                              "perturbation": s.perturbation} for a, s in self.atoms.items()},
                "autoattack_messages": self.aa_messages, "extra": self.extra, "elapsed_s": self.elapsed_s,
                "sessions": self.sessions}

    def save(self) -> None:
        if self.path is not None:
            atomic_write_json(self.path, self.to_dict())
            gate("eval-state-saved")

    @classmethod
    def load_or_new(cls, path: str | Path | None, key: dict[str, Any], indices: torch.Tensor,
                    atoms: tuple[str, ...]) -> EvalState:
        path = None if path is None else Path(path)
        state = cls(key, indices, atoms, path)
        if path is None or not path.exists():
            return state
        import json

        try:
            d = json.loads(path.read_text())
            if d.get("format") != STATE_FORMAT:
                raise ValueError(f"format {d.get('format')!r}")
        except (OSError, ValueError) as e:
            raise GeneralistBenchError(f"evaluation state {path} is unreadable ({e}); delete it to start over") from e
        old = d.get("key", {})
        diff = [k if isinstance(key.get(k), dict | list) else f"{k} (state {old.get(k)!r:.70}, now {key.get(k)!r:.70})"
                for k in sorted(set(old) | set(key)) if old.get(k) != key.get(k)]
        if diff or decode_ranges(d["indices"]).tolist() != indices.tolist():
            diff = diff or ["the evaluated indices"]
            raise ConfigError(f"evaluation state {path} belongs to a different evaluation (differs in: "
                              f"{', '.join(diff)}); resume with the same arguments, or delete the state file to "
                              "start over")
        try:
            if d["clean"] is not None:
                state.clean = decode_flags(d["clean"])[1]
            state.clean_stats = d.get("clean_stats", {})
            for a, s in d["atoms"].items():
                done, rob = decode_flags(s["flags"])
                state.atoms[a] = AtomState(done, rob, s.get("stats", {}), s.get("perturbation", {}))
            state.aa_messages = dict(d.get("autoattack_messages", {}))
            state.extra = dict(d.get("extra", {}))
            state.elapsed_s = float(d.get("elapsed_s", 0.0))
            state.sessions = int(d.get("sessions", 0))
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise GeneralistBenchError(f"evaluation state {path} is corrupt ({e}); delete it to start over") from e
        return state


# ------------------------------------------------------------------------------------------ progress
class Progress:
    """A tqdm bar per attack on a terminal, plain lines otherwise, nothing when disabled."""

    def __init__(self, enabled: bool, name: str, total: int, robust: int, n: int):
        self.enabled, self.name, self.total, self.robust, self.n, self.done = enabled, name, total, robust, n, 0
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=name, unit="pt", file=sys.stderr, dynamic_ncols=True, leave=True)
            self.bar.set_postfix_str(self._postfix())
        elif enabled:
            print(f"[eval] {name}: attacking {total} point(s), {robust} robust so far "
                  f"({100.0 * robust / max(n, 1):.2f}%)", file=sys.stderr, flush=True)

    def _postfix(self) -> str:
        return f"robust {self.robust}, acc {100.0 * self.robust / max(self.n, 1):.2f}%"

    def update(self, k: int, fooled: int) -> None:
        self.done += k
        self.robust -= fooled
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(), refresh=False)
            self.bar.update(k)
        elif self.enabled:
            print(f"[eval] {self.name}: {self.done}/{self.total} attacked, {self._postfix()}", file=sys.stderr,
                  flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------------------ runner
class AttackLoop:
    def __init__(self, model: ModelCall, x: torch.Tensor, y: torch.Tensor, state: EvalState, *, attacks: dict,
                 seed: int, batch_size: int, device: torch.device, norm: str, eps: float, progress: bool,
                 callback: Callable[[dict[str, Any]], None] | None):
        self.model, self.x, self.y, self.state = model, x, y, state
        self.attacks, self.seed, self.bs, self.device = attacks, seed, batch_size, device
        self.norm, self.eps, self.progress, self.callback = norm, eps, progress, callback
        self.batches_run = 0

    def _batch(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.x[pos].to(self.device), self.y[pos].to(self.device), self.state.indices[pos]

    def _notify(self, **info: Any) -> None:
        self.batches_run += 1
        if self.callback is not None:
            self.callback(info)

    def clean_pass(self) -> torch.Tensor:
        st = self.state
        if st.clean is None:
            n = len(self.y)
            c0, t0 = self.model.snapshot(), time.perf_counter()
            flags = torch.zeros(n, dtype=torch.bool)
            with torch.no_grad():  # as pyautoattack (inference_mode would give the same numbers)
                for b in range(0, n, self.bs):
                    pos = torch.arange(b, min(b + self.bs, n))
                    xb, yb, _ = self._batch(pos)
                    flags[pos] = (self.model(xb).max(1)[1] == yb).cpu()
            st.clean = flags
            st.clean_stats = _delta(c0, self.model.snapshot(), time.perf_counter() - t0, n, math.ceil(n / self.bs))
            st.save()
        return st.clean

    def run_atom(self, name: str, needed: torch.Tensor) -> None:
        """Attack the ``needed`` points not attacked yet, ``batch_size`` at a time in index order."""
        st = self.state.atoms[name]
        todo = (needed & ~st.done).nonzero().flatten()
        if len(todo) == 0:
            return
        attack = self.attacks[name]
        robust_now = int(needed.sum()) - int((needed & st.done & ~st.robust).sum())
        bar = Progress(self.progress, name, len(todo), robust_now, len(self.y))
        try:
            for b in range(0, len(todo), self.bs):
                pos = todo[b:b + self.bs]
                xb, yb, ib = self._batch(pos)
                c0, t0 = self.model.snapshot(), time.perf_counter()
                with model_mode(self.model, False):  # an attack must not leave the model in train mode
                    x_adv = attack(self.model, xb, yb, indices=ib, seed=self.seed)
                with torch.no_grad():
                    robust = (self.model(x_adv).max(1)[1] == yb).cpu()
                dt = time.perf_counter() - t0
                p = perturbation_stats(xb, x_adv.detach(), self.norm, self.eps)
                st.robust[pos], st.done[pos] = robust, True
                _accumulate(st.stats, _delta(c0, self.model.snapshot(), dt, len(pos), 1))
                _merge_perturbation(st.perturbation, p)
                self.state.save()
                fooled = int((~robust).sum())
                bar.update(len(pos), fooled)
                self._notify(attack=name, batch=b // self.bs, points=len(pos), fooled=fooled,
                             remaining=len(todo) - b - len(pos))
        finally:
            bar.close()

    def run(self, mode: str, entries: tuple[str, ...], atoms: tuple[str, ...], aa_components: tuple[str, ...]) -> None:
        clean = self.clean_pass()
        if mode == "cumulative":
            self._chain(atoms, clean)
            return
        for e in entries:
            if e == "natural":
                continue
            if e == "autoattack":
                self._chain(aa_components, clean)
            else:
                self.run_atom(e, clean)

    def _chain(self, names: tuple[str, ...], clean: torch.Tensor) -> None:
        cur = clean.clone()
        for c in names:
            self.run_atom(c, cur)
            st = self.state.atoms[c]
            cur = cur & st.robust


def _delta(c0: dict[str, int], c1: dict[str, int], dt: float, points: int, batches: int) -> dict[str, Any]:
    d: dict[str, Any] = {k: c1[k] - c0[k] for k in c0}
    d.update({"wall_time_s": dt, "points": points, "batches": batches})
    return d


def _accumulate(acc: dict[str, Any], d: dict[str, Any]) -> None:
    for k, v in d.items():
        acc[k] = acc.get(k, 0) + v


def _merge_perturbation(acc: dict[str, Any], p: dict[str, Any]) -> None:
    if not acc:
        acc.update(p)
        return
    acc["max_norm"] = max(acc["max_norm"], p["max_norm"])
    for k in ("n_outside_ball", "n_outside_box", "n_nonfinite"):
        acc[k] += p[k]
