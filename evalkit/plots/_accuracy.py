"""Accuracy bars with 95% intervals: one task across models, or many tasks with models side by side."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from evalkit.plots._style import (
    base_layout,
    cap_note,
    horizontal_line,
    legend_for,
    new_figure,
    note_figure,
    plot_text,
)
from evalkit.query import StoreQuery, interval, primary_metric
from evalkit.results import MetricValue, RunRecord

if TYPE_CHECKING:
    import plotly.graph_objects as go

MAX_MODELS_GROUPED = 12  # bars per task group stay readable up to about this many
MAX_TASKS = 40
MAX_MODELS_SINGLE_TASK = 60


def matches_model(record: RunRecord, wanted: Collection[str], names: Mapping[str, str]) -> bool:
    """A model is named by its display name, its spec name or its fingerprint."""
    model = record.model
    return model.fingerprint in wanted or model.name in wanted or names[model.fingerprint] in wanted


def accuracy_bars(
    records: Sequence[RunRecord],
    *,
    tasks: Collection[str] | None = None,
    models: Collection[str] | None = None,
    max_models: int = MAX_MODELS_GROUPED,
    max_tasks: int = MAX_TASKS,
    names: Mapping[str, str] | None = None,
) -> go.Figure:
    """Each model's primary metric per task, with its 95% interval and the chance level.

    One task: one bar per model, best first. Several tasks: tasks along the axis, models side by
    side, models ordered by their mean over the shown tasks; only bounded metrics (fractions,
    shown as %) are drawn, since a perplexity shares no axis with an accuracy. ``names``
    (fingerprint -> label) keeps labels equal to the leaderboard's when ``records`` is a subset.
    """
    query = StoreQuery(records)
    names = dict(names) if names is not None else query.names
    chosen = [
        record
        for record in query.latest_ok().values()
        if (tasks is None or record.task.name in tasks)
        and (models is None or matches_model(record, models, names))
        and primary_metric(record) is not None
    ]
    task_names = sorted({record.task.name for record in chosen})
    if not task_names:
        return note_figure("Accuracy", "no successful records with a primary metric to show")
    if len(task_names) == 1:
        return _one_task(chosen, names, max(max_models, MAX_MODELS_SINGLE_TASK))
    return _grouped(chosen, names, max_models, max_tasks)


def _one_task(chosen: list[RunRecord], names: dict[str, str], max_models: int) -> go.Figure:
    metric_name = chosen[0].task.primary_metric
    values = [(record, value) for record in chosen if (value := primary_metric(record)) is not None]
    bounded = all(value.bounded for _, value in values)
    sign = -1.0 if values[0][1].higher_is_better else 1.0  # best first
    values.sort(key=lambda item: (sign * item[1].value, names[item[0].model.fingerprint]))
    shown = values[:max_models]
    scale = 100.0 if bounded else 1.0
    bar = _bar_trace(
        [plot_text(names[record.model.fingerprint]) for record, _ in shown], shown, scale, name=metric_name
    )
    bar["marker"] = {"color": "#4c72b0"}
    bar["showlegend"] = False
    unit = "%" if bounded else ""
    layout = base_layout(
        plot_text(f"{chosen[0].task.name}: {metric_name} (95% CI)"),
        subtitle=cap_note(len(shown), len(values), "models"),
        yaxis={"title": {"text": plot_text(f"{metric_name} {unit}".strip())}, "gridcolor": "#e5e5e5"},
        xaxis={"automargin": True, "tickangle": -30 if len(shown) > 6 else 0},
        bargap=0.6 if len(shown) <= 3 else 0.25,  # one or two bars must not fill the whole width
        height=420,
    )
    chance = next((value.chance for _, value in shown if value.chance is not None), None)
    if chance is not None:
        layout["shapes"] = [_chance_line(chance * scale)]
        layout["annotations"] = [_chance_label(chance * scale)]
    return new_figure([bar], layout)


def _grouped(chosen: list[RunRecord], names: dict[str, str], max_models: int, max_tasks: int) -> go.Figure:
    by_model: dict[str, dict[str, RunRecord]] = {}
    skipped: set[str] = set()
    for record in chosen:
        value = primary_metric(record)
        if value is None or not value.bounded:
            skipped.add(record.task.name)
            continue
        by_model.setdefault(record.model.fingerprint, {})[record.task.name] = record
    task_names = sorted({task for tasks in by_model.values() for task in tasks} - skipped)
    if not task_names:
        return note_figure(
            "Accuracy", "none of the selected tasks has a bounded primary metric (an accuracy)"
        )
    shown_tasks = task_names[:max_tasks]

    def mean(fingerprint: str) -> float:
        values = [_value(by_model[fingerprint].get(task)) for task in shown_tasks]
        present = [value for value in values if value is not None]
        return sum(present) / len(present) if present else 0.0

    order = sorted(by_model, key=lambda fp: (-mean(fp), names[fp]))
    shown_models = order[:max_models]
    traces: list[dict[str, Any]] = []
    for fingerprint in shown_models:
        records = [by_model[fingerprint].get(task) for task in shown_tasks]
        scored = [(r, value) for r in records if r is not None and (value := primary_metric(r)) is not None]
        traces.append(
            _bar_trace(
                [plot_text(record.task.name) for record, _ in scored],
                scored,
                100.0,
                name=plot_text(names[fingerprint]),
            )
        )
    chance_points = _chance_points(chosen, shown_tasks)
    if chance_points:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "chance",
                "x": [plot_text(task) for task, _ in chance_points],
                "y": [value * 100.0 for _, value in chance_points],
                "marker": {"symbol": "line-ew-open", "size": 24, "color": "#333333", "line": {"width": 2}},
                "hovertemplate": "%{x}: chance %{y:.1f}%<extra></extra>",
            }
        )
    notes = [
        cap_note(len(shown_models), len(order), "models"),
        cap_note(len(shown_tasks), len(task_names), "tasks"),
    ]
    if skipped:
        notes.append(f"{len(skipped)} task(s) without an accuracy left out")
    layout = base_layout(
        "Accuracy per task (primary metric, 95% CI)",
        subtitle="; ".join(note for note in notes if note),
        barmode="group",
        yaxis={"title": {"text": "%"}, "gridcolor": "#e5e5e5", "rangemode": "tozero"},
        xaxis={"tickangle": -30 if len(shown_tasks) > 6 else 0, "automargin": True},
        height=460,
        legend=legend_for(len(traces)),
    )
    return new_figure(traces, layout)


def _value(record: RunRecord | None) -> float | None:
    value = primary_metric(record) if record is not None else None
    return None if value is None else value.value


def _bar_trace(
    x: list[str], values: Sequence[tuple[RunRecord, MetricValue]], scale: float, *, name: str
) -> dict[str, Any]:
    ys: list[float] = []
    plus: list[float | None] = []
    minus: list[float | None] = []
    hover: list[str] = []
    for _, value in values:
        ys.append(value.value * scale)
        bounds = interval(value)
        if bounds is None:
            plus.append(None)
            minus.append(None)
            hover.append(f"n={value.n}, no interval")
        else:
            plus.append(max(bounds[1] - value.value, 0.0) * scale)
            minus.append(max(value.value - bounds[0], 0.0) * scale)
            hover.append(f"95% CI {bounds[0] * scale:.1f} to {bounds[1] * scale:.1f}, n={value.n}")
    return {
        "type": "bar",
        "name": name,
        "x": x,
        "y": ys,
        "error_y": {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "thickness": 1.2},
        "customdata": hover,
        "hovertemplate": "%{x}<br>%{y:.1f}<br>%{customdata}<extra>%{fullData.name}</extra>",
    }


def _chance_points(chosen: list[RunRecord], tasks: list[str]) -> list[tuple[str, float]]:
    chance: dict[str, float] = {}
    for record in chosen:
        value = primary_metric(record)
        if value is not None and value.chance is not None and record.task.name in tasks:
            chance.setdefault(record.task.name, value.chance)
    return [(task, chance[task]) for task in tasks if task in chance]


def _chance_line(y: float) -> dict[str, Any]:
    return horizontal_line(y, "#333333")


def _chance_label(y: float) -> dict[str, Any]:
    return {
        "text": "chance",
        "xref": "paper",
        "x": 1,
        "xanchor": "right",
        "y": y,
        "yanchor": "bottom",
        "showarrow": False,
        "font": {"size": 11, "color": "#333333"},
    }
