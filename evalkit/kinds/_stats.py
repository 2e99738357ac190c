"""Aggregation with standard errors and 95% intervals that can be true.

The mean, its standard error and per-document perplexity reproduce lm-eval's `mean`, `mean_stderr` and
`perplexity` (lm_eval/api/metrics.py) operation for operation, so evalkit's figures equal the ones
lm-eval reports for the same scores, to the last bit; core scoring need not import lm-eval for that.

The 95% interval (`MetricValue.ci95`) is *not* lm-eval's value ± 1.96 × stderr: that Wald interval
leaves [0, 1] at small n (2 of 9 correct gave -6.6 % to 51.0 %) and collapses to a point at 0 or n
correct (9 of 9 gave 100 % to 100 %). Instead:

* scores that are all 0 or 1 get **Wilson's score interval**: inside [0, 1], never a point when n > 0;
* any other scores get a **percentile bootstrap** of the mean (or of the ratio Σx / Σw, for word and
  byte perplexity), seeded so that the same scores always give the same interval;
* a perplexity's interval is the bootstrap interval of its mean negative logprob, mapped through exp,
  so it is positive (the delta-method one went below zero) and may end at +inf when exp overflows.

Nothing here raises on extreme scores: exp overflows to +inf and undefined figures (a stderr of an
infinite value, an interval of one sample) are None, as `MetricValue` documents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from evalkit import intervals
from evalkit.results import MetricValue

BOOTSTRAP_RESAMPLES = 2_000
BOOTSTRAP_SEED = 0  # fixed: an interval is a function of the scores, reproducible run after run
_BOOTSTRAP_CHUNK_DRAWS = 2_000_000  # indices drawn per chunk: bounds memory at ~16 MB whatever n is


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean by a plain left-to-right `sum`, as lm-eval; math.fsum would differ in the last bits."""
    return float(sum(values)) / len(values)


def sample_stddev(values: Sequence[float]) -> float:
    """Standard deviation with Bessel's correction (n - 1); needs two values or more.

    Squares that overflow (scores near 1e155 and beyond) give +inf rather than OverflowError.
    """
    mu = mean(values)
    try:
        return math.sqrt(sum((x - mu) ** 2 for x in values) / (len(values) - 1))
    except OverflowError:
        return math.inf


def mean_stderr(values: Sequence[float]) -> float:
    """Standard error of the mean: sample standard deviation / sqrt(n)."""
    return sample_stddev(values) / math.sqrt(len(values))


def mean_metric(
    values: Sequence[float], *, higher_is_better: bool = True, bounded: bool = True
) -> MetricValue:
    """Mean with lm-eval's standard error (sample std / sqrt(n)); Wilson or bootstrap 95% interval."""
    n = len(values)
    if n == 0:
        return MetricValue(
            value=math.nan, stderr=None, ci95=None, n=0, higher_is_better=higher_is_better, bounded=bounded
        )
    value = mean(values)
    stderr = mean_stderr(values) if n > 1 else None
    if all(v in (0.0, 1.0) for v in values):
        ci: tuple[float, float] | None = wilson_interval(sum(values), n)
    else:
        ci = bootstrap_interval(values)
    return _metric(value, stderr, ci, n, higher_is_better, bounded)


def exp_of_negative_mean(logprobs: Sequence[float]) -> MetricValue:
    """Perplexity as lm-eval defines it per document, exp(-mean logprob); stderr by the delta method."""
    n = len(logprobs)
    value = _exp(-mean(logprobs))
    stderr = value * mean_stderr(logprobs) if n > 1 else None
    bounds = bootstrap_interval(logprobs)
    ci = None if bounds is None else (_exp(-bounds[1]), _exp(-bounds[0]))  # exp(-x) reverses the order
    return _metric(value, stderr, ci, n, higher_is_better=False, bounded=False)


