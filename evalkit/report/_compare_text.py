"""Text forms of a model comparison: a terminal table, GitHub markdown and JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from evalkit.report._compare import ModelComparison, TaskComparison
from evalkit.report.stats import PairedComparison

CompareFormat = Literal["table", "markdown", "json"]
COMPARE_FORMATS: tuple[CompareFormat, ...] = ("table", "markdown", "json")
_HEADER = ["task", "metric", "n", "A", "B", "B-A", "95% CI of B-A", "p", "test", "verdict"]
_TESTS = {"mcnemar_exact": "McNemar exact", "paired_bootstrap": "paired bootstrap"}


def render_comparison(comparison: ModelComparison, output_format: CompareFormat) -> str:
    """The comparison as text ending in a newline."""
    if output_format == "json":
        return json.dumps(_json(comparison), indent=2, allow_nan=False) + "\n"
    rows = [_row(item.task, item.metric, item.result, item.bounded, comparison) for item in comparison.tasks]
    if comparison.overall is not None:
        rows.append(_row("all tasks (pooled)", "primary", comparison.overall, True, comparison))
    if output_format == "markdown":
        table = [_markdown_row(_HEADER), _markdown_row([":---", ":---", *["---:"] * 6, ":---", ":---"])]
        table += [_markdown_row(row) for row in rows]
        bullet = "- "
    elif output_format == "table":
        widths = [max(len(cell) for cell in column) for column in zip(_HEADER, *rows, strict=True)]
        table = [_aligned(row, widths) for row in (_HEADER, ["-" * w for w in widths], *rows)]
        bullet = "  - "
    else:
        raise ValueError(f"unknown comparison format {output_format!r}")
    lines = [f"A: {comparison.a.label}", f"B: {comparison.b.label}", "", *table, "", _summary(comparison)]
    notes = _notes(comparison)
    if notes:
        lines += ["", "Notes:", *(bullet + note for note in notes)]
    return "\n".join(lines) + "\n"


def _row(
    task: str,
    metric: str,
    result: PairedComparison | None,
    bounded: bool,
    comparison: ModelComparison,
) -> list[str]:
    if result is None:
        return [task, metric, "-", "-", "-", "-", "-", "-", "not tested", "see notes"]
    scale, digits = (100.0, 1) if bounded else (1.0, 3)
    low, high = result.ci95
    return [
        task,
        metric,
        str(result.n),
        f"{result.mean_a * scale:.{digits}f}",
        f"{result.mean_b * scale:.{digits}f}",
        f"{result.difference * scale:+.{digits}f}",
        f"[{low * scale:+.{digits}f}, {high * scale:+.{digits}f}]",
        _p(result.p_value),
        _TESTS[result.test],
        _verdict(result, comparison.alpha),
    ]


def _verdict(result: PairedComparison, alpha: float) -> str:
    if not result.significant(alpha):
        return "no significant difference"
    return "B better" if result.difference > 0 else "A better"


def _p(p_value: float) -> str:
    return "<0.001" if p_value < 0.001 else f"{p_value:.3f}"


def _summary(comparison: ModelComparison) -> str:
    """Counts of verdicts; assumes higher is better, which holds for every bounded metric evalkit has."""
    verdicts = [
        _verdict(item.result, comparison.alpha) for item in comparison.tasks if item.result is not None
    ]
    tested = len(verdicts)
    return (
        f"B is better on {verdicts.count('B better')} and worse on {verdicts.count('A better')} of {tested} "
        f"tested task(s), with no significant difference on {verdicts.count('no significant difference')} "
        f"(two-sided p < {comparison.alpha:g} per test, not corrected for {tested} tests)."
    )


def _notes(comparison: ModelComparison) -> list[str]:
    notes = []
    for item in comparison.tasks:
        if item.result is None:
            notes.append(f"{item.task}: not tested: {item.problem}")
            continue
        if not item.same_task_version or item.samples_a != item.result.n or item.samples_b != item.result.n:
            version = (
                "same task version"
                if item.same_task_version
                else f"different task versions (fingerprints {item.record_a.task.fingerprint[:8]} and "
                f"{item.record_b.task.fingerprint[:8]}: other samples or spec)"
            )
            notes.append(
                f"{item.task}: {version}; {item.result.n} samples shared of {item.samples_a} (A) "
                f"and {item.samples_b} (B)"
            )
        if not item.bounded:
            notes.append(f"{item.task}: {item.metric} is shown as stored per sample, not in %")
    if comparison.overall is not None:
        notes.append(
            "all tasks (pooled): every shared (task, sample) pair of the bounded primary metrics in one "
            "test, so tasks weigh by their shared samples"
        )
    if comparison.only_a:
        notes.append(f"only A has: {', '.join(comparison.only_a)}")
    if comparison.only_b:
        notes.append(f"only B has: {', '.join(comparison.only_b)}")
    return notes


def _aligned(row: Sequence[str], widths: Sequence[int]) -> str:
    text_columns = {0, 1, 8, 9}
    parts = [
        cell.ljust(width) if index in text_columns else cell.rjust(width)
        for index, (cell, width) in enumerate(zip(row, widths, strict=True))
    ]
    return "  ".join(parts).rstrip()


def _markdown_row(row: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"


def _json(comparison: ModelComparison) -> dict[str, Any]:
    return {
        "a": {"name": comparison.a.name, "label": comparison.a.label},
        "b": {"name": comparison.b.name, "label": comparison.b.label},
        "alpha": comparison.alpha,
        "tasks": [_json_task(item, comparison.alpha) for item in comparison.tasks],
        "overall": None if comparison.overall is None else _json_result(comparison.overall, comparison.alpha),
        "only_a": list(comparison.only_a),
        "only_b": list(comparison.only_b),
    }


def _json_task(item: TaskComparison, alpha: float) -> dict[str, Any]:
    return {
        "task": item.task,
        "metric": item.metric,
        "record_a": item.record_a.record_id,
        "record_b": item.record_b.record_id,
        "same_task_version": item.same_task_version,
        "samples_a": item.samples_a,
        "samples_b": item.samples_b,
        "problem": item.problem,
        **(_json_result(item.result, alpha) if item.result is not None else {}),
    }


def _json_result(result: PairedComparison, alpha: float) -> dict[str, Any]:
    return {
        "n": result.n,
        "mean_a": result.mean_a,
        "mean_b": result.mean_b,
        "difference": result.difference,
        "ci95": list(result.ci95),
        "p_value": result.p_value,
        "test": result.test,
        "significant": result.significant(alpha),
    }
