"""The plots `evalkit plot` exports by name, each built from stored records by one function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evalkit.errors import UnknownNameError
from evalkit.plots._accuracy import accuracy_bars
from evalkit.plots._context import context_scores, needle_heatmap
from evalkit.plots._efficiency import accuracy_vs_latency, accuracy_vs_memory, efficiency_curves
from evalkit.plots._quant import quantization_deltas
from evalkit.results import ResultsStore, RunRecord

if TYPE_CHECKING:
    import plotly.graph_objects as go


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
        raise UnknownNameError("plot", name, PLOTS)
    return kind.build(records, store, model, task)
