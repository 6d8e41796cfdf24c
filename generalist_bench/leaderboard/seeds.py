"""Methods over seeds, and paired tests between methods on the same test points.

- ``method_stats``: per trainer, the full (not quick, not submitted) entries of one table, their seeds, and the
  mean ± sample standard deviation over seeds of the headline clean and AutoAttack accuracies.
- ``paired``: Generalist against each baseline, per seed (the same seed on both sides) and pooled over the seeds
  both have, on the per-point clean flags and on the per-point robust flags of the primary evaluation: the counts
  of points where only one side is correct, and the exact (binomial) two-sided McNemar p-value. Pooling adds the
  discordant counts of the seed pairs (the pairs of points are treated as independent).

A pair is compared only if both evaluations used the same points (indices), eps, norm, attacks and seed;
otherwise it is listed as not comparable, with the reason.
"""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..registry import title as display_title

REFERENCE = "generalist"
BASELINES = ("pgd_at", "trades", "standard")
SAME = ("eps", "norm", "attacks", "seed", "split", "dataset")


@dataclass(frozen=True)
class MethodStats:
    trainer: str
    seeds: tuple[int, ...]
    clean: tuple[float, ...]
    robust: tuple[float, ...]
    n_examples: int | None
    budgets: tuple[str, ...] = ()             # each seed's card.budget ("" where the card predates the field)
    tuning_logs: tuple[str | None, ...] = ()  # each seed's card.tuning_log

    @staticmethod
    def _ms(values: Sequence[float]) -> tuple[float, float | None]:
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)

    @property
    def clean_mean_std(self) -> tuple[float, float | None]:
        return self._ms(self.clean)

    @property
    def robust_mean_std(self) -> tuple[float, float | None]:
        return self._ms(self.robust)


@dataclass(frozen=True)
class Paired:
    """One comparison of ``a`` (Generalist) with ``b`` on one quantity (clean or robust)."""

    a: str
    b: str
    seed: int | None          # None: pooled over the seeds both have
    what: str                 # clean | robust
    n: int                    # points per seed
    a_only: int               # points a gets right and b wrong
    b_only: int
    seeds: tuple[int, ...] = ()
    note: str = ""            # why not comparable (then counts are 0)
    budget: str = ""          # pooled rows when the seed pairs span budgets: the budget these seeds were trained under

    @property
    def p_value(self) -> float | None:
        if self.note:
            return None
        from scipy.stats import binomtest

        k = self.a_only + self.b_only
        return 1.0 if k == 0 else float(binomtest(self.a_only, k, 0.5).pvalue)


def _full(cards: Iterable[Any]) -> list[Any]:
    return [c for c in cards if not c.quick and c.trainer != "submitted" and c.primary_evaluation is not None]


def method_stats(cards: Iterable[Any]) -> list[MethodStats]:
    by: dict[str, list[Any]] = {}
    for c in _full(cards):
        by.setdefault(c.trainer, []).append(c)
    out = []
    for trainer, cs in by.items():
        cs = sorted(cs, key=lambda c: c.seed)
        ns = {c.n_examples for c in cs}
        out.append(MethodStats(trainer, tuple(c.seed for c in cs), tuple(float(c.clean_acc) for c in cs),
                               tuple(float(c.autoattack_acc) for c in cs), ns.pop() if len(ns) == 1 else None,
                               tuple(getattr(c, "budget", "") for c in cs),
                               tuple(getattr(c, "tuning_log", None) for c in cs)))
    order = {t: i for i, t in enumerate((REFERENCE, *BASELINES))}
    return sorted(out, key=lambda m: (order.get(m.trainer, 99), m.trainer))


def _flags(ev: Mapping[str, Any], what: str) -> str:
    text = ev["samples"][what]
    return "".join("1" if ch == "1" else "0" for ch in text)


def _why_not(ea: Mapping[str, Any], eb: Mapping[str, Any]) -> str:
    if not all(k in e.get("samples", {}) for e in (ea, eb) for k in ("indices", "clean", "robust")):
        return "no per-point flags recorded"
    pa, pb = ea["protocol"], eb["protocol"]
    diff = [k for k in SAME if pa.get(k) != pb.get(k)]
    if ea["samples"]["indices"] != eb["samples"]["indices"]:
        diff.append("points")
    return f"different {', '.join(diff)}" if diff else ""


