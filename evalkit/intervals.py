"""The 95% interval of a proportion, one definition for every part that shows or decides on one."""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the two-sided 95% quantile of the standard normal


def wilson_interval(proportion: float, n: int) -> tuple[float, float]:
    """Wilson's 95% score interval for a share `proportion` of `n` trials.

    Unlike the normal (Wald) interval it stays inside [0, 1] and is honest at small n: 9 of 9 is
    70.1-100 %, not 100-100 %. At the extremes one bound is exactly 0 or 1 (floats could otherwise
    land a hair inside or outside).
    """
    z2 = Z95 * Z95
    centre = (proportion + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(proportion * (1 - proportion) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    low = 0.0 if proportion <= 0 else max(0.0, centre - half)
    high = 1.0 if proportion >= 1 else min(1.0, centre + half)
    return low, high
