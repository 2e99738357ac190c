"""Text forms of a leaderboard: an aligned terminal table, GitHub markdown, CSV and JSON.

Table and markdown are for people: bounded metrics as percentages with one decimal (more
would claim a precision a few hundred samples do not have), a legend saying what each
column is, and the failed runs listed under it. CSV and JSON are for programs: full
precision, stderr and n always present, nothing rounded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Literal

import pandas as pd

from evalkit.report.leaderboard import STDERR_SUFFIX, Leaderboard, MetricColumn

OutputFormat = Literal["table", "markdown", "csv", "json"]
FORMATS: tuple[OutputFormat, ...] = ("table", "markdown", "csv", "json")
_MISSING = "-"
_MAX_ERROR_CHARS = 160


def render_leaderboard(board: Leaderboard, output_format: OutputFormat, *, show_stderr: bool = True) -> str:
    """The leaderboard as text ending in a newline; ``show_stderr`` affects table and markdown only."""
    if output_format == "table":
        return _render_table(board, show_stderr)
    if output_format == "markdown":
        return _render_markdown(board, show_stderr)
    if output_format == "csv":
        text: str = board.frame.to_csv(index=False, lineterminator="\n")
        return text
    if output_format == "json":
        rows = [_json_row(row) for row in board.frame.to_dict("records")]
        return json.dumps(rows, indent=2, allow_nan=False) + "\n"
    raise ValueError(f"unknown leaderboard format {output_format!r}")


def side_notes(board: Leaderboard) -> list[str]:
    """Notes and failed runs as one-liners, for the formats whose output is only rows (CSV, JSON)."""
    return [f"note: {note}" for note in board.notes] + [f"failed run: {line}" for line in _failures(board)]


# -- people --------------------------------------------------------------------------------------


def _render_table(board: Leaderboard, show_stderr: bool) -> str:
    lines: list[str] = []
    if board.frame.empty:
        lines.append("no successful run records to rank")
    else:
        header, rows = _cells(board, show_stderr)
        widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
        rule = ["-" * width for width in widths]
        text_columns = _text_columns(board)
        lines += [_aligned(cells, widths, text_columns) for cells in (header, rule, *rows)]
        lines += ["", *_legend(board, show_stderr, bullet="")]
    lines += _appendix(board, bullet="  - ")
    return "\n".join(lines) + "\n"


def _aligned(cells: Sequence[str], widths: Sequence[int], text_columns: int) -> str:
    """Names read left to right; numbers line up on the right."""
    parts = [
        cell.ljust(width) if index < text_columns else cell.rjust(width)
        for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
    ]
    return "  ".join(parts).rstrip()


def _render_markdown(board: Leaderboard, show_stderr: bool) -> str:
    lines: list[str] = []
    if board.frame.empty:
        lines.append("No successful run records to rank.")
    else:
        header, rows = _cells(board, show_stderr)
        align = [":---" if index < _text_columns(board) else "---:" for index in range(len(header))]
        lines += [_markdown_row(header), _markdown_row(align), *(_markdown_row(row) for row in rows)]
        lines += ["", *_legend(board, show_stderr, bullet="- ")]
    lines += _appendix(board, bullet="- ")
    return "\n".join(lines) + "\n"


def _text_columns(board: Leaderboard) -> int:
    """Leading columns that hold names rather than numbers: model (and run, finished)."""
    return 3 if board.keep_history else 1


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _cells(board: Leaderboard, show_stderr: bool) -> tuple[list[str], list[list[str]]]:
    header = ["model", *(["run", "finished"] if board.keep_history else []), "mean", "tasks"]
    header += board.metric_labels
    rows = []
    for record in board.frame.to_dict("records"):
        row = [str(record["model"])]
        if board.keep_history:
            row += [str(record["run_id"]), _short_time(str(record["finished_at"]))]
        row += [_format_value(record["mean"], None, bounded=True), str(record["tasks_in_mean"])]
        for column in board.columns:
            stderr = record[column.label + STDERR_SUFFIX] if show_stderr else None
            row.append(_format_value(record[column.label], stderr, bounded=column.bounded))
        rows.append(row)
    return header, rows


def _format_value(value: Any, stderr: Any, *, bounded: bool) -> str:
    if _is_missing(value):
        return _MISSING
    scale, digits = (100.0, 1) if bounded else (1.0, 2)
    text = f"{value * scale:.{digits}f}"
    if not _is_missing(stderr):
        text += f" ±{stderr * scale:.{digits}f}"
    return text


def _legend(board: Leaderboard, show_stderr: bool, bullet: str) -> list[str]:
    bounded = [column for column in board.columns if column.bounded]
    entries = [
        (
            "mean",
            f"mean of the model's bounded metrics, in % ({len(bounded)} of {len(board.columns)} columns)",
        ),
        ("tasks", "how many bounded metrics the model has, i.e. what its mean averages"),
    ]
    entries += [(column.label, _describe(column)) for column in board.columns]
    if show_stderr:
        entries.append(("±", "one standard error of the mean over samples"))
    if bullet:
        return [f"{bullet}**{name}**: {text}" for name, text in entries]
    width = max(len(name) for name, _ in entries)
    return [f"{name.ljust(width)}  {text}" for name, text in entries]


def _describe(column: MetricColumn) -> str:
    unit = "%" if column.bounded else "value"
    direction = "higher is better" if column.higher_is_better else "lower is better"
    counts = column.sample_counts
    n = f"n={counts[0]}" if len(counts) == 1 else f"n={counts[0]}-{counts[-1]} (varies by model)"
    text = f"task {column.task}, primary metric {column.metric}, {unit} ({direction}), {n}"
    if column.task_versions > 1:
        text += f"; models were scored on {column.task_versions} versions of this task, compare with care"
    return text


def _appendix(board: Leaderboard, bullet: str) -> list[str]:
    lines: list[str] = []
    if board.notes:
        lines += ["", "Notes:", *(f"{bullet}{note}" for note in board.notes)]
    failures = _failures(board)
    if failures:
        lines += ["", "Failed runs (not in the table):", *(f"{bullet}{line}" for line in failures)]
    return lines


def _failures(board: Leaderboard) -> list[str]:
    lines = []
    for error in board.errors.to_dict("records"):
        message = str(error["error"]).strip().splitlines()[0] if str(error["error"]).strip() else "?"
        if len(message) > _MAX_ERROR_CHARS:
            message = message[: _MAX_ERROR_CHARS - 3] + "..."
        lines.append(
            f"{error['model']} / {error['task']} (run {error['run_id']}, "
            f"{_short_time(str(error['finished_at']))}): {message}"
        )
    return lines


def _short_time(iso: str) -> str:
    """'2025-01-02T10:03:55.123+00:00' -> '2025-01-02 10:03' (UTC as recorded)."""
    return iso.replace("T", " ")[:16]


# -- programs ------------------------------------------------------------------------------------


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {str(key): _json_value(value) for key, value in row.items()}


def _json_value(value: Any) -> Any:
    """Plain Python values; NaN and pandas' NA become null (JSON has no NaN)."""
    if _is_missing(value):
        return None
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return bool(pd.isna(value)) if not isinstance(value, str | bool | int) else False
