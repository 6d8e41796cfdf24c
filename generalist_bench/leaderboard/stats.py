"""95% confidence intervals for accuracies measured on n test points (binomial proportions), and the exact paired
test of no difference between two methods on the same points, from scipy."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

METHOD = "Wilson score interval"


def wilson_interval(acc_percent: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval, in percent, for an accuracy of ``acc_percent`` % measured on ``n`` points
    (``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``).

    The number of successes is ``round(acc_percent * n / 100)`` (accuracies are counts over n).
    Unlike the normal approximation it stays inside [0, 100] and is sensible at 0 % and 100 %.
    """
    from scipy.stats import binomtest

    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    if not 0.0 <= acc_percent <= 100.0:
        raise ValueError(f"accuracy must be in [0, 100], got {acc_percent}")
    ci = binomtest(round(acc_percent * n / 100.0), n).proportion_ci(confidence, method="wilson")
    return max(0.0, ci.low * 100.0), min(100.0, ci.high * 100.0)


SIGN_FLIP = "exact sign-flip test"


def sign_flip_p(diffs: Iterable[int]) -> float:
    """Exact two-sided p-value of the paired sign-flip (randomisation) test of no difference on integer per-point
    differences ``diffs``: under the null hypothesis each nonzero difference is as likely to have either sign,
    independently across points, and p = P(|Σ ε_i d_i| ≥ |Σ d_i|) over the 2^m sign assignments.

    With differences in {−1, 0, +1} (one pair of models: 1 where only A is right, −1 where only B is) it is the exact
    McNemar test, ``scipy.stats.binomtest(#(+1), #(±1), 0.5)``. With each point's sum over seeds of those differences
    it pools the seeds while keeping each test point one unit: the same points scored under several seeds are not
    counted as independent observations, as adding the seeds' discordant counts would.
    """
    import numpy as np
    from scipy.stats import binom

    raw = list(diffs)
    d = [int(x) for x in raw]
    if d != raw:
        raise ValueError("sign_flip_p takes integer differences (per point: a right − b right, summed over seeds)")
    counts = Counter(abs(x) for x in d if x)
    if not counts:
        return 1.0
    total = sum(v * k for v, k in counts.items())
    # T = Σ ±|d_i| = 2·S − total, S = Σ_v v·J_v with J_v ~ Binomial(k_v, ½) the positive signs among the |d| = v
    pmf = np.ones(1)
    for v, k in sorted(counts.items()):
        step = np.zeros(v * k + 1)
        step[::v] = binom.pmf(np.arange(k + 1), k, 0.5)
        pmf = np.convolve(pmf, step)
    t = np.abs(2 * np.arange(total + 1) - total)
    return float(min(1.0, pmf[t >= abs(sum(d))].sum()))


def format_p(p: float | None, digits: int = 3, missing: str = "–") -> str:
    """A p-value in ``digits`` significant digits; one that underflowed to 0 in float64 as ``<1e-300`` (its terms are
    each below float64's range, and there are at most a few thousand of them); ``missing`` when there is none."""
    if p is None:
        return missing
    return "<1e-300" if p == 0.0 else f"{p:.{digits}g}"
