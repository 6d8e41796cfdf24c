"""Methods over seeds, and paired tests between methods on the same test points.

- ``method_stats``: per trainer, the full (not quick, not submitted) entries of one table, their seeds, and the
  mean ± sample standard deviation over seeds of the headline clean and AutoAttack accuracies.
- ``paired``: Generalist against each baseline, per seed (the same seed on both sides) and pooled over the seeds
  both have, on the per-point clean flags and on the per-point robust flags of the primary evaluation. Per seed:
  the counts of points where only one side is correct, and the exact (binomial) two-sided McNemar p-value. Pooled:
  each point's difference summed over the seeds (+1 per seed where only Generalist is right, −1 where only the
  baseline is), the counts of points whose sum favours each side, and the exact sign-flip test on those sums
  (``stats.sign_flip_p``; the McNemar test when there is one seed). Each test point stays one unit: the same 1,000
  points scored under three seeds are not 3,000 independent observations, which adding the seeds' discordant
  counts would assume.

Both tests are conditional on the trained models: they ask whether these models differ on the test distribution,
not how much retraining with another seed would move them; the spread over seeds (the t-interval of ``verdict``)
speaks to that.

A pair is compared only if both evaluations used the same points (indices), eps, norm, attacks and seed, and both
models were trained under one budget; otherwise it is listed as not comparable, with the reason. Seeds are pooled
only within one budget and only when their points are the same.
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
from .stats import SIGN_FLIP, format_p, sign_flip_p

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
    """One comparison of ``a`` (Generalist) with ``b`` on one quantity (clean or robust), on one seed or pooled."""

    a: str
    b: str
    seed: int | None          # None: pooled over ``seeds``
    what: str                 # clean | robust
    n: int                    # test points (the same points under every seed of a pooled row)
    a_only: int               # per seed: points a gets right and b wrong; pooled: points whose summed difference > 0
    b_only: int               # ... b right and a wrong; pooled: summed difference < 0
    seeds: tuple[int, ...] = ()
    note: str = ""            # why not comparable (then counts are 0)
    budget: str = ""          # pooled rows when the seed pairs span budgets: the budget these seeds were trained under
    trained: str = ""         # the budget both sides were trained under (the card's budget; "" where not recorded)
    diffs: tuple[int, ...] = ()  # per point: a right − b right (pooled: summed over the seeds)
    points: str = ""          # the evaluation's indices, as recorded (the same points on both sides)

    @property
    def test(self) -> str:
        return SIGN_FLIP if self.seed is None else "exact McNemar test"

    @property
    def p_value(self) -> float | None:
        """Two-sided exact p-value of no difference (None when not comparable). Per seed the McNemar test, pooled
        the sign-flip test on the per-point sums (counts alone, without ``diffs``: every point differing by one,
        the McNemar test)."""
        if self.note:
            return None
        return sign_flip_p(self.diffs or (1,) * self.a_only + (-1,) * self.b_only)


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
        rows: dict[str, dict[str, list[Paired]]] = {}  # budget → quantity → its seeds' compared rows
        for s in seeds:
            ca, cb = by[(reference, s)], by[(b, s)]
            ea, eb = ca.primary_evaluation, cb.primary_evaluation
            budget = getattr(ca, "budget", "")
            # a pair trained under two budgets (a sweep moving to a new shared budget) is not a comparison of methods
            why = _why_not(ea, eb) or ("different budget" if budget != getattr(cb, "budget", "") else "")
            for what in ("clean", "robust"):
                if why:
                    out.append(Paired(reference, b, s, what, ea["n_examples"], 0, 0, note=why))
                    continue
                fa, fb = _flags(ea, what), _flags(eb, what)
                d = tuple((x == "1") - (y == "1") for x, y in zip(fa, fb, strict=True))
                q = Paired(reference, b, s, what, len(d), d.count(1), d.count(-1), trained=budget, diffs=d,
                           points=str(ea["samples"]["indices"]))
                out.append(q)
                rows.setdefault(budget, {}).setdefault(what, []).append(q)
        # pairs trained under different budgets (both sides of each pair under one) are pooled per budget only
        for budget, per in rows.items():
            for qs in per.values():
                if len(qs) > 1:
                    out.append(pool(qs, _budget_label(budget, rows) if len(rows) > 1 else ""))
    return out


def pool(rows: Sequence[Paired], label: str = "") -> Paired:
    """The per-seed rows ``rows`` (one comparison, one budget, one quantity) pooled: each point's differences summed
    over the seeds, tested with the exact sign-flip test; not comparable when the seeds were scored on different
    points."""
    q0 = rows[0]
    seeds = tuple(q.seed for q in rows if q.seed is not None)
    common = dict(a=q0.a, b=q0.b, seed=None, what=q0.what, n=q0.n, seeds=seeds, budget=label, trained=q0.trained,
                  points=q0.points)
    if any(q.points != q0.points or len(q.diffs) != len(q0.diffs) for q in rows):
        return Paired(**common, a_only=0, b_only=0, note="different points across seeds")
    d = tuple(map(sum, zip(*(q.diffs for q in rows), strict=True)))
    return Paired(**common, a_only=sum(x > 0 for x in d), b_only=sum(x < 0 for x in d), diffs=d)


def by_budget(m: MethodStats) -> list[tuple[MethodStats, str]]:
    """``m`` as rows of the methods table: itself (no label) when its seeds share one budget, else one row per budget
    with its label (a mean over seeds trained under different budgets would mean nothing)."""
    groups = list(dict.fromkeys(m.budgets))
    if len(groups) <= 1:
        return [(m, "")]
    return [(_sub(m, [s for s, b in zip(m.seeds, m.budgets, strict=True) if b == g]),
             _budget_label(g, dict.fromkeys(groups))) for g in groups]


def _epoch_counts(budget: str) -> list[str]:
    """Every "<n> epoch(s)" count written in a budget's text."""
    return re.findall(r"(\d+) epochs?\b", budget)