def paired(cards: Iterable[Any], reference: str = REFERENCE, baselines: Sequence[str] = BASELINES) -> list[Paired]:
    full = _full(cards)
    by = {(c.trainer, c.seed): c for c in full}
    out: list[Paired] = []
    for b in baselines:
        seeds = sorted(s for (t, s) in by if t == reference and (b, s) in by)
        pooled: dict[str, dict[str, list[int]]] = {}  # budget → quantity → [a_only, b_only]
        used: dict[str, list[int]] = {}               # budget → seeds whose pair was compared
        n = 0
        for s in seeds:
            ca, cb = by[(reference, s)], by[(b, s)]
            ea, eb = ca.primary_evaluation, cb.primary_evaluation
            # a pair trained under two budgets (a sweep moving to a new shared budget) is not a comparison of methods
            why = _why_not(ea, eb) or ("different budget" if getattr(ca, "budget", "") != getattr(cb, "budget", "")
                                       else "")
            for what in ("clean", "robust"):
                if why:
                    out.append(Paired(reference, b, s, what, ea["n_examples"], 0, 0, note=why))
                    continue
                fa, fb = _flags(ea, what), _flags(eb, what)
                a_only = sum(x == "1" and y == "0" for x, y in zip(fa, fb, strict=True))
                b_only = sum(x == "0" and y == "1" for x, y in zip(fa, fb, strict=True))
                out.append(Paired(reference, b, s, what, len(fa), a_only, b_only))
                counts = pooled.setdefault(getattr(ca, "budget", ""), {}).setdefault(what, [0, 0])
                counts[0] += a_only
                counts[1] += b_only
                n = len(fa)
            if not why:
                used.setdefault(getattr(ca, "budget", ""), []).append(s)
        # pairs trained under different budgets (both sides of each pair under one) are pooled per budget only
        for budget, group in used.items():
            if len(group) > 1:
                label = _budget_label(budget, used) if len(used) > 1 else ""
                for what in ("clean", "robust"):
                    out.append(Paired(reference, b, None, what, n, *pooled[budget][what], seeds=tuple(group),
                                      budget=label))
    return out


def by_budget(m: MethodStats) -> list[tuple[MethodStats, str]]:
    """``m`` as rows of the methods table: itself (no label) when its seeds share one budget, else one row per budget
    with its label (a mean over seeds trained under different budgets would mean nothing)."""
    groups = list(dict.fromkeys(m.budgets))
    if len(groups) <= 1:
        return [(m, "")]
    return [(_sub(m, [s for s, b in zip(m.seeds, m.budgets, strict=True) if b == g]),
             _budget_label(g, dict.fromkeys(groups))) for g in groups]


def _budget_label(budget: str, budgets: Mapping[str, Any]) -> str:
    """A short name for ``budget`` among ``budgets``: its epoch count where that tells them apart, else itself."""
    epochs = {b: re.findall(r"(\d+) epochs?\b", b) for b in budgets}
    if len(epochs[budget]) == 1 and sum(e == epochs[budget] for e in epochs.values()) == 1:
        return f"{epochs[budget][0]} epochs"
    return budget or "not recorded"


# ------------------------------------------------------------------------------------------------ text
def _pm(ms: tuple[float, float | None]) -> str:
    mean, sd = ms
    return f"{mean:.2f} ± {sd:.2f}" if sd is not None else f"{mean:.2f} (one seed)"


def _p(p: float | None) -> str:
    return "–" if p is None else f"{p:.3g}"


