"""Accuracy against cost (memory, latency) with the Pareto frontier, and cost against context length.

The frontier is the answer to "which model should I pick under this budget": every model off it
is beaten by a cheaper one that is at least as accurate.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from evalkit.plots._style import (
    COLORS,
    FAMILY_COLORS,
    FAMILY_DASH,
    FRONTIER_COLOR,
    base_layout,
    cap_note,
    length_ticks,
    mebibytes,
    new_figure,
    note_figure,
    plot_text,
)
from evalkit.plots._tradeoff import ModelPoint, tradeoff_points
from evalkit.query import DecodeCost, StoreQuery, decode_curve
from evalkit.report import PEAK_MEMORY, Leaderboard, build_leaderboard
from evalkit.results import RunRecord

if TYPE_CHECKING:
    import plotly.graph_objects as go

MAX_CURVE_MODELS = 12
MAX_LABELLED_POINTS = 25  # beyond this, names on the points overlap; hover still shows them


def accuracy_vs_memory(records: Sequence[RunRecord], *, board: Leaderboard | None = None) -> go.Figure:
    """The leaderboard's mean against memory, with its memory Pareto front.

    Memory is measured peak memory when every model has it, else every model's size on disk: the
    leaderboard's rule, since mixing the two would compare unlike things. Pass ``board`` when the
    caller has built the leaderboard of these records already.
    """
    board = board if board is not None else _board(records)
    points = [point for point in tradeoff_points(board) if point.memory_bytes is not None]
    title = "Accuracy vs memory"
    if not points:
        return note_figure(title, "no model has a bounded primary metric (an accuracy) to plot")
    if board.memory_axis == PEAK_MEMORY:
        axis = "peak memory (MiB, measured)"
    else:
        axis = "weights on disk (MiB; not every model has a peak memory measurement)"
    costs = [mebibytes(point.memory_bytes or 0.0) for point in points]
    fronts = [point.on_memory_front for point in points]
    return _tradeoff(title, points, costs, fronts, axis)


def accuracy_vs_latency(records: Sequence[RunRecord], *, board: Leaderboard | None = None) -> go.Figure:
    """The leaderboard's mean against time per output token, with its latency Pareto front."""
    board = board if board is not None else _board(records)
    points = tradeoff_points(board)
    timed = [point for point in points if point.seconds_per_token is not None]
    title = "Accuracy vs latency"
    if not timed:
        return note_figure(
            title,
            "no record has efficiency.time_per_output_token_s; "
            "latency is stored when a run measures efficiency",
        )
    missing = len(points) - len(timed)
    note = f"{missing} model(s) without a latency measurement not shown" if missing else ""
    costs = [(point.seconds_per_token or 0.0) * 1000.0 for point in timed]
    fronts = [point.on_latency_front for point in timed]
    return _tradeoff(title, timed, costs, fronts, "time per output token (ms)", note)


def _board(records: Sequence[RunRecord]) -> Leaderboard:
    return build_leaderboard(records)


def _tradeoff(
    title: str, points: list[ModelPoint], costs: list[float], frontier: list[bool], axis: str, note: str = ""
) -> go.Figure:
    accuracies = [point.accuracy * 100.0 for point in points]
    traces: list[dict[str, Any]] = []
    for family in sorted({point.family for point in points}):
        members = [i for i, point in enumerate(points) if point.family == family]
        color = FAMILY_COLORS.get(family, "#8c8c8c")
        traces.append(
            {
                "type": "scatter",
                "mode": "markers+text" if len(points) <= MAX_LABELLED_POINTS else "markers",
                "name": plot_text(family),
                "x": [costs[i] for i in members],
                "y": [accuracies[i] for i in members],
                "text": [plot_text(points[i].name) for i in members],
                "textposition": "top center",
                "textfont": {"size": 10},
                "cliponaxis": False,  # names near the top edge stay readable
                "marker": {"size": 10, "color": color, "line": {"width": 1, "color": "white"}},
                "customdata": [
                    f"mean of {points[i].tasks} task(s){'; on the Pareto front' if frontier[i] else ''}"
                    for i in members
                ],
                "hovertemplate": (
                    "%{text}<br>%{x:.4g}, %{y:.1f}%<br>%{customdata}<extra>%{fullData.name}</extra>"
                ),
            }
        )
    front = sorted((costs[i], accuracies[i]) for i in range(len(points)) if frontier[i])
    traces.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": "Pareto front",
            "x": [cost for cost, _ in front],
            "y": [accuracy for _, accuracy in front],
            "line": {"shape": "hv", "color": FRONTIER_COLOR, "dash": "dash", "width": 1.5},
            "hoverinfo": "skip",
        }
    )
    positive = [cost for cost in costs if cost > 0]
    spread = max(positive) / min(positive) if positive else 1.0
    task_counts = sorted({point.tasks for point in points})
    notes = [note] if note else []
    if len(task_counts) > 1:
        notes.append(f"means over {task_counts[0]} to {task_counts[-1]} tasks: compare with care")
    layout = base_layout(
        plot_text(title),
        subtitle=plot_text("; ".join(notes)),
        xaxis={
            "title": {"text": plot_text(axis)},
            "type": "log" if spread > 20 else "linear",
            "gridcolor": "#e5e5e5",
        },
        yaxis={"title": {"text": "mean accuracy (%)"}, "gridcolor": "#e5e5e5"},
        height=460,
    )
    return new_figure(traces, layout)


