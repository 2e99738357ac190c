"""The terminal leaderboard that fits a terminal: one section per axis, each at most `width` wide.

The wide table (`--wide`) is one row per model and a column per task metric, normalized score and
effective length: 47 columns on the reference run, unreadable in a terminal. Here the same cells
are grouped by axis — the overview (rank, mean, Pareto flags), accuracy, long context, efficiency
— and each section is laid out the narrow way round: tasks as rows when there are fewer models
than tasks, models as rows otherwise. A section still wider than `width` is cut into column
blocks that repeat the row labels. Legends and notes are wrapped to `width`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from evalkit.report._cells import MISSING, cells, long_context_header
from evalkit.report.leaderboard import RANK_COLUMN, Leaderboard

TERMINAL_WIDTH = 100
_GAP = "  "
_OVERVIEW = (RANK_COLUMN, "model", "mean", "mean:norm", "tasks", "pareto")
_EFFICIENCY_HEADERS = ("peak MiB", "prefill tok/s", "decode tok/s", "ms/token")
_EFFICIENCY_METRICS = frozenset(
    {
        "decode_tokens_per_s",
        "prefill_tokens_per_s",
        "time_per_output_token_s",
        "time_to_first_token_s",
        "peak_memory_bytes",
    }
)


@dataclass(frozen=True)
class Section:
    title: str
    explanation: str
    corner: str  # the label of the row-label column when tasks are rows
    columns: list[str]  # column headers, in order
    values: dict[str, list[str]]  # column header -> one cell per model


def render_compact(board: Leaderboard, show_ci: bool, width: int = TERMINAL_WIDTH) -> str:
    """Sections per axis, every line at most `width` characters (long names are the exception)."""
    header, rows = cells(board, show_ci)
    by_column = {name: [row[index] for row in rows] for index, name in enumerate(header)}
    models = by_column["model"]
    lines: list[str] = []
    for section in _sections(board, by_column, show_ci):
        if not section.columns:
            continue
        lines += ["", *_wrapped(f"{section.title}: {section.explanation}", width)]
        tasks_as_rows = section.title != "Overview" and len(models) < len(section.columns)
        if tasks_as_rows:
            table = [[section.corner, *models]]
            table += [[column, *section.values[column]] for column in section.columns]
        else:
            table = [["model", *section.columns]]
            table += [
                [model, *(section.values[c][i] for c in section.columns)] for i, model in enumerate(models)
            ]
        lines += _blocks(table, width)
    more = "every column in one table: --wide; every figure: --format csv or json"
    lines += ["", *_wrapped(more, width)]
    return "\n".join(lines[1:]) + "\n"


def _sections(board: Leaderboard, by_column: dict[str, list[str]], show_ci: bool) -> list[Section]:
    overview = [name for name in _OVERVIEW if name in by_column and name != "model"]
    accuracy = [c.label for c in board.columns if c.in_mean]
    # Unbounded metrics (perplexities); an efficiency task's headline metrics are the Efficiency section.
    other = [c.label for c in board.columns if not c.bounded and c.metric not in _EFFICIENCY_METRICS]
    long_context = [c.label for c in board.columns if c.bounded and not c.in_mean]
    efficiency = [name for name in _EFFICIENCY_HEADERS if name in by_column]
    lengths = {label.split("/", 1)[0]: label for label in board.long_context_columns}
    joined: dict[str, list[str]] = {}
    for label in long_context:  # one cell per task: its score and its effective length
        length_label = lengths.get(label.split("/", 1)[0])
        lengths_shown = by_column.get(long_context_header(length_label)) if length_label else None
        scores = by_column[label]
        joined[label] = [
            score if lengths_shown is None or lengths_shown[i] == MISSING else f"{score} @{lengths_shown[i]}"
            for i, score in enumerate(scores)
        ]
    interval = " with the 95% interval" if show_ci else ""
    pareto = (
        " pareto: on the accuracy-vs-memory (mem) / latency (lat) front." if "pareto" in by_column else ""
    )
    return [
        Section(
            "Overview",
            f"rank (tied unless a paired test finds p < 0.05), mean of the {len(accuracy)} accuracy "
            f"columns in %, mean:norm chance-normalized (0 = guessing).{pareto}",
            "",
            overview,
            by_column,
        ),
        Section(
            "Accuracy",
            f"each task's primary metric in %{interval} (chance-normalized scores: --wide)",
            "task/metric",
            accuracy,
            by_column,
        ),
        Section(
            "Other metrics",
            "unbounded metrics (lower or higher is better per metric)",
            "task/metric",
            other,
            by_column,
        ),
        Section(
            "Long context",
            "score in %, @ the effective context length in tokens (the longest length above the threshold; "
            "none shown: not even the shortest)",
            "task/metric",
            long_context,
            joined,
        ),
        Section(
            "Efficiency",
            "peak memory, prefill and decode speed, latency per output token",
            "",
            efficiency,
            by_column,
        ),
    ]


def _blocks(table: list[list[str]], width: int) -> list[str]:
    """The table as aligned lines, its columns cut into blocks that each fit `width`."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    blocks: list[list[int]] = [[]]
    used = widths[0]
    for index in range(1, len(widths)):
        if blocks[-1] and used + len(_GAP) + widths[index] > width:
            blocks.append([])
            used = widths[0]
        blocks[-1].append(index)
        used += len(_GAP) + widths[index]
    lines: list[str] = []
    for number, block in enumerate(blocks):
        if number:
            lines.append("")
        for row_number, row in enumerate(table):
            parts = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in block]
            lines.append(_GAP.join(parts).rstrip())
            if row_number == 0:
                lines.append(_GAP.join("-" * widths[i] for i in [0, *block]))
    return lines


def _wrapped(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width=width, break_long_words=False, break_on_hyphens=False) or [""]


def wrap_lines(lines: Sequence[str], width: int = TERMINAL_WIDTH, indent: str = "    ") -> list[str]:
    """Notes and failed runs wrapped to `width`, continuation lines indented."""
    out: list[str] = []
    for line in lines:
        out += textwrap.wrap(line, width=width, subsequent_indent=indent, break_long_words=False) or [""]
    return out


__all__ = ["TERMINAL_WIDTH", "render_compact", "wrap_lines"]