def budget_lines(stats: Sequence[MethodStats], budget_check: tuple[str, str] | None = None) -> list[str]:
    """One paragraph: the budget the full entries share and where their hyperparameters were tuned (and, given
    ``budget_check`` = (its name, its link), the report on whether that budget is long enough), or a warning naming
    the methods whose budgets differ."""
    budgets = {b for m in stats for b in m.budgets}
    if not budgets or budgets == {""}:
        return []
    if len(budgets) > 1:
        per = "; ".join(f"{display_title('trainer', m.trainer)}: "
                        f"{' / '.join(sorted({b or 'not recorded' for b in m.budgets})) or '—'}" for m in stats)
        return [f"**The full entries were not trained under one budget** — compare with care. {per}.", ""]
    logs = {t for m in stats for t in m.tuning_logs}
    tuned = (f" Hyperparameters of every method tuned on the validation split only: `{logs.pop()}`."
             if len(logs) == 1 and None not in logs else
             " No entry records where its hyperparameters were tuned." if logs == {None} else
             " Not every entry's hyperparameters come from one tuning log.")
    check = ("" if budget_check is None else " Whether that budget is long enough for each method (validation "
             f"curves, longer-budget probes): [{budget_check[0]}]({budget_check[1]}).")
    return [f"Budget of every full entry: {budgets.pop()}.{tuned}{check}", ""]


@dataclass(frozen=True)
class Difference:
    """Generalist minus a baseline in one quantity, paired by seed: the per-seed differences and their mean with a
    95% t-interval over seeds (None with one seed)."""

    b: str
    what: str
    seeds: tuple[int, ...]
    diffs: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.diffs)

    @property
    def interval(self) -> tuple[float, float] | None:
        if len(self.diffs) < 2:
            return None
        from scipy.stats import t

        half = float(t.ppf(0.975, len(self.diffs) - 1)) * statistics.stdev(self.diffs) / len(self.diffs) ** 0.5
        return self.mean - half, self.mean + half


def difference(stats: Sequence[MethodStats], b: str, what: str, a: str = REFERENCE) -> Difference | None:
    by = {m.trainer: m for m in stats}
    if a not in by or b not in by:
        return None
    va = dict(zip(by[a].seeds, getattr(by[a], what), strict=True))
    vb = dict(zip(by[b].seeds, getattr(by[b], what), strict=True))
    common = tuple(sorted(set(va) & set(vb)))
    return Difference(b, what, common, tuple(va[s] - vb[s] for s in common)) if common else None


CLEAN_GAIN = 3.0   # the question: clean accuracy ≥ PGD-AT's + 3 points ...
AA_SLACK = 1.0     # ... with AutoAttack accuracy within 1 point of the best baseline's


def _sub(m: MethodStats, seeds: Sequence[int]) -> MethodStats:
    """``m`` restricted to ``seeds`` (in ``m``'s order)."""
    keep = [i for i, s in enumerate(m.seeds) if s in set(seeds)]
    pick = lambda t: tuple(t[i] for i in keep) if t else t  # noqa: E731
    return MethodStats(m.trainer, pick(m.seeds), pick(m.clean), pick(m.robust), m.n_examples, pick(m.budgets),
                       pick(m.tuning_logs))


