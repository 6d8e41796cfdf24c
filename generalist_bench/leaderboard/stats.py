"""95% confidence intervals for accuracies measured on n test points (binomial proportions), from scipy."""

from __future__ import annotations

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
