"""Repetition policy and summary statistics for timed figures.

A single timing on a shared 2-core machine can be off by 2x, so every figure is measured
after warm-up runs (first-call allocations, lazy kernels and cold caches are not what a user
pays per call), then repeated until BOTH a minimum count (enough samples for a median and a
spread) and a minimum time (so a 1 ms figure gets hundreds of samples and is not decided by one
scheduler hiccup) are reached. Reported: median (robust to outliers), min, max, p95 and the
coefficient of variation, so a reader can see how much to trust each number.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

Clock = Callable[[], float]
T = TypeVar("T")

# A run never repeats more than this, whatever min_seconds says (a 10 µs figure would otherwise
# need 100k repetitions to fill a second).
MAX_REPETITIONS = 1000


@dataclass(frozen=True)
class RepetitionPolicy:
    warmup: int = 1
    min_repetitions: int = 3
    min_seconds: float = 1.0
    max_repetitions: int = MAX_REPETITIONS


@dataclass(frozen=True)
class Summary:
    """A figure measured n times. `cv` is stdev/mean (0 for n == 1 or a zero mean)."""

    median: float
    min: float
    max: float
    p95: float
    cv: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), q in [0, 100]."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("summary of no values")
    mean = statistics.fmean(values)
    cv = statistics.stdev(values) / mean if len(values) > 1 and mean != 0 else 0.0
    return Summary(
        median=statistics.median(values),
        min=min(values),
        max=max(values),
        p95=percentile(values, 95.0),
        cv=cv,
        n=len(values),
    )


def repeat(run: Callable[[], T], policy: RepetitionPolicy, clock: Clock = time.perf_counter) -> list[T]:
    """Call `run` `policy.warmup` times (discarded), then until both minimums are met.

    The time minimum is counted on `clock` from the first recorded repetition, so tests can
    inject a fake clock and check the policy without waiting.
    """
    for _ in range(policy.warmup):
        run()
    results: list[T] = []
    started = clock()
    while len(results) < policy.max_repetitions:
        results.append(run())
        elapsed = clock() - started
        if len(results) >= policy.min_repetitions and elapsed >= policy.min_seconds:
            break
    return results
