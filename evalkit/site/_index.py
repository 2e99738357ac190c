"""The front page: the sortable, filterable leaderboard, the overview plots, and what went wrong."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from evalkit.query import decode_curve
from evalkit.report import leaderboard as lb
from evalkit.report import spread
from evalkit.site._data import SiteData, embed
from evalkit.site._html import (
    Cell,
    Page,
    esc,
    human_bytes,
    human_count,
    link_cell,
    number_cell,
    page,
    table,
    text_cell,
)

_MAX_ERROR_CHARS = 300


def index_page(data: SiteData, store_problems: Sequence[str]) -> Page:
    board = data.board
    failed = sum(record.status == "error" for record in data.records)
    body = [
        f'<p class="lead">{len(data.by_model)} models, {len(data.by_task)} tasks, {len(data.records)} run '
        f"records ({failed} failed). Each cell is the model's latest successful result on the task.</p>\n"
    ]
    if store_problems:
        items = "".join(f"<li>{esc(problem)}</li>" for problem in store_problems)
        body.append(f'<div class="problems"><h2>Unreadable records (skipped)</h2><ul>{items}</ul></div>\n')
    body.append('<section id="leaderboard">\n')
    if board.frame.empty:
        body.append('<p class="note">No successful run records to rank.</p>\n')
    else:
        body.append(_leaderboard_table(data))
        body.append(_legend(data))
    if board.notes:
        body.append(
            "<h3>Notes</h3><ul>" + "".join(f"<li>{esc(note)}</li>" for note in board.notes) + "</ul>\n"
        )
    body.append("</section>\n")
    body.append(_failures(data))
    body.append(_plots(data))
    body.append(_model_list(data))
    body.append(_task_list(data))
    return Page("index.html", page("Leaderboard", "".join(body), depth=0, plots=True))


def _leaderboard_table(data: SiteData) -> str:
    """The leaderboard frame as an HTML table, column for column as `evalkit leaderboard` shows it.

    Any frame column this page does not know yet is appended as is, so a column added to the
    leaderboard later shows up here rather than silently missing.
    """
    board = data.board
    known = {"fingerprint", "family", "quantization", "bytes_on_disk", "run_id", "finished_at"}
    headers: list[str | tuple[str, str]] = []
    columns: list[tuple[str, str]] = []  # (frame column, how to show it)

    def add(header: str | tuple[str, str], name: str, kind: str) -> None:
        headers.append(header)
        columns.append((name, kind))
        known.add(name)

    if board.ranked:
        add("rank", lb.RANK_COLUMN, "integer")
    add("model", "model", "model")
    add("mean %", "mean", "percent")
    if board.normalized:
        add("mean norm. %", "mean:norm", "percent")
    add("tasks", "tasks_in_mean", "integer")
    known.add("tasks_in_mean:norm")
    add("params", "parameters", "count")
    if board.pareto_columns:
        add("Pareto", board.pareto_columns[0], "pareto")
        known.update(board.pareto_columns)
    for key in board.efficiency_columns:
        add(_EFFICIENCY_HEADERS.get(key, key), key, key)
    for label in board.long_context_columns:
        task = label.removesuffix(lb.LONG_CONTEXT_SUFFIX)
        add((task, '<span class="sub">effective context (tokens)</span>'), label, "integer")
    for column in board.columns:
        unit = " %" if column.bounded else ""
        extra = (
            f' <a class="th-link" href="{esc(data.task_files[column.task])}" title="task page">↗</a>'
            f'<span class="sub">{esc(column.metric + unit)}</span>'
        )
        add(
            (column.task, extra),
            column.label,
            "bounded" if column.bounded else "metric",
        )
        known.update(column.label + suffix for suffix in _METRIC_SUFFIXES)
        if column.normalized:
            add(
                (column.task, '<span class="sub">chance-normalized %</span>'),
                column.label + lb.NORM_SUFFIX,
                "percent",
            )
    for name in board.frame.columns:
        if str(name) not in known:
            add(str(name), str(name), "extra")

    rows = []
    for row in data.leaderboard_rows.values():  # the frame's rows, in its order
        rows.append([_cell(data, row, name, kind) for name, kind in columns])
    return table(headers, rows, table_id="leaderboard-table", filter_label="Filter models:")


_METRIC_SUFFIXES = (
    lb.STDERR_SUFFIX,
    lb.N_SUFFIX,
    lb.CI_LOW_SUFFIX,
    lb.CI_HIGH_SUFFIX,
    lb.NORM_SUFFIX,
    lb.RANK_SUFFIX,
)
_EFFICIENCY_HEADERS = {
    "peak_memory_bytes": "peak memory",
    "prefill_tokens_per_s": "prefill tok/s",
    "decode_tokens_per_s": "decode tok/s",
    "time_per_output_token_s": "ms / token",
}


def _cell(data: SiteData, row: dict[str, Any], name: str, kind: str) -> Cell:
    value = row.get(name)
    number = _float(value)
    if kind == "model":
        return link_cell(str(value), data.model_files[str(row["fingerprint"])])
    if kind == "pareto":
        fronts = [label for column, label in _FRONTS if column in row and bool(row[column])]
        return Cell("★ " + esc(", ".join(fronts)) if fronts else "", ", ".join(fronts), "pareto")
    if kind in ("bounded", "metric"):
        return _metric_cell(row, name, bounded=kind == "bounded")
    if kind == "extra":
        return _extra_cell(value)
    if number is None:
        return number_cell(None, "")
    text = {
        "percent": lambda: f"{number * 100:.1f}",
        "integer": lambda: f"{int(number):,}",
        "count": lambda: human_count(int(number)),
        "peak_memory_bytes": lambda: human_bytes(number),
        "time_per_output_token_s": lambda: f"{number * 1000:.2f}",
    }.get(kind, lambda: f"{number:.1f}")()
    return number_cell(number, text)


_FRONTS = ((lb.PARETO_MEMORY, "memory"), (lb.PARETO_LATENCY, "latency"))


def _metric_cell(row: dict[str, Any], label: str, *, bounded: bool) -> Cell:
    number = _float(row.get(label))
    if number is None:
        return number_cell(None, "")
    scale, digits = (100.0, 1) if bounded else (1.0, 2)
    text = esc(f"{number * scale:.{digits}f}")
    low, high = _float(row.get(label + lb.CI_LOW_SUFFIX)), _float(row.get(label + lb.CI_HIGH_SUFFIX))
    title = ""
    if low is not None and high is not None:
        text += f'<span class="ci">{esc(spread(number, low, high, scale, digits))}</span>'
        title = f"95% CI {low * scale:.{digits}f} to {high * scale:.{digits}f}"
    rank = _float(row.get(label + lb.RANK_SUFFIX))
    if rank is not None:
        text += f'<span class="ci">rank {int(rank)}</span>'
    return Cell(text, number, "num", title)


def _extra_cell(value: Any) -> Cell:
    """A column this page does not know yet, shown as is: numbers sort as numbers."""
    if isinstance(value, bool):
        return Cell("yes" if value else "", "1" if value else "0")
    number = _float(value)
    if number is not None:
        text = str(int(number)) if number.is_integer() and abs(number) < 1e15 else f"{number:.3g}"
        return number_cell(number, text)
    if value is None or str(value) in ("<NA>", "nan", "NaT"):
        return number_cell(None, "")
    return text_cell(value)


def _float(value: Any) -> float | None:
    """A finite float, or None for missing values (None, NaN, pandas' <NA>) and non-numbers."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _legend(data: SiteData) -> str:
    """The leaderboard's own legend (the wording `evalkit leaderboard` prints), as a list."""
    from evalkit.report import legend

    entries = "".join(f"<dt>{esc(name)}</dt><dd>{esc(text)}</dd>" for name, text in legend(data.board, True))
    return (
        '<details class="legend"><summary>What the columns mean</summary>'
        "<p>Click a column header to sort, again to reverse; hover a score for its 95% interval. "
        f'Per-task ranks, where computed, are shown under the score.</p><dl class="facts">{entries}</dl>'
        "</details>\n"
    )


def _failures(data: SiteData) -> str:
    errors = [record for record in data.records if record.status == "error"]
    if not errors:
        return ""
    rows = []
    for record in reversed(errors):  # newest first
        message = (record.error or "(no message recorded)").strip()
        if len(message) > _MAX_ERROR_CHARS:
            message = message[: _MAX_ERROR_CHARS - 1] + "…"
        rows.append(
            [
                link_cell(data.names[record.model.fingerprint], data.model_files[record.model.fingerprint]),
                link_cell(record.task.name, data.task_files[record.task.name]),
                text_cell(record.run_id),
                text_cell(record.finished_at),
                text_cell(message, "message"),
            ]
        )
    return (
        f'<section id="failures"><h2>Failed runs ({len(errors)})</h2>\n'
        '<p class="note">Runs that ended in an error are kept in the store and listed here, not hidden; '
        "a later successful run of the same model and task supersedes them in the table.</p>\n"
        + table(["model", "task", "run", "finished", "error"], rows, table_id="failures-table")
        + "</section>\n"
    )


def _plots(data: SiteData) -> str:
    from evalkit import plots

    records = data.records
    blocks = [
        embed(plots.accuracy_bars(records, names=data.names), "plot-accuracy"),
        embed(plots.accuracy_vs_memory(records, board=data.board), "plot-memory"),
        embed(plots.accuracy_vs_latency(records, board=data.board), "plot-latency"),
    ]
    if any(record.long_context is not None for record in data.latest.values()):
        blocks.append(embed(plots.context_scores(records, names=data.names), "plot-context"))
    if any(decode_curve(record) for record in data.latest.values()):
        blocks.append(embed(plots.efficiency_curves(records, names=data.names), "plot-efficiency"))
    if data.variant_groups:
        blocks.append(
            embed(plots.quantization_deltas(records, data.store, names=data.names), "plot-quantization")
        )
    return '<section id="plots"><h2>Plots</h2>\n' + "".join(blocks) + "</section>\n"


def _model_list(data: SiteData) -> str:
    rows = []
    for fingerprint, records in data.by_model.items():
        model = records[-1].model
        failed = sum(record.status == "error" for record in records)
        rows.append(
            [
                link_cell(data.names[fingerprint], data.model_files[fingerprint]),
                text_cell(model.family),
                number_cell(float(model.parameters), human_count(model.parameters)),
                text_cell(model.dtype),
                text_cell(model.quantization or "none"),
                number_cell(
                    float(len(records)), f"{len(records)}" + (f" ({failed} failed)" if failed else "")
                ),
            ]
        )
    headers = ["model", "family", "params", "dtype", "quantization", "records"]
    return (
        '<section id="models"><h2>Models</h2>\n'
        + table(headers, rows, table_id="models-table")
        + "</section>\n"
    )


def _task_list(data: SiteData) -> str:
    rows = []
    for task, records in data.by_task.items():
        facts = records[-1].task
        models = len({record.model.fingerprint for record in records})
        rows.append(
            [
                link_cell(task, data.task_files[task]),
                text_cell(facts.kind),
                text_cell(facts.primary_metric),
                number_cell(float(models), str(models)),
            ]
        )
    headers = ["task", "kind", "primary metric", "models"]
    return (
        '<section id="tasks"><h2>Tasks</h2>\n' + table(headers, rows, table_id="tasks-table") + "</section>\n"
    )
