"""One pandas-free query layer over the run-record store: which record counts, and how to read it.

The rule every view shares (leaderboard, plots, site, gate, compare): per (model fingerprint,
task name), the latest ``ok`` record by ``finished_at``, ties going to the later store line
(:func:`choose_latest`). Display names add a fingerprint prefix when two models share a name.
Efficiency figures are read only through :func:`efficiency_figure` and the curve accessors, with
one policy: a finite positive float, or None.

This package imports only :mod:`evalkit.results`, :mod:`evalkit.errors` and the standard library.
"""

from evalkit.intervals import Z95
from evalkit.query._choice import Choice, choose_latest, duplicate_note, record_key
from evalkit.query._order import MIN_SUFFIX, display_names, finished_time, in_time_order, latest_per_key
from evalkit.query._store_query import Evidence, StoreQuery, load_query
from evalkit.query._values import (
    DecodeCost,
    PrefillCost,
    decode_curve,
    efficiency_figure,
    efficiency_problem,
    interval,
    prefill_curve,
    primary_metric,
)
from evalkit.query._variants import REFERENCE_DTYPE, reference_rank, variant_groups

__all__ = [
    "MIN_SUFFIX",
    "REFERENCE_DTYPE",
    "Z95",
    "Choice",
    "DecodeCost",
    "Evidence",
    "PrefillCost",
    "StoreQuery",
    "choose_latest",
    "decode_curve",
    "display_names",
    "duplicate_note",
    "efficiency_figure",
    "efficiency_problem",
    "finished_time",
    "in_time_order",
    "interval",
    "latest_per_key",
    "load_query",
    "prefill_curve",
    "primary_metric",
    "record_key",
    "reference_rank",
    "variant_groups",
]
