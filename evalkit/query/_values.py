"""The numbers a view reads off one record: its primary metric, a 95% interval, efficiency figures.

Every view reads efficiency figures through here, with one policy: a figure is a finite, positive
float or it is not there (None). A stored value that breaks the policy is never shown, and
:func:`efficiency_problem` says why, for the views (the gate) that must explain a missing figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from evalkit.results import MetricValue, RunRecord

Z95 = 1.959963984540054  # the two-sided 95% quantile of the standard normal


def primary_metric(record: RunRecord) -> MetricValue | None:
    """The record's value of its task's primary metric, None when absent or not finite."""
    value = record.metrics.get(record.task.primary_metric)
    return value if value is not None and math.isfinite(value.value) else None


def interval(metric: MetricValue) -> tuple[float, float] | None:
    """The stored 95% interval, else the normal one from a finite standard error, else None."""
    if metric.ci95 is not None:
        return metric.ci95
    if metric.stderr is not None and math.isfinite(metric.stderr):
        return (metric.value - Z95 * metric.stderr, metric.value + Z95 * metric.stderr)
    return None


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