def efficiency_curves(
    records: Sequence[RunRecord],
    *,
    models: Collection[str] | None = None,
    max_models: int = MAX_CURVE_MODELS,
    names: Mapping[str, str] | None = None,
) -> go.Figure:
    """Time per output token and peak memory against context length, one line per model.

    Line style follows the model family, because the point of the plot is that a state-space
    model's cost stays flat with context while a transformer's grows.
    """
    query = StoreQuery(records)
    names = names if names is not None else query.names
    # Per model, its latest result that carries a decode curve (an efficiency task's, in practice).
    latest: dict[str, tuple[RunRecord, list[DecodeCost]]] = {}
    for record in query.latest_ok().values():
        curve = decode_curve(record)
        fingerprint = record.model.fingerprint
        if curve and (models is None or {fingerprint, names[fingerprint], record.model.name} & set(models)):
            latest[fingerprint] = (record, curve)
    title = "Decode cost vs context length"
    if not latest:
        return note_figure(
            title, "no record has efficiency.curves.decode (time per token at several context lengths)"
        )
    order = sorted(latest, key=lambda fp: (latest[fp][0].model.family, names[fp]))
    shown = order[:max_models]
    traces: list[dict[str, Any]] = []
    for index, fingerprint in enumerate(shown):
        record, curve = latest[fingerprint]
        family = record.model.family
        common = {
            "type": "scatter",
            "mode": "lines+markers",
            "name": plot_text(f"{names[fingerprint]} ({family})"),
            "legendgroup": fingerprint,  # one legend click hides both panels' lines
            "x": [point.context_length for point in curve],
            # One colour per model in both panels; the dash says the family.
            "line": {
                "dash": FAMILY_DASH.get(family, "solid"),
                "width": 2,
                "color": COLORS[index % len(COLORS)],
            },
        }
        traces.append(
            {
                **common,
                "y": [_times_1000(point.time_per_output_token_s) for point in curve],
                "hovertemplate": "%{x} tokens: %{y:.2f} ms/token<extra>%{fullData.name}</extra>",
            }
        )
        traces.append(
            {
                **common,
                "xaxis": "x2",
                "yaxis": "y2",
                "showlegend": False,
                "y": [_mebibytes(point.peak_memory_bytes) for point in curve],
                "hovertemplate": "%{x} tokens: %{y:.0f} MiB<extra>%{fullData.name}</extra>",
            }
        )
    grid = "#e5e5e5"
    ticks = length_ticks([point.context_length for fp in shown for point in latest[fp][1]])
    layout = base_layout(
        plot_text(title),
        subtitle=cap_note(len(shown), len(order), "models"),
        height=560,
        xaxis={**ticks, "gridcolor": grid, "anchor": "y", "matches": "x2", "showticklabels": False},
        xaxis2={**ticks, "title": {"text": "context length (tokens)"}, "gridcolor": grid, "anchor": "y2"},
        yaxis={
            "title": {"text": "ms per output token"},
            "gridcolor": grid,
            "rangemode": "tozero",
            "domain": [0.54, 1.0],
        },
        yaxis2={
            "title": {"text": "peak memory (MiB)"},
            "gridcolor": grid,
            "rangemode": "tozero",
            "domain": [0.0, 0.46],
        },
    )
    return new_figure(traces, layout)


def _times_1000(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def _mebibytes(size: float | None) -> float | None:
    return None if size is None else mebibytes(size)
