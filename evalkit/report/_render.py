"""Text forms of a leaderboard: an aligned terminal table, GitHub markdown, CSV and JSON.

Table and markdown are for people (cells and legend in :mod:`evalkit.report._cells`), with the
notes and the failed runs listed under them. CSV and JSON are for programs: the whole frame at
full precision (stderr, n, interval bounds, normalized scores, ranks), nothing rounded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Literal

from evalkit.report._cells import cells, is_missing, legend, short_time, text_columns
from evalkit.report._compact import TERMINAL_WIDTH, render_compact, wrap_lines
from evalkit.report.leaderboard import Leaderboard

OutputFormat = Literal["table", "markdown", "csv", "json"]
FORMATS: tuple[OutputFormat, ...] = ("table", "markdown", "csv", "json")
_MAX_ERROR_CHARS = 160


def render_leaderboard(
    board: Leaderboard, output_format: OutputFormat, *, show_ci: bool = True, wide: bool = False
) -> str:
    """The leaderboard as text ending in a newline; ``show_ci`` affects table and markdown only.

    The table fits a 100-column terminal (sections per axis, see `_compact`) unless ``wide``: then
    it is one row per model and a column per figure, as markdown is.
    """
    if output_format == "table":
        return _render_table(board, show_ci) if wide else _render_compact(board, show_ci)
    if output_format == "markdown":
        return _render_markdown(board, show_ci)
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


def _render_table(board: Leaderboard, show_ci: bool) -> str:
    lines: list[str] = []
    if board.frame.empty:
        lines.append("no successful run records to rank")
    else:
        header, rows = cells(board, show_ci)
        widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
        rule = ["-" * width for width in widths]
        lines += [_aligned(row, widths, text_columns(board)) for row in (header, rule, *rows)]
        entries = legend(board, show_ci)
        width = max(len(name) for name, _ in entries)
        lines += ["", *(f"{name.ljust(width)}  {text}" for name, text in entries)]
    lines += _appendix(board, bullet="  - ")
    return "\n".join(lines) + "\n"


def _render_compact(board: Leaderboard, show_ci: bool) -> str:
    if board.frame.empty:
        return "\n".join(["no successful run records to rank", *_appendix(board, bullet="  - ")]) + "\n"
    appendix = wrap_lines(_appendix(board, bullet="  - "), TERMINAL_WIDTH)
    return render_compact(board, show_ci) + "".join(line + "\n" for line in appendix)


def _aligned(row: Sequence[str], widths: Sequence[int], leading_text: int) -> str:
    """Names read left to right; numbers line up on the right."""
    parts = [
        cell.ljust(width) if index < leading_text else cell.rjust(width)
        for index, (cell, width) in enumerate(zip(row, widths, strict=True))
    ]
    return "  ".join(parts).rstrip()


def _render_markdown(board: Leaderboard, show_ci: bool) -> str:
    lines: list[str] = []
    if board.frame.empty:
        lines.append("No successful run records to rank.")
    else:
        header, rows = cells(board, show_ci)
        align = [":---" if index < text_columns(board) else "---:" for index in range(len(header))]
        lines += [_markdown_row(header), _markdown_row(align), *(_markdown_row(row) for row in rows)]
        lines += ["", *(f"- **{name}**: {text}" for name, text in legend(board, show_ci))]
    lines += _appendix(board, bullet="- ")
    return "\n".join(lines) + "\n"


def _markdown_row(row: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"


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
            f"{short_time(str(error['finished_at']))}): {message}"
        )
    return lines


# -- programs ------------------------------------------------------------------------------------


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {str(key): _json_value(value) for key, value in row.items()}


def _json_value(value: Any) -> Any:
    """Plain Python values; NaN and pandas' NA become null (a gap: JSON has no NaN).

    An infinite value (a perplexity that overflowed) is a result, not a gap: it is written as the
    string "Infinity" / "-Infinity", as run records store it (`MetricValue`).
    """
    if is_missing(value):
        return None
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value