def verdict(stats: Sequence[MethodStats], pairs: Sequence[Paired]) -> list[str]:
    """Does Generalist reach PGD-AT's clean accuracy + 3 points with AA within 1 point of the best baseline?

    Judged on the seeds Generalist, PGD-AT and the best baseline all have (the best baseline: highest mean AA over
    the seeds it shares with Generalist), on the means over those seeds, stated with the seed-paired 95%
    t-intervals of the differences and the exact McNemar tests of no difference. Entries trained under different
    budgets are not compared at all."""
    by = {m.trainer: m for m in stats}
    if REFERENCE not in by or "pgd_at" not in by:
        return []
    g_seeds = set(by[REFERENCE].seeds)
    shared = [m for m in stats if m.trainer in BASELINES and g_seeds & set(m.seeds)]
    if not any(m.trainer == "pgd_at" for m in shared):
        return []
    best = max(shared, key=lambda m: statistics.fmean(_sub(m, sorted(g_seeds)).robust))
    common = sorted(g_seeds & set(by["pgd_at"].seeds) & set(best.seeds))
    if not common:
        return []
    involved = [_sub(by[t], common) for t in dict.fromkeys((REFERENCE, "pgd_at", best.trainer))]
    g, pgd, bst = involved[0], involved[1], involved[-1]
    head = (f"Does Generalist reach PGD-AT's clean accuracy + {CLEAN_GAIN:g} points with AutoAttack accuracy within "
            f"{AA_SLACK:g} point of the best baseline?")
    budgets = {b or "not recorded" for m in involved for b in m.budgets}
    if len(budgets) > 1:
        titles = [display_title("trainer", m.trainer) for m in involved]
        names = ", ".join(titles[:-1]) + " and " + titles[-1]
        return ["## Verdict", "", f"{head} **Not comparable**: {names} were not trained under one budget (see "
                "above), so no verdict is drawn.", ""]
    dc, da = difference(involved, "pgd_at", "clean"), difference(involved, best.trainer, "robust")
    assert dc is not None and da is not None

    def p_of(b: str, what: str) -> str:
        qs = [q for q in pairs if q.b == b and q.what == what and not q.note]
        q = next((q for q in qs if q.seed is None), qs[0] if len(qs) == 1 else None)
        if q is None:
            return "no paired per-point flags"
        return (f"{'pooled ' if q.seed is None else ''}exact McNemar test of no difference: p = {_p(q.p_value)}, "
                f"{q.a_only} vs {q.b_only} discordant points")

    def interval(d: Difference) -> str:
        iv = d.interval
        return f"95% t-interval over seeds [{iv[0]:+.2f}, {iv[1]:+.2f}]" if iv else "one seed: no interval"

    def side(d: Difference, target: float, ok: bool) -> str:
        iv = d.interval
        if iv is None:
            return "a single seed decides nothing"
        return ("the interval lies entirely on that side" if (iv[0] >= target if ok else iv[1] < target) else
                "the interval straddles the target")

    clean_ok, aa_ok = dc.mean >= CLEAN_GAIN, da.mean >= -AA_SLACK
    on = f"{len(common)} common seed(s) ({', '.join(map(str, common))})"
    answer = (f"**Not established**: {on}; the numbers below decide nothing yet" if len(common) < 2
              else f"**{'Yes' if clean_ok and aa_ok else 'No'}**, on the means over {on}")
    return [
        "## Verdict", "", f"{head} {answer}.", "",
        f"- Clean: Generalist {_pm(g.clean_mean_std)} vs PGD-AT {_pm(pgd.clean_mean_std)}: "
        f"Δ = {dc.mean:+.2f} points ({interval(dc)}; {p_of('pgd_at', 'clean')}); target ≥ {CLEAN_GAIN:+g}: "
        f"{'met' if clean_ok else 'not met'}, {side(dc, CLEAN_GAIN, clean_ok)}.",
        f"- AutoAttack: Generalist {_pm(g.robust_mean_std)} vs the best baseline, "
        f"{display_title('trainer', best.trainer)}, {_pm(bst.robust_mean_std)}: Δ = {da.mean:+.2f} points "
        f"({interval(da)}; {p_of(best.trainer, 'robust')}); target ≥ {-AA_SLACK:+g}: {'met' if aa_ok else 'not met'}, "
        f"{side(da, -AA_SLACK, aa_ok)}.", "",
        "Means, Δ and intervals are over the common seeds, on the AutoAttack points (the headline numbers); Δ is "
        "paired by seed. The McNemar tests ask whether the two methods differ at all, not whether a target is met; "
        "pooling adds the discordant counts of the seeds, treating the same test points under different seeds as "
        "independent (anti-conservative).", ""]


def budget_check_of(stats: Sequence[MethodStats], root: Path, out: Path) -> tuple[str, str] | None:
    """(name, link from ``out``) of the budget check beside the entries' shared tuning log (``<log>_budget.md``,
    written by `generalist-bench tune --budget-check`) when it exists under ``root``; None otherwise."""
    logs = {t for m in stats for t in m.tuning_logs}
    if len(logs) != 1 or None in logs:
        return None
    name = logs.pop().removesuffix(".md") + "_budget.md"
    doc = Path(root) / name
    return (name, Path(os.path.relpath(doc, out)).as_posix()) if doc.is_file() else None


