"""95% confidence intervals for accuracies measured on n test points (binomial proportions)."""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # standard normal 97.5% quantile
METHOD = "Wilson score interval"


def wilson_interval(acc_percent: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval, in percent, for an accuracy of ``acc_percent`` % measured on ``n`` points.

    The number of successes is ``round(acc_percent * n / 100)`` (accuracies are counts over n).
    Unlike the normal approximation it stays inside [0, 100] and is sensible at 0 % and 100 %.
    """
    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    if not 0.0 <= acc_percent <= 100.0:
        raise ValueError(f"accuracy must be in [0, 100], got {acc_percent}")
    k = round(acc_percent * n / 100.0)
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, (centre - half) * 100.0), min(100.0, (centre + half) * 100.0)