def _budget_label(budget: str, budgets: Mapping[str, Any]) -> str:
    """A short name for ``budget`` among ``budgets``: its epoch count where that tells them apart, else itself."""
    epochs = {b: _epoch_counts(b) for b in budgets}
    if len(epochs[budget]) == 1 and sum(e == epochs[budget] for e in epochs.values()) == 1:
        return f"{epochs[budget][0]} epochs"
    return budget or "not recorded"


# ------------------------------------------------------------------------------------------------ text
def _pm(ms: tuple[float, float | None]) -> str:
    mean, sd = ms
    return f"{mean:.2f} ± {sd:.2f}" if sd is not None else f"{mean:.2f} (one seed)"


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


def _budgets(m: MethodStats) -> tuple[str, ...]:
    return m.budgets or ("",) * len(m.seeds)


def _epochs(budget: str) -> int:
    found = _epoch_counts(budget)
    return int(found[0]) if len(found) == 1 else -1


def verdict(stats: Sequence[MethodStats], pairs: Sequence[Paired]) -> list[str]:
    """Does Generalist reach PGD-AT's clean accuracy + 3 points with AA within 1 point of the best baseline?

    Judged per budget, on the seeds where Generalist, PGD-AT and the best baseline were all trained under it (the
    best baseline: highest mean AA over the seeds it shares with Generalist under that budget), on the means over
    those seeds, stated with the seed-paired 95% t-intervals of the differences and the exact paired tests of no
    difference on the same seeds. Seeds whose Generalist and PGD-AT entries were trained under different budgets are
    left out; a budget is never mixed into another's means. With several budgets, the longest comes first."""
    by = {m.trainer: m for m in stats}
    if REFERENCE not in by or "pgd_at" not in by:
        return []
    head = (f"Does Generalist reach PGD-AT's clean accuracy + {CLEAN_GAIN:g} points with AutoAttack accuracy within "
            f"{AA_SLACK:g} point of the best baseline?")
    budget_of = {(m.trainer, s): b for m in stats for s, b in zip(m.seeds, _budgets(m), strict=True)}
    groups: dict[str, list[int]] = {}  # budget → seeds Generalist and PGD-AT were both trained under it
    apart: list[int] = []              # seeds Generalist and PGD-AT were trained under different budgets
    for s in by[REFERENCE].seeds:
        if ("pgd_at", s) in budget_of:
            same = budget_of[(REFERENCE, s)] == budget_of[("pgd_at", s)]
            (groups.setdefault(budget_of[(REFERENCE, s)], []) if same else apart).append(s)
    if not groups:
        if not apart:
            return []
        return ["## Verdict", "", f"{head} **Not comparable**: Generalist and PGD-AT were not trained under one budget "
                f"on any seed ({', '.join(map(str, apart))}; see above), so no verdict is drawn.", ""]
    order = sorted(groups, key=lambda b: (-_epochs(b), -len(groups[b]), b))
    labels = {b: _budget_label(b, groups) for b in order}
    lines = ["## Verdict", ""]
    if len(order) > 1 or apart:
        left = (f" Seed(s) {', '.join(map(str, apart))}: Generalist and PGD-AT trained under different budgets, left "
                "out." if apart else "")
        spanned = {budget_of[(t, s)] for t in (REFERENCE, "pgd_at") for s in by[t].seeds}
        lines += [f"{head} Generalist's and PGD-AT's entries span {len(spanned)} budgets; each budget is judged on "
                  f"the seeds both were trained under it, the longest first (a mean across budgets would mean "
                  f"nothing).{left}", ""]
        for b in order:
            lines += _verdict_at(by, budget_of, b, groups[b], pairs, f"**At {labels[b]}**:")
    else:
        lines += _verdict_at(by, budget_of, order[0], groups[order[0]], pairs, head)
    return lines + [
        "Means, Δ and intervals are over each budget's common seeds, on the AutoAttack points (the headline numbers); "
        "Δ is paired by seed, and its t-interval over seeds is where seed-to-seed variation shows (it treats the "
        "test points as fixed: their sampling error, shared by every seed, is in the Wilson intervals above). The "
        "paired tests ask whether the two methods' models differ at all on these points, not whether a target is "
        "met, and are conditional on the trained models: per seed the exact McNemar test; over several seeds the "
        f"{SIGN_FLIP} on each point's difference summed over the seeds, each test point one unit.", ""]


