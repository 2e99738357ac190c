"""The numbers a view reads off one record: its primary metric, a 95% interval, efficiency figures.

Every view reads efficiency figures through here, with one policy: a figure is a finite, positive
float or it is not there (None). A stored value that breaks the policy is never shown, and
:func:`efficiency_problem` says why, for the views (the gate) that must explain a missing figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from evalkit.intervals import Z95, wilson_interval
from evalkit.results import MetricValue, RunRecord


def primary_metric(record: RunRecord) -> MetricValue | None:
    """The record's value of its task's primary metric, None when absent or not finite."""
    value = record.metrics.get(record.task.primary_metric)
    return value if value is not None and math.isfinite(value.value) else None


def interval(metric: MetricValue) -> tuple[float, float] | None:
    """The 95% interval a view shows: the stored one when it can be true, else one that can.

    Records store Wilson's interval for 0/1 scores and a bootstrap one otherwise (`MetricValue`),
    and a view shows that. Older records and lm-eval imports store value ± 1.96 × stderr, which for
    a bounded metric can leave [0, 1] (2 of 9: -6.6 % to 51.0 %) or collapse to a point at 0 % or
    100 %; such an interval, and a missing one, is replaced for a bounded metric by Wilson's interval
    from the value and n: exact for 0/1 scores, and wide enough for any scores in [0, 1] (their
    variance is at most p(1 - p)). An unbounded metric without a stored interval gets the normal one
    from a finite standard error; None when there is neither.
    """
    stored = metric.ci95
    if stored is not None and _can_be_true(metric, stored):
        return stored
    if metric.bounded and metric.n > 0 and 0.0 <= metric.value <= 1.0:
        return wilson_interval(metric.value, metric.n)
    if stored is None and metric.stderr is not None and math.isfinite(metric.stderr):
        return (metric.value - Z95 * metric.stderr, metric.value + Z95 * metric.stderr)
    return stored


def _can_be_true(metric: MetricValue, bounds: tuple[float, float]) -> bool:
    """Whether a stored interval is a possible 95% interval of the metric's value."""
    low, high = bounds
    if not low <= metric.value <= high:
        return not math.isfinite(metric.value)  # an undefined or overflowed value: nothing to check
    if not metric.bounded:
        return True
    # A point at 0 or 1 is the Wald interval of all-wrong or all-right 0/1 scores, never a true 95%
    # interval; a point inside (0, 1) is a bootstrap of constant fractional scores, which it is.
    return low >= 0.0 and high <= 1.0 and not (low == high and metric.value in (0.0, 1.0) and metric.n > 0)


def efficiency_figure(record: RunRecord, name: str) -> float | None:
    """The figure ``name`` (say ``peak_memory_bytes``) as a finite positive float, else None.

    A name that is no numeric figure raises UnknownNameError ("did you mean").
    """
    return record.efficiency.figure(name) if record.efficiency is not None else None


def efficiency_problem(record: RunRecord, name: str) -> str | None:
    """Why a figure that *is* stored does not count (not a positive number); None otherwise."""
    if record.efficiency is None or record.efficiency.figure(name) is not None:
        return None
    value = getattr(record.efficiency, name)
    if value is None:
        return None
    return f"record {record.record_id}: efficiency.{name} is not a positive number: {value!r}"


@dataclass(frozen=True)
class DecodeCost:
    """One point of ``efficiency.curves.decode``: the cost of generating at one context length."""

    context_length: int
    time_per_output_token_s: float | None
    peak_memory_bytes: float | None


@dataclass(frozen=True)
class PrefillCost:
    """One point of ``efficiency.curves.prefill``: the cost of reading a prompt of one length."""

    prompt_length: int
    tokens_per_s: float | None
    time_s: float | None


def decode_curve(record: RunRecord) -> list[DecodeCost]:
    """The decode curve by context length (empty when none was measured)."""
    if record.efficiency is None:
        return []
    points = [
        DecodeCost(
            point.context_length,
            _positive(point.time_per_output_token_s),
            _positive(point.peak_memory_bytes),
        )
        for point in record.efficiency.curves.decode
    ]
    return sorted(points, key=lambda point: point.context_length)


def prefill_curve(record: RunRecord) -> list[PrefillCost]:
    """The prefill curve by prompt length (empty when none was measured)."""
    if record.efficiency is None:
        return []
    points = [
        PrefillCost(point.prompt_length, _positive(point.tokens_per_s), _positive(point.time_s))
        for point in record.efficiency.curves.prefill
    ]
    return sorted(points, key=lambda point: point.prompt_length)


def _positive(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) and value > 0 else None
