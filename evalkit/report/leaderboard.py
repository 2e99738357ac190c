"""The leaderboard: a pandas view over run records, one row per model.

A record store only ever grows (reruns, other limits, failed attempts), so the view has to
choose what a row shows. The rules, so that a reader can trust a number:

* only ``status == "ok"`` records are scored; failed runs are returned beside the table
  (:func:`error_rows`) so they are never silently dropped;
* by default the latest record (by ``finished_at``) per (model fingerprint, task fingerprint)
  counts; if one model has several *task* fingerprints for one task name (say, runs with
  different ``--limit``), the latest one is shown and a note says so;
* each task contributes its primary metric; ``mean`` averages only bounded metrics
  (fractions such as accuracy), because a perplexity of 12 cannot be averaged with 45 %.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from evalkit.errors import DataError
from evalkit.results.schema import MetricValue, RunRecord

# Fixed columns, before the per-metric ones; history mode inserts HISTORY_COLUMNS after "model".
MODEL_COLUMNS = ("model", "fingerprint", "family", "parameters", "quantization")
HISTORY_COLUMNS = ("run_id", "finished_at")
SUMMARY_COLUMNS = ("mean", "tasks_in_mean")
ERROR_COLUMNS = ("model", "fingerprint", "task", "run_id", "finished_at", "error")
STDERR_SUFFIX = ":stderr"
N_SUFFIX = ":n"
_MIN_SUFFIX = 8  # fingerprint characters shown when two models share a display name


@dataclass(frozen=True)
class MetricColumn:
    """What one metric column of the leaderboard holds, for legends and formatting."""

    label: str  # "arc_easy/acc": the frame column; stderr and n sit in label + ":stderr" / ":n"
    task: str
    metric: str
    bounded: bool  # every shown value is a fraction in [0, 1] (so it enters the mean)
    higher_is_better: bool
    sample_counts: tuple[int, ...]  # distinct n over the rows, ascending
    task_versions: int  # distinct task fingerprints over the rows (> 1: compare with care)


@dataclass(frozen=True, eq=False)
class Leaderboard:
    """The frame plus what is needed to explain it."""

    frame: pd.DataFrame
    columns: tuple[MetricColumn, ...]
    notes: tuple[str, ...]  # choices the view made that a reader should know about
    errors: pd.DataFrame  # failed runs, as returned by error_rows()
    keep_history: bool

    @property
    def metric_labels(self) -> list[str]:
        return [column.label for column in self.columns]


def leaderboard_frame(records: Iterable[RunRecord], *, keep_history: bool = False) -> pd.DataFrame:
    """One row per model (per model × run with ``keep_history``), sorted by ``mean`` descending.

    Columns: ``model`` (display name, fingerprint-suffixed when two models share a name),
    ``fingerprint``, ``family``, ``parameters``, ``quantization``, then ``run_id`` and
    ``finished_at`` with ``keep_history``, ``mean`` and ``tasks_in_mean``, then per task
    ``<task>/<primary metric>`` with ``…:stderr`` and ``…:n``. Missing results are NaN / <NA>.
    """
    return build_leaderboard(records, keep_history=keep_history).frame


def build_leaderboard(records: Iterable[RunRecord], *, keep_history: bool = False) -> Leaderboard:
    """The leaderboard frame with its column descriptions, notes and failed runs."""
    ordered = _in_time_order(records)
    names = _display_names(ordered)
    ok = [record for record in ordered if record.status == "ok"]
    if not keep_history:
        ok = _latest_per_key(ok, lambda r: (r.model.fingerprint, r.task.fingerprint))

    groups: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for record in ok:
        groups[(record.model.fingerprint, record.run_id if keep_history else "")].append(record)

    notes: list[str] = []
    rows: list[dict[str, object]] = []
    cells_by_label: dict[str, list[tuple[MetricValue, RunRecord]]] = defaultdict(list)
    for (_, run_id), group in groups.items():
        latest = group[-1]  # groups keep time order
        name = names[latest.model.fingerprint]
        row: dict[str, object] = {
            "model": name,
            "fingerprint": latest.model.fingerprint,
            "family": latest.model.family,
            "parameters": latest.model.parameters,
            "quantization": latest.model.quantization,
        }
        if keep_history:
            row["run_id"] = run_id
            row["finished_at"] = latest.finished_at
        bounded_values: list[float] = []
        for record in _latest_per_task_name(group, name, run_id if keep_history else None, notes):
            metric_name = record.task.primary_metric
            value = record.metrics.get(metric_name)
            if value is None:
                notes.append(
                    f"{name}: {record.task.name} record {record.record_id} has no value for its primary "
                    f"metric {metric_name!r}; left out"
                )
                continue
            label = f"{record.task.name}/{metric_name}"
            row[label] = value.value
            row[label + STDERR_SUFFIX] = math.nan if value.stderr is None else value.stderr
            row[label + N_SUFFIX] = value.n
            cells_by_label[label].append((value, record))
            if value.bounded and not math.isnan(value.value):
                bounded_values.append(value.value)
        row["mean"] = sum(bounded_values) / len(bounded_values) if bounded_values else math.nan
        row["tasks_in_mean"] = len(bounded_values)
        rows.append(row)

    columns = tuple(_describe_column(label, cells_by_label[label]) for label in sorted(cells_by_label))
    frame = _to_frame(rows, columns, keep_history)
    return Leaderboard(
        frame=frame,
        columns=columns,
        notes=tuple(notes),
        errors=error_rows(ordered, keep_history=keep_history),
        keep_history=keep_history,
    )


def error_rows(records: Iterable[RunRecord], *, keep_history: bool = False) -> pd.DataFrame:
    """Failed runs, one row each, oldest first.

    By default only failures that are still current are listed: an error record followed by a
    later ``ok`` record for the same model and task name was fixed by a rerun and would only be
    noise. ``keep_history=True`` lists every error record.
    """
    ordered = _in_time_order(records)
    names = _display_names(ordered)
    if keep_history:
        failed = [record for record in ordered if record.status == "error"]
    else:
        latest = _latest_per_key(ordered, lambda r: (r.model.fingerprint, r.task.name))
        failed = [record for record in latest if record.status == "error"]
    rows = [
        {
            "model": names[record.model.fingerprint],
            "fingerprint": record.model.fingerprint,
            "task": record.task.name,
            "run_id": record.run_id,
            "finished_at": record.finished_at,
            "error": record.error or "(no message recorded)",
        }
        for record in failed
    ]
    return pd.DataFrame(rows, columns=list(ERROR_COLUMNS))


# -- selection -----------------------------------------------------------------------------------


def _in_time_order(records: Iterable[RunRecord]) -> list[RunRecord]:
    """Records sorted by finish time; ties keep store order, so the later line wins."""
    indexed = sorted(enumerate(records), key=lambda item: (_finished(item[1]), item[0]))
    return [record for _, record in indexed]


def _finished(record: RunRecord) -> datetime:
    try:
        moment = datetime.fromisoformat(record.finished_at)
    except ValueError:
        raise DataError(
            f"record {record.record_id}: finished_at {record.finished_at!r} is not an ISO 8601 time"
        ) from None
    # Naive times are written as UTC by evalkit; comparing them with aware ones needs a zone.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _latest_per_key(ordered: Sequence[RunRecord], key: Callable[[RunRecord], Hashable]) -> list[RunRecord]:
    """The last record per key, in time order (input must already be in time order)."""
    latest: dict[Hashable, RunRecord] = {}
    for record in ordered:
        latest.pop(key(record), None)  # re-insert so dict order follows the latest record
        latest[key(record)] = record
    return list(latest.values())


def _latest_per_task_name(
    group: Sequence[RunRecord], name: str, run_id: str | None, notes: list[str]
) -> list[RunRecord]:
    by_task: dict[str, list[RunRecord]] = defaultdict(list)
    for record in group:
        by_task[record.task.name].append(record)
    chosen = []
    for task_name, candidates in by_task.items():
        latest = candidates[-1]
        chosen.append(latest)
        if len(candidates) == 1:
            continue
        versions = len({record.task.fingerprint for record in candidates})
        shown = f"showing the latest (finished {latest.finished_at}, {latest.task.num_samples} samples)"
        if versions > 1:
            notes.append(
                f"{name}: {task_name} was evaluated on {versions} different task versions "
                f"(other samples or spec, e.g. another --limit); {shown}"
            )
        else:
            notes.append(f"{name} (run {run_id}): {task_name} was evaluated {len(candidates)} times; {shown}")
    return chosen


def _display_names(records: Sequence[RunRecord]) -> dict[str, str]:
    """Model fingerprint -> display name; a fingerprint prefix tells apart models sharing a name."""
    fingerprints_by_name: dict[str, set[str]] = defaultdict(set)
    for record in records:
        fingerprints_by_name[record.model.name].add(record.model.fingerprint)
    names: dict[str, str] = {}
    for name, fingerprints in fingerprints_by_name.items():
        if len(fingerprints) == 1:
            names[fingerprints.pop()] = name
            continue
        width = _MIN_SUFFIX
        while len({fp[:width] for fp in fingerprints}) < len(fingerprints):
            width += 4
        names.update({fp: f"{name}@{fp[:width]}" for fp in fingerprints})
    return names


# -- frame ---------------------------------------------------------------------------------------


def _describe_column(label: str, cells: Sequence[tuple[MetricValue, RunRecord]]) -> MetricColumn:
    first_value, first_record = cells[0]
    return MetricColumn(
        label=label,
        task=first_record.task.name,
        metric=first_record.task.primary_metric,
        bounded=all(value.bounded for value, _ in cells),
        higher_is_better=first_value.higher_is_better,
        sample_counts=tuple(sorted({value.n for value, _ in cells})),
        task_versions=len({record.task.fingerprint for _, record in cells}),
    )


def _to_frame(
    rows: list[dict[str, object]], columns: Sequence[MetricColumn], keep_history: bool
) -> pd.DataFrame:
    order = list(MODEL_COLUMNS[:1])
    if keep_history:
        order += HISTORY_COLUMNS
    order += [*MODEL_COLUMNS[1:], *SUMMARY_COLUMNS]
    for column in columns:
        order += [column.label, column.label + STDERR_SUFFIX, column.label + N_SUFFIX]
    frame = pd.DataFrame(rows, columns=order)
    frame = frame.astype({"parameters": "Int64", "mean": "float64", "tasks_in_mean": "int64"})
    for column in columns:
        frame = frame.astype(
            {
                column.label: "float64",
                column.label + STDERR_SUFFIX: "float64",
                column.label + N_SUFFIX: "Int64",
            }
        )
    sort_by = ["mean", "model", *(["finished_at"] if keep_history else [])]
    frame = frame.sort_values(
        sort_by, ascending=[False, *[True] * (len(sort_by) - 1)], na_position="last", kind="stable"
    )
    return frame.reset_index(drop=True)
