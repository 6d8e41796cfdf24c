"""Robust-accuracy regression checks against a committed baseline file (what the pytest plugin runs).

A baseline records one evaluation: its protocol (data, n, eps, norm, attacks and their parameters, seed, engine),
clean and robust accuracy, the per-point clean and robust flags, the library versions and a checksum of all of it.
``check`` evaluates the model again under the baseline's protocol and compares point for point:

- a protocol that differs from the baseline's is a ``BaselineMismatchError`` (never a silent comparison);
- a file that is not a baseline, or whose checksum no longer matches its content, is a ``BaselineFileError``;
- accuracy below the baseline by more than the tolerance (in points, or in net flipped points) is a
  regression; the report gives both accuracies with 95 % Wilson intervals, the points that flipped each way, an
  exact McNemar p-value for the change, the protocol and every library version that differs.

The default tolerance, ``DEFAULT_TOLERANCE_POINTS``, comes with its measurement in docs/REGRESSION.md
(``python -m generalist_bench.regression_variation``: how flags move across thread counts and batch sizes).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GeneralistBenchError
from .utils.io import atomic_write_json

BASELINE_FORMAT = "generalist_bench.robust_baseline/1"
DEFAULT_ATTACKS = "apgd-ce,apgd-t"
# Net robust (or clean) points a run may lose before it counts as a regression. The exact engine gives identical
# flags for identical arithmetic; docs/REGRESSION.md: 0 of 100 flags moved across threads and batch sizes for
# every full zoo entry. Other CPUs' kernels are unmeasured, hence a margin of 1 point; set tolerance_points /
# tolerance_flips per call.
DEFAULT_TOLERANCE_POINTS = 1.0
PROTOCOL_KEYS = ("data", "n", "eps", "norm", "attacks", "seed", "engine")


class BaselineFileError(GeneralistBenchError):
    """A baseline file is unreadable, not a baseline, or was edited after it was recorded."""


class BaselineMismatchError(GeneralistBenchError):
    """A check's protocol differs from its baseline's."""


# ------------------------------------------------------------------------------------------- measuring
def measure(model, *, dataset: str | None = None, x=None, y=None, eps: float, norm: str = "Linf",
            attacks: str | Sequence[str] = DEFAULT_ATTACKS, n: int | None = 500, seed: int = 0, split: str = "test",
            engine: str = "compact", batch_size: int = 500, device: str = "cpu") -> dict[str, Any]:
    """Evaluate ``model`` and return a baseline record (not yet written)."""
    from .evaluation.api import evaluate
    from .evaluation.result import encode_flags
    from .utils.env import hardware

    if (dataset is None) == (x is None):
        raise GeneralistBenchError("pass either dataset=NAME or x=, y= tensors (not both, not neither)")
    names = [a.strip() for a in attacks.split(",")] if isinstance(attacks, str) else [str(a) for a in attacks]
    if x is not None:
        if n is not None and n < len(x):
            x, y = x[:n], y[:n]
        result = evaluate(model, x=x, y=y, eps=eps, threat_model=norm, attacks=names, n_examples=None, seed=seed,
                          engine=engine, batch_size=batch_size, device=device, progress=False)
        data = {"kind": "tensors", "source": result.protocol["data_source"]}
    else:
        result = evaluate(model, dataset=dataset, eps=eps, threat_model=norm, attacks=names, n_examples=n,
                          seed=seed, split=split, engine=engine, batch_size=batch_size, device=device,
                          progress=False)
        data = {"kind": "dataset", "dataset": result.protocol["dataset"], "split": split, "points": "first n"}
    p = result.protocol
    record = {
        "format": BASELINE_FORMAT,
        "protocol": {"data": data, "n": result.n_examples, "eps": p["eps"], "norm": p["norm"],
                     "attacks": p["attacks"], "seed": p["seed"], "engine": p["engine"]},
        "clean_acc": result.clean_acc,
        "robust_acc": result.robust_acc,
        "flags": {"clean": encode_flags(None, result.flags("clean")), "robust": encode_flags(None, result.flags())},
        "versions": p["versions"],
        "recorded_on": {"commit": p.get("git_commit"), "hardware": hardware(), "torch_threads": _threads()},
    }
    return record


def _threads() -> int:
    import torch

    return torch.get_num_threads()


# ------------------------------------------------------------------------------------------- the file
def _checksum(record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_baseline(path: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {**record, "checksum": _checksum(record)})
    return path


def read_baseline(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise BaselineFileError(f"cannot read baseline {path}: {e}") from None
    except ValueError as e:
        raise BaselineFileError(f"baseline {path} is not valid JSON ({e}); re-record it with --robust-update") from None
    if not isinstance(record, dict) or record.get("format") != BASELINE_FORMAT:
        raise BaselineFileError(f"{path} is not a robust-accuracy baseline (format {BASELINE_FORMAT})")
    if record.get("checksum") != _checksum(record):
        raise BaselineFileError(f"baseline {path} does not match its checksum: it was edited by hand or damaged; "
                                "re-record it with --robust-update (and review the diff)")
    try:
        flags = record["flags"]
        n = record["protocol"]["n"]
        for k in ("clean", "robust"):
            if len(flags[k]) != n or set(flags[k]) - set("01"):
                raise ValueError(k)
        if abs(100.0 * flags["robust"].count("1") / n - record["robust_acc"]) > 1e-6:
            raise ValueError("robust_acc")
        if abs(100.0 * flags["clean"].count("1") / n - record["clean_acc"]) > 1e-6:
            raise ValueError("clean_acc")
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
        raise BaselineFileError(f"baseline {path} is inconsistent (field {e}); re-record it with --robust-update") \
            from None
    return record


# ------------------------------------------------------------------------------------------- comparing
@dataclass(frozen=True)
class Comparison:
    """Baseline vs now for one quantity (``clean`` or ``robust``)."""

    what: str
    n: int
    before: int           # correct / robust points in the baseline
    after: int
    lost: tuple[int, ...]  # point positions: 1 in the baseline, 0 now
    gained: tuple[int, ...]

    @property
    def mcnemar_p(self) -> float:
        """Exact (binomial) two-sided McNemar p-value of the discordant pairs."""
        from scipy.stats import binomtest

        k = len(self.lost) + len(self.gained)
        return 1.0 if k == 0 else float(binomtest(len(self.gained), k, 0.5).pvalue)

    def ci(self, count: int) -> tuple[float, float]:
        from scipy.stats import binomtest

        ci = binomtest(count, self.n).proportion_ci(0.95, method="wilson")
        return 100.0 * ci.low, 100.0 * ci.high

    def line(self) -> str:
        b, a = 100.0 * self.before / self.n, 100.0 * self.after / self.n
        (bl, bh), (al, ah) = self.ci(self.before), self.ci(self.after)
        return (f"{self.what:<6} baseline {b:6.2f}% [{bl:.1f}, {bh:.1f}]  now {a:6.2f}% [{al:.1f}, {ah:.1f}]  "
                f"({a - b:+.2f} points; lost {len(self.lost)}, gained {len(self.gained)}; exact McNemar "
                f"p = {self.mcnemar_p:.3g})")


def compare_flags(what: str, before: str, after: str) -> Comparison:
    lost = tuple(i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b == "1" and a == "0")
    gained = tuple(i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b == "0" and a == "1")
    return Comparison(what, len(before), before.count("1"), after.count("1"), lost, gained)


@dataclass(frozen=True)
class Outcome:
    passed: bool
    improved: bool
    report: str
    comparisons: tuple[Comparison, ...]


def check_protocol(baseline: Mapping[str, Any], now: Mapping[str, Any], path: str | os.PathLike) -> None:
    diffs = [f"{k}: baseline {baseline['protocol'].get(k)!r}, this call {now['protocol'].get(k)!r}"
             for k in PROTOCOL_KEYS if baseline["protocol"].get(k) != now["protocol"].get(k)]
    if diffs:
        raise BaselineMismatchError(f"the check's protocol differs from its baseline {path}:\n  " + "\n  ".join(diffs)
                                    + "\nchange the call back, or re-record with --robust-update if the change is "
                                    "intended")


def compare(baseline: Mapping[str, Any], now: Mapping[str, Any], *, tolerance_points: float | None = None,
            tolerance_flips: int | None = None, path: str | os.PathLike = "baseline") -> Outcome:
    """Compare a fresh record with its baseline (protocols must match; see ``check_protocol``)."""
    check_protocol(baseline, now, path)
    if tolerance_points is not None and tolerance_flips is not None:
        raise GeneralistBenchError("give the tolerance in points or in flipped points, not both")
    if tolerance_points is None and tolerance_flips is None:
        tolerance_points = DEFAULT_TOLERANCE_POINTS
    comps = tuple(compare_flags(k, baseline["flags"][k], now["flags"][k]) for k in ("clean", "robust"))
    n = comps[0].n
    allowed = tolerance_flips if tolerance_flips is not None else tolerance_points * n / 100.0
    failed = [c for c in comps if c.before - c.after > allowed + 1e-9]
    improved = not failed and any(c.after > c.before for c in comps)
    p = now["protocol"]
    attacks = ", ".join(a["name"] for a in p["attacks"])
    tol = f"{tolerance_flips} flipped point(s)" if tolerance_flips is not None else f"{tolerance_points:g} point(s)"
    head = ("ROBUST ACCURACY REGRESSION" if failed else "robust accuracy improved" if improved
            else "robust accuracy unchanged within tolerance")
    lines = [f"{head} (tolerance {tol} of n = {n}) against {path}",
             f"protocol: {_data_text(p['data'])}, n = {n}, {p['norm']} eps = {p['eps']:g}, attacks: {attacks}, "
             f"seed {p['seed']}, engine {p['engine']}"]
    lines += [c.line() for c in comps]
    for c in comps:
        for label, pts in (("lost", c.lost), ("gained", c.gained)):
            if pts:
                shown = ", ".join(map(str, pts[:30])) + (f", … ({len(pts)} in all)" if len(pts) > 30 else "")
                lines.append(f"{c.what} points {label} (positions in the evaluated points): {shown}")
    vdiff = {k: (baseline["versions"].get(k), now["versions"].get(k)) for k in
             sorted(set(baseline["versions"]) | set(now["versions"]))
             if baseline["versions"].get(k) != now["versions"].get(k)}
    if vdiff:
        lines.append("library versions that differ from the baseline's: "
                     + ", ".join(f"{k} {a} → {b}" for k, (a, b) in vdiff.items()))
    return Outcome(not failed, improved, "\n".join(lines), comps)


def _data_text(data: Mapping[str, Any]) -> str:
    if data.get("kind") == "tensors":
        return f"given tensors ({data['source']})"
    return f"{data['dataset']} {data['split']} split, first n points"
