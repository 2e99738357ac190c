"""The cells and legend of a leaderboard as people read it (terminal table and markdown).

Bounded metrics are percentages with one decimal (more would claim a precision a few hundred
samples do not have) followed by the 95% interval as distances from the value: ``±4.9`` where it is
symmetric to a shown unit, ``-15.9/+32.5`` where it is not (Wilson's interval of 2 of 9; half its
width, ±24.2 around 22.2 %, would claim it reaches below 0 %); chance-normalized scores sit in their
own ``:norm`` column, without an interval, to keep the table narrow (CSV and JSON carry
everything). Efficiency figures are converted to the units people quote: MiB, tokens/s, ms.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from evalkit.report import _extras
from evalkit.report.leaderboard import (
    CI_HIGH_SUFFIX,
    CI_LOW_SUFFIX,
    LONG_CONTEXT_SUFFIX,
    NORM_SUFFIX,
    PARETO_LATENCY,
    PARETO_MEMORY,
    RANK_COLUMN,
    Leaderboard,
    MetricColumn,
)

MISSING = "-"
# efficiency column -> (header, legend text, scale applied to the stored SI value, decimals)
_EFFICIENCY: dict[str, tuple[str, str, float, int]] = {
    _extras.PEAK_MEMORY: (
        "peak MiB",
        "peak memory in MiB, the maximum over the model's records",
        2.0**-20,
        0,
    ),
    "prefill_tokens_per_s": (
        "prefill tok/s",
        "prompt tokens processed per second (median over records)",
        1,
        1,
    ),
    "decode_tokens_per_s": ("decode tok/s", "tokens generated per second (median over records)", 1, 1),
    _extras.LATENCY: ("ms/token", "milliseconds per output token (median over records)", 1000.0, 1),
}
_PARETO_MARKS = {PARETO_MEMORY: "mem", PARETO_LATENCY: "lat"}


def text_columns(board: Leaderboard) -> int:
    """Leading columns that hold names rather than numbers: rank, model (and run, finished)."""
    return (1 if board.ranked else 0) + (3 if board.keep_history else 1)


def cells(board: Leaderboard, show_ci: bool) -> tuple[list[str], list[list[str]]]:
    header = [RANK_COLUMN] if board.ranked else []
    header += ["model", *(["run", "finished"] if board.keep_history else []), "mean"]
    header += ["mean:norm"] if board.normalized else []
    header += ["tasks", *(["pareto"] if board.pareto_columns else [])]
    header += [_EFFICIENCY[key][0] for key in board.efficiency_columns]
    header += [long_context_header(label) for label in board.long_context_columns]
    for column in board.columns:
        header += [column.label, *([column.label + NORM_SUFFIX] if column.normalized else [])]
    rows = []
    for record in board.frame.to_dict("records"):
        row = [_integer(record[RANK_COLUMN])] if board.ranked else []
        row.append(str(record["model"]))
        if board.keep_history:
            row += [str(record["run_id"]), short_time(str(record["finished_at"]))]
        row.append(_number(record["mean"], 100.0, 1))
        row += [_number(record["mean:norm"], 100.0, 1)] if board.normalized else []
        row.append(str(record["tasks_in_mean"]))
        if board.pareto_columns:
            marks = [_PARETO_MARKS[name] for name in board.pareto_columns if bool(record[name])]
            row.append(",".join(marks) or MISSING)
        for key in board.efficiency_columns:
            _, _, scale, digits = _EFFICIENCY[key]
            row.append(_number(record[key], scale, digits))
        row += [_integer(record[label]) for label in board.long_context_columns]
        for column in board.columns:
            row.append(_metric(record, column, show_ci))
            if column.normalized:
                row.append(_number(record[column.label + NORM_SUFFIX], 100.0, 1))
        rows.append(row)
    return header, rows


def legend(board: Leaderboard, show_ci: bool) -> list[tuple[str, str]]:
    """(column, explanation) pairs, in column order."""
    bounded = [column for column in board.columns if column.in_mean]
    apart = any(column.bounded and not column.in_mean for column in board.columns)
    entries = []
    if board.ranked:
        entries.append(
            (
                RANK_COLUMN,
                "order by mean; adjacent models share a rank unless a paired test on their shared samples "
                "(McNemar exact for 0/1 scores, else paired bootstrap) finds p < 0.05, chained over "
                "adjacent pairs (per-task ranks: CSV/JSON columns <task>/<metric>:rank)",
            )
        )
    entries.append(
        (
            "mean",
            f"mean of the model's bounded metrics, in % ({len(bounded)} of {len(board.columns)} columns"
            + ("; long-context scores are kept apart)" if apart else ")"),
        )
    )
    if board.normalized:
        normalized = [column for column in bounded if column.normalized]
        entries.append(
            (
                "mean:norm",
                "mean of the model's chance-normalized scores, in % (only columns with a stored chance "
                f"level: {len(normalized)} of {len(bounded)} bounded columns)",
            )
        )
    entries.append(("tasks", "how many bounded metrics the model has, i.e. what its mean averages"))
    if board.pareto_columns:
        against = [
            f"{_PARETO_MARKS[PARETO_MEMORY]}: {board.memory_axis}",
            *(
                [f"{_PARETO_MARKS[PARETO_LATENCY]}: time per output token"]
                if PARETO_LATENCY in board.pareto_columns
                else []
            ),
        ]
        entries.append(
            (
                "pareto",
                "on the Pareto front of mean accuracy against cost (no other model is at least as good on "
                f"both and better on one); {'; '.join(against)}",
            )
        )
    entries += [(_EFFICIENCY[key][0], _EFFICIENCY[key][1]) for key in board.efficiency_columns]
    entries += [
        (
            long_context_header(label),
            "effective context length in tokens: the longest length scored above the threshold",
        )
        for label in board.long_context_columns
    ]
    for column in board.columns:
        entries.append((column.label, describe(column)))
        if column.normalized:
            entries.append((column.label + NORM_SUFFIX, _describe_normalized(column)))
    if show_ci:
        entries.append(
            (
                "±",
                "the 95% interval around the value: ± the larger distance where the two are within one "
                "shown unit, else -below/+above (as stored: Wilson's for 0/1 scores, else a bootstrap; "
                "Wilson's from the value and n for a percentage that stores none inside 0-100 %)",
            )
        )
    return entries


def describe(column: MetricColumn) -> str:
    unit = "%" if column.bounded else "value"
    direction = "higher is better" if column.higher_is_better else "lower is better"
    counts = column.sample_counts
    n = f"n={counts[0]}" if len(counts) == 1 else f"n={counts[0]}-{counts[-1]} (varies by model)"
    text = f"task {column.task}, primary metric {column.metric}, {unit} ({direction}), {n}"
    if column.task_versions > 1:
        text += f"; models were scored on {column.task_versions} versions of this task, compare with care"
    return text


def short_time(iso: str) -> str:
    """'2025-01-02T10:03:55.123+00:00' -> '2025-01-02 10:03' (UTC as recorded)."""
    return iso.replace("T", " ")[:16]


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return bool(pd.isna(value)) if not isinstance(value, str | bool | int) else False


def _describe_normalized(column: MetricColumn) -> str:
    levels = column.chance_levels
    chance = (
        f"{levels[0] * 100:.1f}%" if len(levels) == 1 else f"{levels[0] * 100:.1f}-{levels[-1] * 100:.1f}%"
    )
    return f"(score - chance) / (1 - chance) in %, chance {chance}: 0 is guessing, 100 is perfect"


def _metric(record: dict[str, Any], column: MetricColumn, show_ci: bool) -> str:
    scale, digits = (100.0, 1) if column.bounded else (1.0, 2)
    text = _number(record[column.label], scale, digits)
    low, high = record[column.label + CI_LOW_SUFFIX], record[column.label + CI_HIGH_SUFFIX]
    if show_ci and text != MISSING and not is_missing(low) and not is_missing(high):
        text += " " + spread(record[column.label], low, high, scale, digits)
    return text


def spread(value: float, low: float, high: float, scale: float, digits: int) -> str:
    """An interval as distances from its value: '±4.9' when the two distances differ by at most one
    shown unit (the larger one is shown, so the text never claims a narrower interval), else
    '-15.9/+32.5'; '' when the value is not finite (no distance to it can be told)."""
    if not math.isfinite(value):
        return ""
    unit = 10.0**-digits
    below, above = round((value - low) * scale, digits), round((high - value) * scale, digits)
    if below >= 0 and above >= 0 and abs(below - above) <= unit * 1.001:
        return "±" + _fixed(max(below, above), digits)
    return f"{_fixed(-below, digits, '+')}/{_fixed(above, digits, '+')}"


def _fixed(value: float, digits: int, sign: str = "") -> str:
    """Fixed-point with ``digits`` decimals; 3 significant digits from a million on (a perplexity
    near overflow would otherwise print 300 digits)."""
    return f"{value:{sign}.3g}" if abs(value) >= 1e6 else f"{value:{sign}.{digits}f}"


def _number(value: Any, scale: float, digits: int) -> str:
    return MISSING if is_missing(value) else _fixed(value * scale, digits)


def _integer(value: Any) -> str:
    return MISSING if is_missing(value) else str(int(value))


def long_context_header(label: str) -> str:
    return label.removesuffix(LONG_CONTEXT_SUFFIX) + "/effective_ctx"
