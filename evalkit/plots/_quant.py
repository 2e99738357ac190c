"""The quantization plot: each variant's accuracy change against its full-precision reference.

The numbers are the leaderboard's variants table (:func:`evalkit.report.variant_deltas`): paired
intervals where both per-sample logs exist, else the two records' intervals combined (Newcombe);
the hover text says which.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from evalkit.plots._style import base_layout, legend_for, new_figure, note_figure, plot_text
from evalkit.query import StoreQuery, primary_metric
from evalkit.report import variant_deltas
from evalkit.results import ResultsStore, RunRecord

if TYPE_CHECKING:
    import plotly.graph_objects as go


def quantization_deltas(
    records: Sequence[RunRecord],
    store: ResultsStore | None = None,
    *,
    models: Collection[str] | None = None,
    names: Mapping[str, str] | None = None,
) -> go.Figure:
    """Bars of variant minus reference per task (percentage points for accuracies), with 95% CIs.

    ``models`` keeps the groups that contain one of the named models (name or fingerprint).
    """
    query = StoreQuery(records)
    names = names if names is not None else query.names
    deltas = variant_deltas(query, store)
    if models is not None:
        wanted = set(models)
        spec_names = {record.model.fingerprint: record.model.name for record in records}

        def aliases(fingerprint: str) -> set[str]:
            return {fingerprint, names[fingerprint], spec_names[fingerprint]}

        deltas = [d for d in deltas if (aliases(d.variant) | aliases(d.reference)) & wanted]
    title = "Accuracy change of variants against their full-precision reference"
    if not deltas:
        return note_figure(
            title,
            "no quantized or lower-precision variant with a float32 unquantized reference of the same "
            "parameters and architecture",
        )
    bounded = _bounded_tasks(query)
    traces: list[dict[str, Any]] = []
    for variant in sorted({d.variant for d in deltas}, key=lambda fp: names[fp]):
        mine = [d for d in deltas if d.variant == variant]
        scale = [100.0 if d.task in bounded else 1.0 for d in mine]
        traces.append(
            {
                "type": "bar",
                "name": plot_text(f"{names[variant]} vs {names[mine[0].reference]}"),
                "x": [plot_text(d.task) for d in mine],
                "y": [d.delta * s for d, s in zip(mine, scale, strict=True)],
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": [
                        None if d.high is None else (d.high - d.delta) * s
                        for d, s in zip(mine, scale, strict=True)
                    ],
                    "arrayminus": [
                        None if d.low is None else (d.delta - d.low) * s
                        for d, s in zip(mine, scale, strict=True)
                    ],
                },
                "customdata": [f"{'paired' if d.paired else 'unpaired'} 95% CI, n={d.n}" for d in mine],
                "hovertemplate": "%{x}: %{y:+.1f}<br>%{customdata}<extra>%{fullData.name}</extra>",
            }
        )
    layout = base_layout(
        plot_text(title),
        barmode="group",
        yaxis={
            "title": {"text": "change (points for accuracies)"},
            "zeroline": True,
            "zerolinecolor": "#333333",
            "gridcolor": "#e5e5e5",
        },
        height=420,
        legend=legend_for(len(traces)),
    )
    return new_figure(traces, layout)


def _bounded_tasks(query: StoreQuery) -> set[str]:
    return {
        r.task.name
        for r in query.latest_ok().values()
        if (value := primary_metric(r)) is not None and value.bounded
    }
