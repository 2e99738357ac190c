"""Reports over stored run records: the leaderboard view, its statistics and its text forms.

Importing this package imports pandas; the CLI imports it only when a report command runs.
:mod:`evalkit.report.stats` holds the paired tests, chance normalization and Pareto fronts.
Which record counts is decided by :mod:`evalkit.query`, the layer every view shares.
"""

from evalkit.report._cells import legend, spread
from evalkit.report._compare import (
    ModelComparison,
    Selection,
    TaskComparison,
    compare_models,
    select_records,
)
from evalkit.report._compare_text import COMPARE_FORMATS, CompareFormat, render_comparison
from evalkit.report._render import FORMATS, OutputFormat, render_leaderboard, side_notes
from evalkit.report._variants import VariantDelta, render_variant_deltas, variant_deltas
from evalkit.report.leaderboard import (
    LATENCY,
    PARETO_LATENCY,
    PARETO_MEMORY,
    PEAK_MEMORY,
    Leaderboard,
    MetricColumn,
    build_leaderboard,
    error_rows,
    leaderboard_frame,
)
from evalkit.report.stats import (
    PairedComparison,
    chance_normalized,
    compare_paired,
    paired_scores,
    pareto_front,
)

__all__ = [
    "COMPARE_FORMATS",
    "FORMATS",
    "LATENCY",
    "PARETO_LATENCY",
    "PARETO_MEMORY",
    "PEAK_MEMORY",
    "CompareFormat",
    "Leaderboard",
    "MetricColumn",
    "ModelComparison",
    "OutputFormat",
    "PairedComparison",
    "Selection",
    "TaskComparison",
    "VariantDelta",
    "build_leaderboard",
    "chance_normalized",
    "compare_models",
    "compare_paired",
    "error_rows",
    "leaderboard_frame",
    "legend",
    "paired_scores",
    "pareto_front",
    "render_comparison",
    "render_leaderboard",
    "render_variant_deltas",
    "select_records",
    "side_notes",
    "spread",
    "variant_deltas",
]