def _verdict_at(by: Mapping[str, MethodStats], budget_of: Mapping[tuple[str, int], str], budget: str,
                seeds: Sequence[int], pairs: Sequence[Paired], lead: str) -> list[str]:
    """The answer and its two bullet points for the seeds in ``seeds``, trained under ``budget``."""
    under = lambda t: [s for s in seeds if budget_of.get((t, s)) == budget]  # noqa: E731
    shared = [by[t] for t in BASELINES if t in by and under(t)]
    best = max(shared, key=lambda m: statistics.fmean(_sub(m, under(m.trainer)).robust))
    common = under(best.trainer)  # ⊆ seeds, all of which PGD-AT has under this budget
    involved = [_sub(by[t], common) for t in dict.fromkeys((REFERENCE, "pgd_at", best.trainer))]
    g, pgd, bst = involved[0], involved[1], involved[-1]
    dc, da = difference(involved, "pgd_at", "clean"), difference(involved, best.trainer, "robust")
    assert dc is not None and da is not None

    def p_of(b: str, what: str) -> str:
        qs = [q for q in pairs if q.b == b and q.what == what and q.trained == budget and not q.note]
        q = next((q for q in qs if q.seed is None and set(q.seeds) == set(common)), None)
        per_seed = [next((q for q in qs if q.seed == s), None) for s in common]
        if q is None and all(per_seed):  # no pooled row on exactly these seeds (the table pools all a pair shares)
            q = per_seed[0] if len(common) == 1 else pool(per_seed)
        if q is None or q.note:
            missing = [s for s, r in zip(common, per_seed, strict=True) if r is None]
            return (f"no paired per-point flags for seed(s) {', '.join(map(str, missing))}" if missing else
                    f"no paired test: {q.note if q else 'no per-point flags'}")
        if q.seed is not None:
            return f"exact McNemar test: p = {format_p(q.p_value)}, {q.a_only} vs {q.b_only} discordant points"
        return (f"{SIGN_FLIP} over the points, seeds summed per point: p = {format_p(q.p_value)}; {q.a_only} points "
                f"favour Generalist, {q.b_only} the baseline")

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
        f"{lead} {answer}.", "",
        f"- Clean: Generalist {_pm(g.clean_mean_std)} vs PGD-AT {_pm(pgd.clean_mean_std)}: "
        f"Δ = {dc.mean:+.2f} points ({interval(dc)}; {p_of('pgd_at', 'clean')}); target ≥ {CLEAN_GAIN:+g}: "
        f"{'met' if clean_ok else 'not met'}, {side(dc, CLEAN_GAIN, clean_ok)}.",
        f"- AutoAttack: Generalist {_pm(g.robust_mean_std)} vs the best baseline, "
        f"{display_title('trainer', best.trainer)}, {_pm(bst.robust_mean_std)}: Δ = {da.mean:+.2f} points "
        f"({interval(da)}; {p_of(best.trainer, 'robust')}); target ≥ {-AA_SLACK:+g}: {'met' if aa_ok else 'not met'}, "
        f"{side(da, -AA_SLACK, aa_ok)}.", ""]


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
        lines += ["", "## Paired comparisons on the same points (exact McNemar; seeds pooled per point)", "",
                  "Generalist (A) against each baseline (B), same seed on both sides, on the per-point flags of the "
                  "headline evaluation: the points only A gets right, only B gets right, and the exact two-sided "
                  "McNemar p-value. 'pooled' rows take the seeds of one budget together: each point's difference is "
                  "summed over the seeds (+1 for each seed where only A is right, −1 where only B is), *only A* and "
                  "*only B* count the points whose sum favours A or B, and p is the exact two-sided sign-flip test on "
                  "those sums, which is McNemar's test with each test point counted once however many seeds scored "
                  "it (adding the seeds' discordant counts would treat the same points under three seeds as three "
                  "times as many independent ones, and overstate significance). Both tests are conditional on the "
                  "trained models: they say whether these models differ on the test distribution, not how much "
                  "another seed would move them; the spread over seeds above speaks to that.", "",
                  "| A vs B | seed | quantity | n | only A | only B | p (exact McNemar; pooled: sign-flip) |",
                  "|---|---|---|---:|---:|---:|---:|"]
        for q in pairs:
            seed = "pooled " + ",".join(map(str, q.seeds)) if q.seed is None else str(q.seed)
            seed += f" ({q.budget})" if q.budget else ""
            vs = f"{display_title('trainer', q.a)} vs {display_title('trainer', q.b)}"
            if q.note:
                lines.append(f"| {vs} | {seed} | {q.what} | {q.n} | – | – | not comparable: {q.note} |")
            else:
                lines.append(f"| {vs} | {seed} | {q.what} | {q.n} | {q.a_only} | {q.b_only} | {format_p(q.p_value)} |")
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
           "only_a": "" if q.note else q.a_only, "only_b": "" if q.note else q.b_only, "test": q.test,
           "p_value": format_p(q.p_value, digits=6, missing=""),
           "note": q.note} for q in pairs]
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
