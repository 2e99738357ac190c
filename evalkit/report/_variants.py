"""Each variant's accuracy change against its reference, and its text form: a quantized variant
against its full-precision reference, a fine-tuned one (an adapter) against its base.

Which model is a variant of which reference is store logic (:func:`evalkit.query.variant_groups`);
the change and its interval are statistics, here. When both per-sample logs are in the store and
share samples, the interval is the paired one `evalkit compare` reports (far tighter: the two runs
saw the same questions); otherwise it combines the two records' own intervals (Newcombe's method).
The leaderboard's variants table and the quantization plot are both built on :func:`variant_deltas`,
so they agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.errors import DataError
from evalkit.query import StoreQuery, interval, primary_metric, variant_groups
from evalkit.report.stats import PairedComparison, compare_paired, paired_scores
from evalkit.results import MetricValue, ResultsStore, RunRecord


@dataclass(frozen=True)
class VariantDelta:
    variant: str  # fingerprint
    reference: str  # fingerprint
    task: str
    delta: float  # variant minus reference, on the metric's own scale
    low: float | None
    high: float | None
    n: int
    paired: bool
    fine_tuned: bool = False  # an adapter on its base, rather than a quantized/lower-precision variant


def variant_deltas(
    records: Sequence[RunRecord] | StoreQuery, store: ResultsStore | None = None
) -> list[VariantDelta]:
    """Per variant and shared task, the change of the primary metric against the reference."""
    query = records if isinstance(records, StoreQuery) else StoreQuery(records)
    latest = query.latest_ok()
    deltas: list[VariantDelta] = []
    for reference, variants in sorted(variant_groups(query.records).items()):
        for variant in variants:
            tasks = sorted(
                {t for fp, t in latest if fp == variant} & {t for fp, t in latest if fp == reference}
            )
            for task in tasks:
                delta = _delta(latest[(variant, task)], latest[(reference, task)], store)
                if delta is not None:
                    deltas.append(delta)
    return deltas


def _delta(variant: RunRecord, reference: RunRecord, store: ResultsStore | None) -> VariantDelta | None:
    mine, theirs = primary_metric(variant), primary_metric(reference)
    metric = variant.task.primary_metric
    if mine is None or theirs is None or metric != reference.task.primary_metric:
        return None
    if not mine.bounded:  # accuracy changes only; speed and memory have their own columns
        return None
    base: dict[str, Any] = {
        "fine_tuned": variant.model.adapter is not None,
        "variant": variant.model.fingerprint,
        "reference": reference.model.fingerprint,
        "task": variant.task.name,
    }
    paired = _paired(variant, reference, store, metric) if store is not None else None
    if paired is not None:
        low, high = paired.ci95
        return VariantDelta(**base, delta=paired.difference, low=low, high=high, n=paired.n, paired=True)
    delta = mine.value - theirs.value
    unpaired_low, unpaired_high = _unpaired_interval(mine, theirs)
    return VariantDelta(
        **base, delta=delta, low=unpaired_low, high=unpaired_high, n=min(mine.n, theirs.n), paired=False
    )


def _unpaired_interval(mine: MetricValue, theirs: MetricValue) -> tuple[float | None, float | None]:
    """The 95% interval of mine - theirs from each side's own interval (Newcombe's 1998 method 10 for
    independent proportions: it combines two Wilson intervals, stays inside [-1, 1] and does not
    collapse at 0 % or 100 % as value ± 1.96 × the combined standard errors did)."""
    mine_bounds, their_bounds = interval(mine), interval(theirs)
    if mine_bounds is None or their_bounds is None:
        return None, None
    (mine_low, mine_high), (their_low, their_high) = mine_bounds, their_bounds
    delta = mine.value - theirs.value
    below = math.hypot(mine.value - mine_low, their_high - theirs.value)
    above = math.hypot(mine_high - mine.value, theirs.value - their_low)
    return max(-1.0, delta - below), min(1.0, delta + above)


def _paired(
    variant: RunRecord, reference: RunRecord, store: ResultsStore, metric: str
) -> PairedComparison | None:
    """The test `evalkit compare` runs (McNemar/Newcombe for 0/1 scores, else a paired bootstrap),
    or None when a per-sample log is missing or the two runs share no sample."""
    try:
        _, reference_scores, variant_scores = paired_scores(store, reference, store, variant, metric)
    except DataError:
        return None
    return compare_paired(reference_scores, variant_scores, metric)  # difference: variant - reference


def _kinds(deltas: Sequence[VariantDelta]) -> str:
    fine_tuned = {item.fine_tuned for item in deltas}
    if fine_tuned == {True}:
        return "Fine-tuned variants (adapters)"
    return "Quantized and fine-tuned variants" if fine_tuned == {True, False} else "Quantized variants"


def render_variant_deltas(deltas: Sequence[VariantDelta], names: Mapping[str, str], markdown: bool) -> str:
    """A table of variant − reference per task, in points for accuracies; '' when there are none."""
    if not deltas:
        return ""
    header = ["variant", "reference", "task", "change", "95% CI", "n", "interval"]
    rows = [header]
    for item in deltas:
        low = "?" if item.low is None else f"{100 * item.low:+.1f}"
        high = "?" if item.high is None else f"{100 * item.high:+.1f}"
        rows.append(
            [
                names.get(item.variant, item.variant[:12]),
                names.get(item.reference, item.reference[:12]),
                item.task,
                f"{100 * item.delta:+.1f}",
                f"[{low}, {high}]",
                str(item.n),
                "paired" if item.paired else "unpaired",
            ]
        )
    title = f"{_kinds(deltas)} against their reference (primary metric, points; paired = same samples)"
    if markdown:
        lines = ["", f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        return "\n".join(lines) + "\n"
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["", title]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines) + "\n"