def ratio_metric(numerators: Sequence[float], denominators: Sequence[float]) -> tuple[float, float | None]:
    """R = Σx / Σw and its ratio-estimator standard error (delta method); R is NaN when Σw is 0."""
    n = len(numerators)
    total_w = float(sum(denominators))
    if total_w == 0:
        return math.nan, None
    ratio = float(sum(numerators)) / total_w
    mean_w = total_w / n
    if n < 2 or mean_w == 0:  # mean_w underflows to 0 for subnormal weights
        return ratio, None
    residuals = [x - ratio * w for x, w in zip(numerators, denominators, strict=True)]
    variance = sum(r * r for r in residuals) / (n - 1)
    return ratio, math.sqrt(variance / n) / mean_w


def weighted_perplexity(logprobs: Sequence[float], weights: Sequence[float]) -> MetricValue:
    """exp(-Σ logprob / Σ weight), e.g. word perplexity (weights = words per document)."""
    negative = [-lp for lp in logprobs]
    ratio, stderr = ratio_metric(negative, weights)
    value = _exp(ratio)
    bounds = bootstrap_interval(negative, weights)
    ci = None if bounds is None else (_exp(bounds[0]), _exp(bounds[1]))
    return _metric(value, value * stderr if stderr is not None else None, ci, len(logprobs), False, False)


def bits_per_byte(logprobs: Sequence[float], num_bytes: Sequence[float]) -> MetricValue:
    negative = [-lp for lp in logprobs]
    ratio, stderr = ratio_metric(negative, num_bytes)
    scale = 1.0 / math.log(2)
    bounds = bootstrap_interval(negative, num_bytes)
    ci = None if bounds is None else (bounds[0] * scale, bounds[1] * scale)
    stderr = stderr * scale if stderr is not None else None
    return _metric(ratio * scale, stderr, ci, len(logprobs), False, False)


def wilson_interval(successes: float, n: int) -> tuple[float, float]:
    """Wilson's 95% score interval for `successes` of `n` trials (see `evalkit.intervals`)."""
    return intervals.wilson_interval(successes / n, n)


def bootstrap_interval(
    values: Sequence[float],
    weights: Sequence[float] | None = None,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float] | None:
    """The 2.5th-97.5th percentile of Σx* / Σw* over resamples of the documents (w = 1: the mean).

    None when there is no interval to give: fewer than two values, or a value or weight that is
    not finite (a resampled sum of inf and -inf has no percentile).
    """
    import numpy as np

    n = len(values)
    x = np.asarray(values, dtype=np.float64)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if n < 2 or not (np.isfinite(x).all() and np.isfinite(w).all()):
        return None
    rng = np.random.default_rng(seed)
    statistics = np.empty(resamples, dtype=np.float64)
    chunk = max(1, _BOOTSTRAP_CHUNK_DRAWS // n)
    with np.errstate(all="ignore"):  # sums of huge scores overflow to inf; such resamples are dropped
        for start in range(0, resamples, chunk):
            stop = min(resamples, start + chunk)
            indices = rng.integers(0, n, size=(stop - start, n))
            statistics[start:stop] = x[indices].sum(axis=1) / w[indices].sum(axis=1)
    statistics = statistics[np.isfinite(statistics)]
    if statistics.size == 0:
        return None
    low, high = np.percentile(statistics, [2.5, 97.5])
    return float(low), float(high)


def _exp(x: float) -> float:
    """math.exp, with +inf where it would raise OverflowError (x > 709.78)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _metric(
    value: float,
    stderr: float | None,
    ci: tuple[float, float] | None,
    n: int,
    higher_is_better: bool,
    bounded: bool,
) -> MetricValue:
    """A MetricValue holding only what the record format promises (see its docstring)."""
    if stderr is not None and not math.isfinite(stderr):
        stderr = None  # the standard error of an overflowed or undefined value is itself undefined
    if ci is not None and any(math.isnan(bound) for bound in ci):
        ci = None
    return MetricValue(
        value=value, stderr=stderr, ci95=ci, n=n, higher_is_better=higher_is_better, bounded=bounded
    )
