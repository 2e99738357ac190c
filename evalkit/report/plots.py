"""Plots of stored run records: plotly figures, each exportable as one standalone HTML file.

Every function takes records (and the store, where per-sample logs sharpen an interval) and
returns a ``plotly.graph_objects.Figure``; none reads the clock or random state, and traces are
built in a fixed order, so the same records give byte-identical output. Names and task labels
are untrusted text and are entity-escaped before plotly.js sees them (it renders some HTML).
When a plot has nothing to show (no latency measured, no long-context task...) the figure
carries a one-line note instead of data; :func:`figure_note` returns it.

Importing this module does not import plotly; building a figure does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evalkit.report._plot_accuracy import accuracy_bars
from evalkit.report._plot_context import context_scores, heatmap_of, long_context_records, needle_heatmap
from evalkit.report._plot_efficiency import (
    accuracy_vs_latency,
    accuracy_vs_memory,
    decode_curve,
    efficiency_curves,
)
from evalkit.report._plot_quant import VariantDelta, quantization_deltas, variant_deltas, variant_groups
from evalkit.report._plot_style import figure_note
from evalkit.results.schema import RunRecord

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from evalkit.results.store import ResultsStore

__all__ = [
    "PLOTS",
    "PlotKind",
    "VariantDelta",
    "accuracy_bars",
    "accuracy_vs_latency",
    "accuracy_vs_memory",
    "context_scores",
    "decode_curve",
    "efficiency_curves",
    "figure_json",
    "figure_note",
    "heatmap_of",
    "long_context_records",
    "make_plot",
    "needle_heatmap",
    "quantization_deltas",
    "standalone_html",
    "variant_deltas",
    "variant_groups",
    "write_standalone_html",
]


@dataclass(frozen=True)
class PlotKind:
    """A plot the `evalkit plot` command can export by name."""

    summary: str
    build: Callable[[Sequence[RunRecord], ResultsStore | None, str | None, str | None], go.Figure]


def _models(model: str | None) -> list[str] | None:
    return None if model is None else [model]


def _tasks(task: str | None) -> list[str] | None:
    return None if task is None else [task]


PLOTS: dict[str, PlotKind] = {
    "accuracy": PlotKind(
        "primary metric per task with 95% CIs, models side by side (--model/--task narrow it)",
        lambda records, _store, model, task: accuracy_bars(
            records, tasks=_tasks(task), models=_models(model)
        ),
    ),
    "memory": PlotKind(
        "mean accuracy vs peak memory (else size on disk), with the Pareto front",
        lambda records, _store, _model, _task: accuracy_vs_memory(records),
    ),
    "latency": PlotKind(
        "mean accuracy vs time per output token, with the Pareto front",
        lambda records, _store, _model, _task: accuracy_vs_latency(records),
    ),
    "needle": PlotKind(
        "needle-in-a-haystack heatmap, depth x length, of one model and task",
        lambda records, _store, model, task: needle_heatmap(records, model=model, task=task),
    ),
    "context": PlotKind(
        "long-context score vs prompt length, with the threshold line",
        lambda records, _store, model, task: context_scores(records, task=task, models=_models(model)),
    ),
    "efficiency": PlotKind(
        "time per token and peak memory vs context length, per model (line style: family)",
        lambda records, _store, model, _task: efficiency_curves(records, models=_models(model)),
    ),
    "quantization": PlotKind(
        "accuracy change of quantized variants against their float32 reference, with CIs",
        lambda records, store, model, _task: quantization_deltas(records, store, models=_models(model)),
    ),
}


def make_plot(
    name: str,
    records: Sequence[RunRecord],
    *,
    store: ResultsStore | None = None,
    model: str | None = None,
    task: str | None = None,
) -> go.Figure:
    """The plot called ``name`` (a key of :data:`PLOTS`)."""
    kind = PLOTS.get(name)
    if kind is None:
        from evalkit.errors import UnknownNameError

        raise UnknownNameError("plot", name, PLOTS)
    return kind.build(records, store, model, task)


def escape_for_script(text: str) -> str:
    """JSON text made safe inside ``<script>``: no ``</script>``, no ``<!--``, no line separators."""
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def figure_json(figure: go.Figure) -> str:
    """The figure as JSON that is safe inside a ``<script>`` element.

    ``<``, ``>``, ``&`` and the JavaScript line separators U+2028/2029 are written as \\u escapes,
    so no string in the figure (a model name, a task label) can close the element.
    """
    import plotly.io as pio

    return escape_for_script(pio.to_json(figure, validate=False, pretty=False, engine="json"))


def standalone_html(figure: go.Figure, div_id: str) -> str:
    """One HTML document with plotly.js inlined: opens offline, from anywhere, with no server.

    ``div_id`` is explicit because plotly otherwise draws a random one, and exports of the same
    records must be byte-identical.
    """
    html: str = figure.to_html(
        include_plotlyjs=True,
        full_html=True,
        div_id=div_id,
        validate=False,
        config={"displaylogo": False, "responsive": True},
    )
    return html


def write_standalone_html(figure: go.Figure, path: Path, div_id: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(standalone_html(figure, div_id), encoding="utf-8")
