"""Aggregation with standard errors.

The mean, its standard error and per-document perplexity reproduce lm-eval's `mean`, `mean_stderr` and
`perplexity` (lm_eval/api/metrics.py) operation for operation, so evalkit's figures equal the ones
lm-eval reports for the same scores, to the last bit; core scoring need not import lm-eval for that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from evalkit.results.schema import MetricValue

Z95 = 1.959963984540054


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean by a plain left-to-right `sum`, as lm-eval; math.fsum would differ in the last bits."""
    return float(sum(values)) / len(values)


def sample_stddev(values: Sequence[float]) -> float:
    """Standard deviation with Bessel's correction (n - 1); needs two values or more."""
    mu = mean(values)
    return math.sqrt(sum((x - mu) ** 2 for x in values) / (len(values) - 1))


def mean_stderr(values: Sequence[float]) -> float:
    """Standard error of the mean: sample standard deviation / sqrt(n)."""
    return sample_stddev(values) / math.sqrt(len(values))


def mean_metric(
    values: Sequence[float], *, higher_is_better: bool = True, bounded: bool = True
) -> MetricValue:
    """Mean with lm-eval's standard error (sample std / sqrt(n)) and a normal 95% interval."""
    n = len(values)
    if n == 0:
        return MetricValue(
            value=math.nan, stderr=None, ci95=None, n=0, higher_is_better=higher_is_better, bounded=bounded
        )
    value = mean(values)
    stderr = mean_stderr(values) if n > 1 else None
    return _with_interval(value, stderr, n, higher_is_better, bounded)


def exp_of_negative_mean(logprobs: Sequence[float]) -> MetricValue:
    """Perplexity as lm-eval defines it per document, exp(-mean logprob); stderr by the delta method."""
    n = len(logprobs)
    value = math.exp(-mean(logprobs))
    stderr = value * mean_stderr(logprobs) if n > 1 else None
    return _with_interval(value, stderr, n, higher_is_better=False, bounded=False)


def ratio_metric(numerators: Sequence[float], denominators: Sequence[float]) -> tuple[float, float | None]:
    """R = Σx / Σw and its ratio-estimator standard error (delta method)."""
    n = len(numerators)
    total_w = float(sum(denominators))
    ratio = float(sum(numerators)) / total_w
    if n < 2:
        return ratio, None
    mean_w = total_w / n
    residuals = [x - ratio * w for x, w in zip(numerators, denominators, strict=True)]
    variance = sum(r * r for r in residuals) / (n - 1)
    return ratio, math.sqrt(variance / n) / mean_w


def weighted_perplexity(logprobs: Sequence[float], weights: Sequence[float]) -> MetricValue:
    """exp(-Σ logprob / Σ weight), e.g. word perplexity (weights = words per document)."""
    negative = [-lp for lp in logprobs]
    ratio, stderr = ratio_metric(negative, weights)
    value = math.exp(ratio)
    return _with_interval(value, value * stderr if stderr is not None else None, len(logprobs), False, False)


def bits_per_byte(logprobs: Sequence[float], num_bytes: Sequence[float]) -> MetricValue:
    negative = [-lp for lp in logprobs]
    ratio, stderr = ratio_metric(negative, num_bytes)
    scale = 1.0 / math.log(2)
    return _with_interval(
        ratio * scale, stderr * scale if stderr is not None else None, len(logprobs), False, False
    )


def _with_interval(
    value: float, stderr: float | None, n: int, higher_is_better: bool, bounded: bool
) -> MetricValue:
    ci = None if stderr is None else (value - Z95 * stderr, value + Z95 * stderr)
    return MetricValue(
        value=value, stderr=stderr, ci95=ci, n=n, higher_is_better=higher_is_better, bounded=bounded
    )
