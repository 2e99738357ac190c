"""Plots of stored run records: plotly figures, each exportable as one standalone HTML file.

Every function takes records (and the store, where per-sample logs sharpen an interval) and
returns a ``plotly.graph_objects.Figure``; none reads the clock or random state, and traces are
built in a fixed order, so the same records give byte-identical output. Which record a plot shows
is decided by :mod:`evalkit.query` (the rule the leaderboard, the site and the gate share); the
accuracy-vs-cost plots draw the leaderboard's own rows and Pareto flags. Names and task labels
are untrusted text and are entity-escaped before plotly.js sees them (it renders some HTML).
When a plot has nothing to show (no latency measured, no long-context task...) the figure
carries a one-line note instead of data; :func:`figure_note` returns it.

Importing this package does not import plotly; building a figure does.
"""

from evalkit.plots._accuracy import accuracy_bars
from evalkit.plots._context import context_scores, heatmap_of, long_context_records, needle_heatmap
from evalkit.plots._efficiency import accuracy_vs_latency, accuracy_vs_memory, efficiency_curves
from evalkit.plots._export import escape_for_script, figure_json, standalone_html, write_standalone_html
from evalkit.plots._quant import quantization_deltas
from evalkit.plots._registry import PLOTS, PlotKind, make_plot
from evalkit.plots._style import figure_note
from evalkit.plots._tradeoff import ModelPoint, tradeoff_points

__all__ = [
    "PLOTS",
    "ModelPoint",
    "PlotKind",
    "accuracy_bars",
    "accuracy_vs_latency",
    "accuracy_vs_memory",
    "context_scores",
    "efficiency_curves",
    "escape_for_script",
    "figure_json",
    "figure_note",
    "heatmap_of",
    "long_context_records",
    "make_plot",
    "needle_heatmap",
    "quantization_deltas",
    "standalone_html",
    "tradeoff_points",
    "write_standalone_html",
]
