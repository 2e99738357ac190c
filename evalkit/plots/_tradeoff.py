"""The accuracy-vs-cost points: leaderboard rows, with the costs and Pareto flags the leaderboard computed."""

from __future__ import annotations

import math
from dataclasses import dataclass

from evalkit.report import LATENCY, PARETO_LATENCY, PARETO_MEMORY, Leaderboard


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
