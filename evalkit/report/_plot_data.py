"""What the plots and the site read from run records, chosen by the leaderboard's rules.

The leaderboard shows each model's latest ``ok`` record per task; plots must show the same
numbers or a reader sees two answers to one question. So ordering and display names come from
the leaderboard's own selection module, and the accuracy-vs-cost points from its frame; only the
per-record lookups (CIs, matrices, curves) that the frame does not carry are done here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evalkit.report._extras import LATENCY, PARETO_LATENCY, PARETO_MEMORY
from evalkit.report._selection import display_names, in_time_order
from evalkit.report.stats import Z95
from evalkit.results.schema import MetricValue, RunRecord

if TYPE_CHECKING:
    from evalkit.report.leaderboard import Leaderboard

__all__ = [
    "ModelPoint",
    "display_names",
    "efficiency_number",
    "in_time_order",
    "interval",
    "latest_ok",
    "primary",
    "tradeoff_points",
]


def latest_ok(records: Iterable[RunRecord]) -> dict[tuple[str, str], RunRecord]:
    """(model fingerprint, task name) -> the latest successful record, in time order."""
    latest: dict[tuple[str, str], RunRecord] = {}
    for record in in_time_order(records):
        if record.status == "ok":
            key = (record.model.fingerprint, record.task.name)
            latest.pop(key, None)
            latest[key] = record
    return latest


def interval(metric: MetricValue) -> tuple[float, float] | None:
    """The stored 95% interval, else the normal one from the standard error, else None."""
    if metric.ci95 is not None:
        return metric.ci95
    if metric.stderr is not None and math.isfinite(metric.stderr):
        return (metric.value - Z95 * metric.stderr, metric.value + Z95 * metric.stderr)
    return None


def primary(record: RunRecord) -> MetricValue | None:
    value = record.metrics.get(record.task.primary_metric)
    return value if value is not None and math.isfinite(value.value) else None


@dataclass(frozen=True)
class ModelPoint:
    """One leaderboard row as the accuracy-vs-cost plots see it."""

    fingerprint: str
    name: str
    family: str
    accuracy: float  # the leaderboard's mean: bounded primary metrics, as a fraction
    tasks: int  # how many tasks that mean averages
    memory_bytes: float | None  # on the leaderboard's memory axis (peak memory, else size on disk)
    seconds_per_token: float | None
    on_memory_front: bool
    on_latency_front: bool


def tradeoff_points(board: Leaderboard) -> list[ModelPoint]:
    """The rows that have a mean, with the costs and Pareto flags the leaderboard computed.

    The plots draw the leaderboard's own front (``pareto_memory`` / ``pareto_latency``, from
    :func:`evalkit.report.stats.pareto_front`) so that a flag in the table and a point on the
    line can never disagree.
    """
    points = []
    for row in board.frame.to_dict("records"):
        accuracy = _number(row.get("mean"))
        if accuracy is None:
            continue
        points.append(
            ModelPoint(
                fingerprint=str(row["fingerprint"]),
                name=str(row["model"]),
                family=str(row["family"]),
                accuracy=accuracy,
                tasks=int(row["tasks_in_mean"]),
                memory_bytes=_number(row.get(board.memory_axis)),
                seconds_per_token=_number(row.get(LATENCY)),
                on_memory_front=bool(row.get(PARETO_MEMORY, False)),
                on_latency_front=bool(row.get(PARETO_LATENCY, False)),
            )
        )
    return points


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def efficiency_number(record: RunRecord, key: str) -> float | None:
    """A finite, positive efficiency figure, or None (absent, malformed or zero)."""
    value = (record.efficiency or {}).get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None
