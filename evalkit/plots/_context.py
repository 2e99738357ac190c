"""Long-context plots from the depth × length matrix a record keeps (``record.long_context``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from evalkit.errors import EvalkitError
from evalkit.plots._style import (
    base_layout,
    cap_note,
    horizontal_line,
    length_ticks,
    new_figure,
    note_figure,
    plot_text,
    short_length,
)
from evalkit.query import StoreQuery
from evalkit.results import LongContextMatrix, RunRecord

if TYPE_CHECKING:
    import plotly.graph_objects as go

MAX_CONTEXT_LINES = 12
_COLORSCALE = [[0.0, "#c44e52"], [0.5, "#f2d16b"], [1.0, "#55a868"]]


def long_context_records(
    records: Sequence[RunRecord],
    *,
    models: Collection[str] | None = None,
    task: str | None = None,
    names: Mapping[str, str] | None = None,
) -> list[RunRecord]:
    """The latest successful records that carry a matrix, filtered by model (name or fingerprint)."""
    query = StoreQuery(records)
    names = names if names is not None else query.names
    chosen = []
    for record in query.latest_ok().values():
        if record.long_context is None or (task is not None and record.task.name != task):
            continue
        aliases = {record.model.fingerprint, record.model.name, names[record.model.fingerprint]}
        if models is None or aliases & set(models):
            chosen.append(record)
    return sorted(chosen, key=lambda r: (names[r.model.fingerprint], r.task.name))


def needle_heatmap(
    records: Sequence[RunRecord], *, model: str | None = None, task: str | None = None
) -> go.Figure:
    """Score by needle depth and prompt length for one model and task (green: found, red: missed).

    Grey cells were skipped (the length exceeds the model's window). With several candidate
    records, name the model and task: guessing would show the wrong model without saying so.
    """
    candidates = long_context_records(records, models=None if model is None else [model], task=task)
    if not candidates:
        return note_figure("Needle in a haystack", "no record with a long-context matrix matches")
    names = StoreQuery(records).names
    if len(candidates) > 1:
        listed = ", ".join(f"{names[r.model.fingerprint]}/{r.task.name}" for r in candidates[:8])
        raise EvalkitError(
            f"{len(candidates)} long-context records match; choose a model and a task ({listed})"
        )
    record = candidates[0]
    return heatmap_of(record, names[record.model.fingerprint])


def heatmap_of(record: RunRecord, model_name: str) -> go.Figure:
    """The heatmap of one record's matrix (the site calls this once per record)."""
    matrix = record.long_context
    title = f"{model_name} · {record.task.name}"
    if matrix is None or not _well_formed(matrix):
        return note_figure(title, "the record's long-context matrix is missing or malformed")
    if matrix.effective_context_length is not None:
        title += f" (effective context {short_length(matrix.effective_context_length)} tokens)"
    axis = "needle depth" if matrix.row_axis == "depth" else matrix.row_axis
    trace = {
        "type": "heatmap",
        "x": [short_length(length) for length in matrix.lengths],
        "y": row_labels(matrix),
        "z": [list(row) for row in matrix.scores],
        "zmin": 0,
        "zmax": 100,
        "colorscale": _COLORSCALE,
        "colorbar": {"title": {"text": "score"}},
        "texttemplate": "%{z:.0f}",
        "hoverongaps": False,
        "xgap": 1,
        "ygap": 1,
        "hovertemplate": f"length %{{x}}, {axis} %{{y}}: %{{z:.1f}}<extra></extra>",
    }
    layout = base_layout(
        plot_text(title),
        xaxis={"title": {"text": "prompt length (tokens)"}, "type": "category"},
        yaxis={"title": {"text": axis}, "type": "category", "autorange": "reversed"},
        plot_bgcolor="#d9d9d9",  # skipped cells show as grey
        height=min(180 + 28 * len(matrix.depths), 560),
    )
    return new_figure([trace], layout)


def row_labels(matrix: LongContextMatrix) -> list[str]:
    """Depth rows as percentages; rows of a swept parameter as its values; one row as 'all'."""
    if matrix.row_axis == "depth":
        return [f"{depth * 100:.0f}%" for depth in matrix.depths]
    if matrix.row_axis == "all":
        return ["all"] * len(matrix.depths)
    return [f"{value:g}" for value in matrix.depths]


def _well_formed(matrix: LongContextMatrix) -> bool:
    return (
        bool(matrix.lengths)
        and len(matrix.scores) == len(matrix.depths)
        and all(len(row) == len(matrix.lengths) for row in matrix.scores)
    )


def context_scores(
    records: Sequence[RunRecord],
    *,
    task: str | None = None,
    models: Collection[str] | None = None,
    max_models: int = MAX_CONTEXT_LINES,
    names: Mapping[str, str] | None = None,
) -> go.Figure:
    """Mean score over depths at each prompt length, one line per model, with the threshold line."""
    names = names if names is not None else StoreQuery(records).names
    candidates = long_context_records(records, models=models, task=task, names=names)
    chosen = [record for record in candidates if _well_formed(_matrix(record))]
    title = "Score vs context length" + (f": {task}" if task else "")
    if not chosen:
        return note_figure(title, "no record with a long-context matrix matches")
    several_tasks = len({record.task.name for record in chosen}) > 1
    shown = chosen[:max_models]
    traces: list[dict[str, Any]] = []
    for record in shown:
        matrix = _matrix(record)
        label = names[record.model.fingerprint] + (f" · {record.task.name}" if several_tasks else "")
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": plot_text(label),
                "x": list(matrix.lengths),
                "y": [_mean_over_depths(matrix, column) for column in range(len(matrix.lengths))],
                "hovertemplate": "%{x} tokens: %{y:.1f}<extra>%{fullData.name}</extra>",
            }
        )
    thresholds = sorted({m.threshold for r in shown if (m := _matrix(r)).threshold is not None})
    layout = base_layout(
        plot_text(title),
        subtitle=cap_note(len(shown), len(chosen), "records"),
        xaxis={
            **length_ticks([length for record in shown for length in _matrix(record).lengths]),
            "title": {"text": "prompt length (tokens)"},
            "gridcolor": "#e5e5e5",
        },
        yaxis={
            "title": {"text": "mean score over rows (0-100)"},
            "range": [0, 102],
            "gridcolor": "#e5e5e5",
        },
        height=440,
        shapes=[_threshold_line(value) for value in thresholds],
        annotations=[_threshold_label(value) for value in thresholds],
    )
    return new_figure(traces, layout)


def _matrix(record: RunRecord) -> LongContextMatrix:
    assert record.long_context is not None
    return record.long_context


def _mean_over_depths(matrix: LongContextMatrix, column: int) -> float | None:
    values = [row[column] for row in matrix.scores if row[column] is not None]
    return sum(v for v in values if v is not None) / len(values) if values else None


def _threshold_line(value: float) -> dict[str, Any]:
    return horizontal_line(value, "#c44e52")


def _threshold_label(value: float) -> dict[str, Any]:
    return {
        "text": f"threshold {value:g}",
        "xref": "paper",
        "x": 0,
        "xanchor": "left",
        "y": value,
        "yanchor": "bottom",
        "showarrow": False,
        "font": {"size": 11, "color": "#c44e52"},
    }
