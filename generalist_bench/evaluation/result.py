"""``EvalResult``: the JSON an evaluation produces, computed from per-sample flags (so shards can be merged).

Per-sample flags are stored as strings, one character per evaluated point in evaluation order:
``"1"`` robust (classified correctly), ``"0"`` not robust, ``"."`` not attacked (misclassified clean, or already
fooled earlier in the AutoAttack chain). ``samples.indices`` holds the points' indices in their split as
``[start, stop)`` ranges.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..errors import ConfigError, GeneralistBenchError
from ..utils import typed

RESULT_FORMAT = "generalist_bench.eval_result/1"
AA_COMPONENTS = ("apgd-ce", "apgd-t", "fab-t", "square")
# protocol fields that must agree between shards to be merged (and between a state file and its resumed run)
IDENTITY_KEYS = ("suite", "mode", "dataset", "split", "index_rule", "sample_seed", "n_examples", "norm", "eps",
                 "attacks", "seed", "device", "dtype", "model_sha256", "exact", "engine", "search_dtype")


class SanityCheckError(GeneralistBenchError):
    """An invariant of the evaluation does not hold (e.g. an adversarial example outside the eps-ball)."""


# ------------------------------------------------------------------------------------------ encodings
def encode_flags(done: torch.Tensor | None, robust: torch.Tensor) -> str:
    robust = robust.bool().cpu()
    done = torch.ones_like(robust) if done is None else done.bool().cpu()
    return "".join("." if not d else ("1" if r else "0") for d, r in zip(done.tolist(), robust.tolist(), strict=True))


def decode_flags(text: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(done, robust)`` bool tensors."""
    if set(text) - set("01."):
        raise ConfigError(f"bad per-sample flags {text[:40]!r}: only '0', '1' and '.' are allowed")
    done = torch.tensor([c != "." for c in text], dtype=torch.bool)
    robust = torch.tensor([c == "1" for c in text], dtype=torch.bool)
    return done, robust


def encode_ranges(indices: torch.Tensor | Sequence[int]) -> list[list[int]]:
    idx = indices.tolist() if torch.is_tensor(indices) else list(indices)
    out: list[list[int]] = []
    for i in idx:
        if out and out[-1][1] == i:
            out[-1][1] = i + 1
        else:
            out.append([int(i), int(i) + 1])
    return out


def decode_ranges(ranges: Sequence[Sequence[int]]) -> torch.Tensor:
    parts = [torch.arange(int(a), int(b)) for a, b in ranges]
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)


def pct(count: int | float, n: int) -> float:
    return 100.0 * float(count) / n if n else 0.0


# ------------------------------------------------------------------------------------------ result
@dataclass
class EvalResult:
    """Accuracies are percentages (0–100) of ``n_examples`` points.

    ``per_attack`` is cumulative for the ``autoattack`` suite (official AutoAttack reporting: robust accuracy
    after each attack, run in order on the still-robust points) and individual otherwise (each attack on every
    correctly classified point); ``per_attack_mode`` says which. ``robust_acc`` is the worst case: a point is
    robust iff it is classified correctly clean and under every attack of the suite.
    """

    protocol: dict[str, Any]
    clean_acc: float
    robust_acc: float
    per_attack: dict[str, float]
    per_attack_mode: str
    n_examples: int
    sanity: dict[str, Any]
    wall_time_s: float
    attack_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    autoattack: dict[str, Any] | None = None
    samples: dict[str, Any] = field(default_factory=dict)
    format: str = RESULT_FORMAT

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalResult:
        data = dict(data)
        fmt = data.get("format", RESULT_FORMAT)
        if fmt != RESULT_FORMAT:
            raise ConfigError(f"unsupported evaluation result format {fmt!r} (this version reads {RESULT_FORMAT})")
        try:
            return typed.from_dict(cls, data, strict=True, require=True)
        except typed.UnknownKeys as e:
            raise ConfigError(f"unknown evaluation result key(s): {', '.join(e.unknown)}") from None
        except typed.MissingKeys as e:
            raise ConfigError(f"evaluation result lacks key(s): {', '.join(e.missing)}") from None
        except typed.TypeMismatch as e:
            raise ConfigError(f"evaluation result: {e.where!r} must be {e.expected}, got {e.value!r:.80}") from None

    @classmethod
    def from_json(cls, text: str) -> EvalResult:
        return cls.from_dict(json.loads(text))

    # ---------------------------------------------------------------- per-sample access
    @property
    def indices(self) -> torch.Tensor:
        return decode_ranges(self.samples["indices"])

    def flags(self, name: str = "robust") -> torch.Tensor:
        """Per-sample robust flags (bool, False where not attacked) of ``"clean"``, ``"robust"`` (worst case)
        or an attack."""
        if name in ("clean", "robust"):
            return decode_flags(self.samples[name])[1]
        return decode_flags(self.samples["attacks"][name])[1]


