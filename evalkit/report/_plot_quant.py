"""How much accuracy quantized (or lower-precision) variants lose against their full-precision model.

Variants are models that share ``parameters`` and ``family`` with a reference but differ in
``quantization`` or ``dtype``; the reference is the float32, unquantized one (or, for a model
released only as GGUF, that file dequantized to float32). When both per-sample
logs are in the store and share samples, the interval is the paired one `evalkit compare` reports
(far tighter: the two runs saw the same questions); otherwise it combines the two standard errors,
and the hover text says which.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalkit.backends.base import ModelFacts
from evalkit.errors import DataError
from evalkit.report._plot_data import display_names, latest_ok, primary
from evalkit.report._plot_style import base_layout, legend_for, new_figure, note_figure, plot_text
from evalkit.report.stats import Z95, PairedComparison, compare_paired, paired_scores
from evalkit.results.schema import RunRecord

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from evalkit.results.store import ResultsStore

REFERENCE_DTYPE = "float32"


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


def variant_groups(records: Sequence[RunRecord]) -> dict[str, list[str]]:
    """Reference fingerprint -> its variants' fingerprints (sorted), for groups that have both."""
    facts: dict[str, ModelFacts] = {}
    for record in records:
        facts[record.model.fingerprint] = record.model
    # Keyed by size and family, not architecture: backends name one architecture differently
    # (transformers "LlamaForCausalLM", llama.cpp "llama"), and a variant must find its reference.
    by_shape: dict[tuple[int, str], list[str]] = defaultdict(list)
    for fingerprint in sorted(facts):
        model = facts[fingerprint]
        by_shape[(model.parameters, model.family)].append(fingerprint)
    groups: dict[str, list[str]] = {}
    for members in by_shape.values():
        ranked = sorted((rank, fp) for fp in members if (rank := _reference_rank(facts[fp])) is not None)
        if not ranked:
            continue
        reference = ranked[0][1]  # best precision; members are sorted, so ties resolve stably
        precision = (facts[reference].dtype, facts[reference].quantization)
        variants = [fp for fp in members if (facts[fp].dtype, facts[fp].quantization) != precision]
        if variants:
            groups[reference] = variants
    return groups


def _reference_rank(model: ModelFacts) -> int | None:
    """How good a reference the model is (lower is better); None when it is itself a variant.

    0: float32 weights as published. 1: a GGUF file dequantized to float32 with nothing more done
    to it — the closest to full precision a quantized-only release offers (so the native llama.cpp
    run and in-memory re-quantizations of the same file are measured against it).
    """
    if model.dtype != REFERENCE_DTYPE:
        return None
    if model.quantization is None:
        return 0
    if "(dequantized" in model.quantization and "+" not in model.quantization:
        return 1
    return None


def variant_deltas(records: Sequence[RunRecord], store: ResultsStore | None = None) -> list[VariantDelta]:
    """Per variant and shared task, the change of the primary metric against the reference."""
    latest = latest_ok(records)
    deltas: list[VariantDelta] = []
    for reference, variants in sorted(variant_groups(records).items()):
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
    mine, theirs = primary(variant), primary(reference)
    metric = variant.task.primary_metric
    if mine is None or theirs is None or metric != reference.task.primary_metric:
        return None
    if not mine.bounded:  # accuracy changes only; speed and memory have their own columns
        return None
    base = {
        "variant": variant.model.fingerprint,
        "reference": reference.model.fingerprint,
        "task": variant.task.name,
    }
    paired = _paired(variant, reference, store, metric) if store is not None else None
    if paired is not None:
        low, high = paired.ci95
        return VariantDelta(**base, delta=paired.difference, low=low, high=high, n=paired.n, paired=True)
    delta = mine.value - theirs.value
    bounds: tuple[float | None, float | None] = (None, None)
    if mine.stderr is not None and theirs.stderr is not None:
        half = Z95 * math.hypot(mine.stderr, theirs.stderr)
        bounds = (delta - half, delta + half)
    return VariantDelta(
        **base, delta=delta, low=bounds[0], high=bounds[1], n=min(mine.n, theirs.n), paired=False
    )


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
    names = names if names is not None else display_names(records)
    deltas = variant_deltas(records, store)
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
    bounded = _bounded_tasks(records)
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


def _bounded_tasks(records: Sequence[RunRecord]) -> set[str]:
    return {r.task.name for r in latest_ok(records).values() if (v := primary(r)) is not None and v.bounded}