def markdown(stats: Sequence[MethodStats], pairs: Sequence[Paired],
             budget_check: tuple[str, str] | None = None) -> list[str]:
    if not stats:
        return []
    lines = ["## Methods over seeds", "",
             "Full entries only (quick and submitted entries are not pooled). Mean ± sample standard deviation over "
             "seeds of the headline accuracies (AutoAttack's points).", "", *budget_lines(stats, budget_check),
             "| Trainer | Seeds | Clean % (mean ± std) | AA % (mean ± std) | n per seed | per seed (clean / AA) |",
             "|---|---|---|---|---:|---|"]
    for m, label in (x for ms in stats for x in by_budget(ms)):
        per = ", ".join(f"seed {s}: {c:.1f} / {r:.1f}" for s, c, r in zip(m.seeds, m.clean, m.robust, strict=True))
        lines.append(f"| {display_title('trainer', m.trainer)}{f' ({label})' if label else ''} | {len(m.seeds)} | "
                     f"{_pm(m.clean_mean_std)} | {_pm(m.robust_mean_std)} | {m.n_examples or 'varies'} | {per} |")
    if pairs:
        lines += ["", "## Paired comparisons on the same points (exact McNemar)", "",
                  "Generalist (A) against each baseline (B), same seed on both sides, on the per-point flags of the "
                  "headline evaluation: the points only A gets right, only B gets right, and the exact two-sided "
                  "McNemar p-value. 'pooled' adds the seed pairs' discordant counts, of pairs trained under one "
                  "budget only.", "",
                  "| A vs B | seed | quantity | n | only A | only B | p (exact McNemar) |",
                  "|---|---|---|---:|---:|---:|---:|"]
        for q in pairs:
            seed = "pooled " + ",".join(map(str, q.seeds)) if q.seed is None else str(q.seed)
            seed += f" ({q.budget})" if q.budget else ""
            vs = f"{display_title('trainer', q.a)} vs {display_title('trainer', q.b)}"
            if q.note:
                lines.append(f"| {vs} | {seed} | {q.what} | {q.n} | – | – | not comparable: {q.note} |")
            else:
                lines.append(f"| {vs} | {seed} | {q.what} | {q.n} | {q.a_only} | {q.b_only} | {_p(q.p_value)} |")
    return lines + ["", *verdict(stats, pairs)]


def csv_rows(stats: Sequence[MethodStats], pairs: Sequence[Paired]) -> tuple[list[dict], list[dict]]:
    ms = []
    for m, label in (x for ms_ in stats for x in by_budget(ms_)):
        (cm, cs), (rm, rs) = m.clean_mean_std, m.robust_mean_std
        ms.append({"trainer": m.trainer, "budget": label, "seeds": " ".join(map(str, m.seeds)),
                   "n_seeds": len(m.seeds),
                   "clean_mean": f"{cm:.4f}", "clean_std": "" if cs is None else f"{cs:.4f}",
                   "aa_mean": f"{rm:.4f}", "aa_std": "" if rs is None else f"{rs:.4f}",
                   "n_examples": m.n_examples or ""})
    ps = [{"a": q.a, "b": q.b, "seed": "pooled" if q.seed is None else q.seed,
           "pooled_seeds": " ".join(map(str, q.seeds)), "pooled_budget": q.budget, "quantity": q.what, "n": q.n,
           "only_a": "" if q.note else q.a_only, "only_b": "" if q.note else q.b_only,
           "p_exact_mcnemar": "" if q.p_value is None else f"{q.p_value:.6g}", "note": q.note} for q in pairs]
    return ms, ps


# ------------------------------------------------------------------------------------------- README block
def verdict_block(markdown_text: str) -> str:
    """The body of a rendered table's "## Verdict" section (empty if it has none)."""
    lines = markdown_text.splitlines()
    try:
        start = lines.index("## Verdict") + 1
    except ValueError:
        return ""
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end]).strip()


def sync_readme_block(readme: str, slug: str, block: str) -> str:
    """``readme`` with the text between ``<!-- verdict:<slug> -->`` and ``<!-- /verdict -->`` replaced by
    ``block``; ValueError if the markers are missing."""
    begin, end = f"<!-- verdict:{slug} -->", "<!-- /verdict -->"
    i = readme.find(begin)
    j = readme.find(end, i + 1) if i >= 0 else -1
    if i < 0 or j < 0:
        raise ValueError(f"the README has no {begin} … {end} block")
    return readme[:i + len(begin)] + ("\n" + block + "\n" if block else "\n") + readme[j:]
