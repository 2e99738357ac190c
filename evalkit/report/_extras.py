"""Leaderboard columns beyond accuracy: efficiency, long context and the Pareto flags over them.

Efficiency figures are stored per record (``RunRecord.efficiency``), but a leaderboard row is a
model, so they are summarized over the records the row shows: ``peak_memory_bytes`` takes the
maximum (the memory the model needed to run all of them), rates and per-token latency take the
median (one long-prompt task should not decide a model's speed). Long-context results are
task-specific, so each long-context task gets its own ``<task>/effective_context_length`` column.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

from evalkit.query import efficiency_figure
from evalkit.report.stats import pareto_front
from evalkit.results import RunRecord

PEAK_MEMORY = "peak_memory_bytes"
LATENCY = "time_per_output_token_s"
EFFICIENCY_COLUMNS = (PEAK_MEMORY, "prefill_tokens_per_s", "decode_tokens_per_s", LATENCY)
LONG_CONTEXT_SUFFIX = "/effective_context_length"
PARETO_MEMORY = "pareto_memory"
PARETO_LATENCY = "pareto_latency"


def efficiency_values(records: Iterable[RunRecord]) -> dict[str, float]:
    """The row's summary of each efficiency figure that at least one of its records stores."""
    collected: dict[str, list[float]] = {}
    for record in records:
        for key in EFFICIENCY_COLUMNS:
            value = efficiency_figure(record, key)
            if value is not None:
                collected.setdefault(key, []).append(value)
    return {
        key: max(values) if key == PEAK_MEMORY else float(statistics.median(values))
        for key, values in collected.items()
    }


def long_context_values(records: Iterable[RunRecord]) -> dict[str, float]:
    """``<task>/effective_context_length`` for each record with a long-context matrix (NaN if none found)."""
    values = {}
    for record in records:
        if record.long_context is not None:
            length = record.long_context.effective_context_length
            values[record.task.name + LONG_CONTEXT_SUFFIX] = math.nan if length is None else float(length)
    return values


def pareto_flags(
    means: Sequence[float], memory: Sequence[float], latency: Sequence[float] | None
) -> dict[str, list[bool]]:
    """Front flags of accuracy (mean, higher is better) against memory and against latency."""
    flags = {PARETO_MEMORY: pareto_front(list(zip(means, memory, strict=True)))}
    if latency is not None:
        flags[PARETO_LATENCY] = pareto_front(list(zip(means, latency, strict=True)))
    return flags


def memory_axis(means: Sequence[float], peak_memory: Sequence[float]) -> str:
    """Which memory figure the front uses: peak memory if every ranked row has it, else file size.

    Mixing measured peak memory for some models with file sizes for others would compare unlike
    things, so one figure is used for all rows.
    """
    ranked = [peak for mean, peak in zip(means, peak_memory, strict=True) if not math.isnan(mean)]
    return PEAK_MEMORY if ranked and not any(math.isnan(peak) for peak in ranked) else "bytes_on_disk"