# ------------------------------------------------------------------------------------------ computing
def compute_result(protocol: Mapping[str, Any], indices: torch.Tensor, clean: torch.Tensor,
                   atoms: Mapping[str, tuple[torch.Tensor, torch.Tensor]], stats: Mapping[str, Mapping[str, Any]],
                   sanity_extra: Mapping[str, Any], wall_time_s: float) -> EvalResult:
    """Accuracies and invariants from per-sample flags. ``atoms``: attack → (done, robust)."""
    n = len(clean)
    mode, entries = protocol["mode"], [a["name"] for a in protocol["attacks"]]
    clean = clean.bool()
    violations: list[str] = list(sanity_extra.get("run_violations", []))

    def atom_robust(name: str, needed: torch.Tensor) -> torch.Tensor:
        done, rob = atoms[name]
        if bool((needed & ~done).any()):
            raise ConfigError(f"attack {name!r} was not run on {int((needed & ~done).sum())} point(s) it needed "
                              "(incomplete state or result)")
        return needed & rob

    per_attack: dict[str, float] = {}
    worst = clean.clone()
    aa = None
    chain_names = tuple(entries) if mode == "cumulative" else ()
    if mode == "cumulative":
        cur = clean.clone()
        cumulative = {"clean": pct(int(cur.sum()), n)}
        for c in chain_names:
            cur = atom_robust(c, cur)
            per_attack[c] = cumulative[c] = pct(int(cur.sum()), n)
        worst = cur
        aa = {"cumulative": cumulative, "robust_acc": pct(int(cur.sum()), n)}
    else:
        for name in entries:
            if name == "natural":
                per_attack[name] = pct(int(clean.sum()), n)
            elif name == "autoattack":
                cur = clean.clone()
                cumulative = {"clean": pct(int(cur.sum()), n)}
                for c in AA_COMPONENTS:
                    cur = atom_robust(c, cur)
                    cumulative[c] = pct(int(cur.sum()), n)
                per_attack[name] = pct(int(cur.sum()), n)
                aa = {"cumulative": cumulative, "robust_acc": per_attack[name],
                      "note": "per-sample conjunction of the four components run in order on still-robust points"}
                worst &= cur
            else:
                r = atom_robust(name, clean)
                per_attack[name] = pct(int(r.sum()), n)
                worst &= r
    clean_acc, robust_acc = pct(int(clean.sum()), n), pct(int(worst.sum()), n)

    # invariants
    robust_le_clean = robust_acc <= clean_acc and not bool((worst & ~clean).any())
    if not robust_le_clean:
        violations.append(f"robust accuracy {robust_acc:.2f}% exceeds clean accuracy {clean_acc:.2f}%")
    if mode == "cumulative":
        seq = [clean_acc] + [per_attack[c] for c in chain_names]
        worst_ok = all(b <= a for a, b in zip(seq, seq[1:], strict=False)) and robust_acc == seq[-1]
    else:
        worst_ok = all(robust_acc <= v for v in per_attack.values())
    if not worst_ok:
        violations.append("the worst case exceeds the accuracy under some attack")
    for name, (done, _) in atoms.items():
        if bool((done & ~clean).any()):
            violations.append(f"attack {name!r} was run on points misclassified clean")
    sanity = dict(sanity_extra)
    sanity.update({"robust_le_clean": robust_le_clean, "worst_le_each_attack": worst_ok})
    sanity["violations"] = violations
    sanity["ok"] = not violations
    samples = {"indices": encode_ranges(indices), "clean": encode_flags(None, clean),
               "robust": encode_flags(None, worst),
               "attacks": {name: encode_flags(done, rob) for name, (done, rob) in atoms.items()}}
    return EvalResult(protocol=dict(protocol), clean_acc=clean_acc, robust_acc=robust_acc, per_attack=per_attack,
                      per_attack_mode=mode, n_examples=n, sanity=sanity, wall_time_s=float(wall_time_s),
                      attack_stats={k: dict(v) for k, v in stats.items()}, autoattack=aa, samples=samples)


def report_violations(result: EvalResult, strict: bool = False) -> None:
    v = result.sanity.get("violations") or []
    if not v:
        return
    msg = "evaluation sanity check(s) FAILED: " + "; ".join(v)
    if strict:
        raise SanityCheckError(msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


# ------------------------------------------------------------------------------------------ merging
def _identity(protocol: Mapping[str, Any]) -> dict[str, Any]:
    return {k: protocol.get(k) for k in IDENTITY_KEYS}


def merge_results(results: Sequence[EvalResult | Mapping[str, Any]], strict: bool = False) -> EvalResult:
    """Combine shard results (``shard=(k, K)`` for k = 0..K-1, any order) into the unsharded result.

    Identity fields of the protocols must agree; the shards must be disjoint and cover every point.
    """
    rs = [r if isinstance(r, EvalResult) else EvalResult.from_dict(r) for r in results]
    if not rs:
        raise ConfigError("merge_results needs at least one result")
    ref = _identity(rs[0].protocol)
    for r in rs[1:]:
        other = _identity(r.protocol)
        diff = [k for k in IDENTITY_KEYS if other[k] != ref[k]]
        if diff:
            raise ConfigError(f"cannot merge results with different protocols (differ in: {', '.join(diff)})")
    shards = [tuple(r.protocol.get("shard") or (0, 1)) for r in rs]
    counts = {s[1] for s in shards}
    if len(counts) != 1 or sorted(s[0] for s in shards) != list(range(counts.pop())):
        raise ConfigError(f"shards {sorted(shards)} do not form one complete set 0..K-1 of the same K")
    rs = [r for _, r in sorted(zip(shards, rs, strict=True), key=lambda t: t[0])]
    indices = torch.cat([r.indices for r in rs])
    if len(set(indices.tolist())) != len(indices):
        raise ConfigError("shards overlap")
    if len(indices) != rs[0].protocol["n_examples"]:
        raise ConfigError(f"shards cover {len(indices)} points, the protocol has n_examples="
                          f"{rs[0].protocol['n_examples']}")
    clean = torch.cat([r.flags("clean") for r in rs])
    atoms = {}
    for name in rs[0].samples["attacks"]:
        parts = [decode_flags(r.samples["attacks"][name]) for r in rs]
        atoms[name] = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    stats: dict[str, dict[str, Any]] = {}
    for r in rs:
        for name, s in r.attack_stats.items():
            acc = stats.setdefault(name, {})
            for k, v in s.items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    acc[k] = acc.get(k, 0) + v
    sanity_extra = _merge_sanity([r.sanity for r in rs])
    protocol = dict(rs[0].protocol)
    protocol["shard"] = None
    protocol["merged_from"] = [{"shard": list(s), "batch_size": r.protocol.get("batch_size"),
                                "git_commit": r.protocol.get("git_commit")} for s, r in zip(sorted(shards), rs,
                                                                                              strict=True)]
    result = compute_result(protocol, indices, clean, atoms, stats, sanity_extra,
                            sum(r.wall_time_s for r in rs))
    report_violations(result, strict)
    return result


def merge_runner_reports(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One ``sanity.model_runner`` for several sessions or shards: counts summed (prepacked verifications, and the
    ``fast`` engine's searched and escalated images, escalated rows and confirmed / rejected verdicts), ``used`` if
    any used it."""
    out = dict(reports[-1])
    for k in ("verified_calls", "mismatches", "search_images", "confirmed", "rejected", "escalated_rows",
              "escalated_images"):
        if any(k in r for r in reports):
            out[k] = sum(int(r.get(k, 0)) for r in reports)
    out["used"] = any(bool(r.get("used")) for r in reports)
    out["eager_batch_sizes"] = sorted({int(b) for r in reports for b in r.get("eager_batch_sizes", [])})
    return out


def _merge_sanity(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"run_violations": []}
    msgs: dict[str, int] = {}
    perturb: dict[str, dict[str, Any]] = {}
    for s in items:
        out["run_violations"] += s.get("run_violations", [])
        for m in s.get("autoattack_checks", []):
            msgs[m["message"]] = msgs.get(m["message"], 0) + m.get("count", 1)
        for name, p in s.get("perturbation", {}).items():
            q = perturb.setdefault(name, {"max_norm": 0.0, "n_outside_ball": 0, "n_outside_box": 0, "n_nonfinite": 0})
            q["max_norm"] = max(q["max_norm"], p.get("max_norm", 0.0))
            for k in ("n_outside_ball", "n_outside_box", "n_nonfinite"):
                q[k] += p.get(k, 0)
    out["autoattack_checks"] = [{"message": m, "count": c} for m, c in msgs.items()]
    out["perturbation"] = perturb
    runners = [s["model_runner"] for s in items if s.get("model_runner")]
    if runners:
        out["model_runner"] = merge_runner_reports(runners)
    for key in ("batch_invariance", "eps0", "large_eps"):
        vals = [s[key] for s in items if key in s]
        if vals:
            out[key] = vals[0] if len(vals) == 1 else vals
    return out
