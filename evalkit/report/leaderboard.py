"""The leaderboard: a pandas view over run records, one row per model.

A record store only ever grows (reruns, other limits, failed attempts), so the view has to
choose what a row shows. The rules, so that a reader can trust a number:

* only ``status == "ok"`` records are scored; failed runs are returned beside the table
  (:func:`error_rows`) so they are never silently dropped;
* by default the result per (model fingerprint, task name) is the one every view shows
  (:func:`evalkit.query.choose_latest`: the latest ``ok`` record by ``finished_at``); if one
  model has several *task* fingerprints for one task name (say, runs with different
  ``--limit``), the latest one is shown and a note says so;
* ``tasks`` (e.g. a suite's task names) restricts the columns, and so the mean, to those tasks;
* each task contributes its primary metric; ``mean`` averages only bounded metrics
  (fractions such as accuracy), because a perplexity of 12 cannot be averaged with 45 %;
* ``<label>:norm`` is the chance-normalized score (score - chance) / (1 - chance), with chance
  from ``MetricValue.chance`` (0 = guessing, 1 = perfect), so a 4-choice and a 2-choice task can
  be compared; ``mean:norm`` averages the normalized scores a row has;
* intervals are the stored 95% interval (``MetricValue.ci95``: Wilson's for 0/1 scores, else a
  bootstrap) where it can be true; a bounded metric that stores none, or one outside [0, 1] or
  collapsed to a point at 0 or 1 (the Wald interval of older records), gets Wilson's interval from
  its value and n (:func:`evalkit.query.interval`);
* ``pareto_memory`` / ``pareto_latency``: the row is on the Pareto front of ``mean`` against
  memory (``peak_memory_bytes`` when every ranked row has it, else the model file's
  ``bytes_on_disk``) / against ``time_per_output_token_s`` (see :func:`stats.pareto_front`).

Ranks with tie groups (``ranks=True``; they read the per-sample logs of the shown records only):

* ``<label>:rank`` ranks the rows that have the column by its value; ``rank`` ranks rows by
  ``mean``. Only bounded metrics are ranked (their value is a mean of per-sample scores);
* each adjacent pair in that order is tested on the samples both rows share (matched by sample
  id): McNemar's exact test when all scores are 0/1, else a paired bootstrap (10,000 resamples,
  seed 0). The overall test pools every shared (task, sample) pair of the bounded primary
  metrics both rows show, so tasks weigh by their number of shared samples;
* a pair is *different* if p < 0.05 and the tested difference points the way of the order;
  a pair that cannot be tested (a record without per-sample log, no shared samples) is not;
* tie groups chain adjacent pairs that are not different (A~B and B~C tie A, B and C even if
  A and C differ) and share the rank of their first row: 1, 1, 3, ... No correction is made
  for the many pairs tested; a shared rank means "not shown different", never "equal".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from evalkit.query import Choice, StoreQuery, choose_latest, duplicate_note, interval
from evalkit.report import _extras
from evalkit.report._ranks import compute_ranks
from evalkit.report.stats import chance_normalized
from evalkit.results import MetricValue, ResultsStore, RunRecord

# Fixed columns, before the per-metric ones; history mode inserts HISTORY_COLUMNS after "model".
MODEL_COLUMNS = ("model", "fingerprint", "family", "parameters", "quantization", "bytes_on_disk")
HISTORY_COLUMNS = ("run_id", "finished_at")
SUMMARY_COLUMNS = ("mean", "tasks_in_mean")
NORMALIZED_SUMMARY_COLUMNS = ("mean:norm", "tasks_in_mean:norm")
RANK_COLUMN = "rank"
ERROR_COLUMNS = ("model", "fingerprint", "task", "run_id", "finished_at", "error")
STDERR_SUFFIX = ":stderr"
N_SUFFIX = ":n"
CI_LOW_SUFFIX = ":ci_low"
CI_HIGH_SUFFIX = ":ci_high"
NORM_SUFFIX = ":norm"
RANK_SUFFIX = ":rank"
EFFICIENCY_COLUMNS = _extras.EFFICIENCY_COLUMNS
PEAK_MEMORY = _extras.PEAK_MEMORY
LATENCY = _extras.LATENCY
LONG_CONTEXT_SUFFIX = _extras.LONG_CONTEXT_SUFFIX
PARETO_MEMORY = _extras.PARETO_MEMORY
PARETO_LATENCY = _extras.PARETO_LATENCY


# Kinds whose scores are shown in their own columns but kept out of the accuracy mean: a long-context
# score says how far a model reads, not how much it knows, and averaging the two hides both.
SEPARATE_KINDS = frozenset({"long_context"})


@dataclass(frozen=True)
class MetricColumn:
    """What one metric column of the leaderboard holds, for legends and formatting."""

    label: str  # "arc_easy/acc": the frame column; the others sit in label + ":stderr", ":n", ...
    task: str
    metric: str
    bounded: bool  # every shown value is a fraction in [0, 1] (so it enters the mean)
    higher_is_better: bool
    sample_counts: tuple[int, ...]  # distinct n over the rows, ascending
    task_versions: int  # distinct task fingerprints over the rows (> 1: compare with care)
    normalized: bool = False  # a label + ":norm" column exists (some record stores a chance level)
    chance_levels: tuple[float, ...] = ()  # distinct chance levels over the rows, ascending
    in_mean: bool = True  # bounded and of a kind that enters the accuracy mean (see SEPARATE_KINDS)


@dataclass(frozen=True, eq=False)
class Leaderboard:
    """The frame plus what is needed to explain it."""

    frame: pd.DataFrame
    columns: tuple[MetricColumn, ...]
    notes: tuple[str, ...]  # choices the view made that a reader should know about
    errors: pd.DataFrame  # failed runs, as returned by error_rows()
    keep_history: bool
    ranked: bool = False  # "rank" and "<label>:rank" columns were computed
    efficiency_columns: tuple[str, ...] = ()  # those of EFFICIENCY_COLUMNS some row has
    long_context_columns: tuple[str, ...] = ()  # "<task>/effective_context_length", when stored
    memory_axis: str = "bytes_on_disk"  # what pareto_memory weighs accuracy against
    pareto_columns: tuple[str, ...] = ()

    @property
    def metric_labels(self) -> list[str]:
        return [column.label for column in self.columns]

    @property
    def normalized(self) -> bool:
        return any(column.normalized for column in self.columns)


@dataclass
class _Row:
    values: dict[str, object]
    shown: dict[str, RunRecord] = field(default_factory=dict)  # metric label -> record shown there


def leaderboard_frame(
    records: Iterable[RunRecord] | StoreQuery, *, keep_history: bool = False
) -> pd.DataFrame:
    """One row per model (per model × run with ``keep_history``), sorted by ``mean`` descending.

    Columns: ``model`` (display name, fingerprint-suffixed when two models share a name),
    ``fingerprint``, ``family``, ``parameters``, ``quantization``, ``bytes_on_disk``, then
    ``run_id`` and ``finished_at`` with ``keep_history``; ``mean`` and ``tasks_in_mean``
    (and ``mean:norm``, ``tasks_in_mean:norm`` when chance levels are stored); ``pareto_memory``
    (and ``pareto_latency``); the stored efficiency and long-context columns; then per task
    ``<task>/<primary metric>`` with ``…:stderr``, ``…:n``, ``…:ci_low``, ``…:ci_high`` (and
    ``…:norm``). Missing results are NaN / <NA>. See :func:`build_leaderboard` for ranks.
    """
    return build_leaderboard(records, keep_history=keep_history).frame


def build_leaderboard(
    records: Iterable[RunRecord] | StoreQuery,
    *,
    keep_history: bool = False,
    tasks: Collection[str] | None = None,
    normalized: bool = True,
    ranks: bool = False,
    store: ResultsStore | None = None,
) -> Leaderboard:
    """The leaderboard frame with its column descriptions, notes and failed runs.

    ``tasks`` restricts the view to those task names (a suite), in that column order. ``normalized`` adds the
    chance-normalized columns where chance levels are stored. ``ranks`` adds ``rank`` and
    ``<label>:rank`` (Int64; <NA> where unranked) by the rule in the module docstring; it reads
    the per-sample logs of the shown records from ``store``, which it therefore needs. Without
    ranks nothing but the records is read, so a view over many thousands of records stays fast.
    """
    if ranks and store is None:
        raise ValueError("ranks=True needs the store the records came from, to read per-sample logs")
    query = records if isinstance(records, StoreQuery) else StoreQuery(records)
    names = query.names  # from every record, so a name reads the same in each suite
    wanted = set(tasks) if tasks is not None else None

    notes: list[str] = []
    rows: list[_Row] = []
    cells_by_label: dict[str, list[tuple[MetricValue, RunRecord]]] = defaultdict(list)
    for (fingerprint, run_id), choices in _groups(query, wanted, keep_history).items():
        name = names[fingerprint]
        for choice in choices:
            note = duplicate_note(choice, name, run_id if keep_history else None)
            if note is not None:
                notes.append(note)
        chosen = [choice.record for choice in choices]
        row = _model_row(chosen[-1], names, keep_history, run_id)  # choices keep time order
        for record in chosen:
            value = record.metrics.get(record.task.primary_metric)
            if value is None:
                notes.append(
                    f"{row.values['model']}: {record.task.name} record {record.record_id} has no value for "
                    f"its primary metric {record.task.primary_metric!r}; left out"
                )
                continue
            label = f"{record.task.name}/{record.task.primary_metric}"
            row.values.update(_metric_cells(label, value, normalized))
            row.shown[label] = record
            cells_by_label[label].append((value, record))
        _summarize(row, normalized)
        row.values.update(_extras.efficiency_values(chosen))
        row.values.update(_extras.long_context_values(chosen))
        rows.append(row)

    rows.sort(key=_row_order)
    # A suite's columns keep the suite's order; otherwise tasks are alphabetical.
    position = {name: index for index, name in enumerate(tasks or ())}
    labels = sorted(
        cells_by_label, key=lambda label: (position.get(cells_by_label[label][0][1].task.name, 0), label)
    )
    columns = tuple(_describe_column(label, cells_by_label[label], normalized) for label in labels)
    if normalized:
        notes += _chance_notes(columns)
    efficiency = tuple(key for key in EFFICIENCY_COLUMNS if any(key in row.values for row in rows))
    long_context = tuple(
        sorted({key for row in rows for key in row.values if key.endswith(LONG_CONTEXT_SUFFIX)})
    )
    memory_axis, pareto = _add_pareto(rows, efficiency)
    if ranks:
        assert store is not None
        notes += _add_ranks(rows, columns, store)
    return Leaderboard(
        frame=_to_frame(rows, columns, keep_history, ranks, efficiency, long_context, pareto),
        columns=columns,
        notes=tuple(notes),
        errors=error_rows(query, keep_history=keep_history, tasks=wanted),
        keep_history=keep_history,
        ranked=ranks,
        efficiency_columns=efficiency,
        long_context_columns=long_context,
        memory_axis=memory_axis,
        pareto_columns=pareto,
    )


def error_rows(
    records: Iterable[RunRecord] | StoreQuery,
    *,
    keep_history: bool = False,
    tasks: Collection[str] | None = None,
) -> pd.DataFrame:
    """Failed runs, one row each, oldest first (only of ``tasks``, when given).

    By default only failures that are still current are listed: an error record followed by a
    later ``ok`` record for the same model and task name was fixed by a rerun and would only be
    noise. ``keep_history=True`` lists every error record.
    """
    query = records if isinstance(records, StoreQuery) else StoreQuery(records)
    names = query.names
    if keep_history:
        failed = [record for record in query.records if record.status == "error"]
    else:
        failed = query.current_failures()
    if tasks is not None:
        failed = [record for record in failed if record.task.name in tasks]
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


# -- rows ----------------------------------------------------------------------------------------


def _groups(
    query: StoreQuery, tasks: Collection[str] | None, keep_history: bool
) -> dict[tuple[str, str], list[Choice]]:
    """(model fingerprint, run id or "") -> the results a row shows, in time order.

    A row is a model under the shared rule; with ``keep_history`` it is a model's run, and the
    same rule applies within the run.
    """
    groups: dict[tuple[str, str], list[Choice]] = defaultdict(list)
    if keep_history:
        runs: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
        for record in query.records:
            if tasks is None or record.task.name in tasks:
                runs[(record.model.fingerprint, record.run_id)].append(record)
        for key, group in runs.items():
            if choices := choose_latest(group):
                groups[key] = choices
        return groups
    for choice in query.choices():
        if tasks is None or choice.record.task.name in tasks:
            groups[(choice.record.model.fingerprint, "")].append(choice)
    return groups


def _model_row(latest: RunRecord, names: dict[str, str], keep_history: bool, run_id: str) -> _Row:
    values: dict[str, object] = {
        "model": names[latest.model.fingerprint],
        "fingerprint": latest.model.fingerprint,
        "family": latest.model.family,
        "parameters": latest.model.parameters,
        "quantization": latest.model.quantization,
        "bytes_on_disk": latest.model.bytes_on_disk,
    }
    if keep_history:
        values["run_id"] = run_id
        values["finished_at"] = latest.finished_at
    return _Row(values)


def _metric_cells(label: str, value: MetricValue, normalized: bool) -> dict[str, object]:
    low, high = interval(value) or (math.nan, math.nan)
    cells: dict[str, object] = {
        label: value.value,
        label + STDERR_SUFFIX: math.nan if value.stderr is None else value.stderr,
        label + N_SUFFIX: value.n,
        label + CI_LOW_SUFFIX: low,
        label + CI_HIGH_SUFFIX: high,
    }
    if normalized and value.bounded:
        norm = chance_normalized(value.value, value.chance)
        if norm is not None:
            cells[label + NORM_SUFFIX] = norm
    return cells


def _summarize(row: _Row, normalized: bool) -> None:
    raw = [
        record.metrics[record.task.primary_metric].value
        for record in row.shown.values()
        if record.metrics[record.task.primary_metric].bounded and record.task.kind not in SEPARATE_KINDS
    ]
    raw = [value for value in raw if not math.isnan(value)]
    row.values["mean"] = sum(raw) / len(raw) if raw else math.nan
    row.values["tasks_in_mean"] = len(raw)
    if normalized:
        norm = [row.values[label + NORM_SUFFIX] for label in row.shown if label + NORM_SUFFIX in row.values]
        finite = [float(value) for value in norm if isinstance(value, float) and not math.isnan(value)]
        row.values["mean:norm"] = sum(finite) / len(finite) if finite else math.nan
        row.values["tasks_in_mean:norm"] = len(finite)


def _row_order(row: _Row) -> tuple[object, ...]:
    """Best mean first (no mean last), then by name, then oldest run first."""
    mean = row.values["mean"]
    assert isinstance(mean, float)
    missing = math.isnan(mean)
    return (missing, 0.0 if missing else -mean, row.values["model"], row.values.get("finished_at", ""))


def _chance_notes(columns: Sequence[MetricColumn]) -> list[str]:
    lacking = [column.label for column in columns if column.bounded and not column.normalized]
    if not lacking:
        return []
    return [
        f"no chance level is stored for {', '.join(lacking)} (records from before evalkit stored it, or "
        "a task without fixed choices), so they have no chance-normalized score"
    ]


def _add_pareto(rows: Sequence[_Row], efficiency: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    means = [_float(row.values, "mean") for row in rows]
    peak = [_float(row.values, _extras.PEAK_MEMORY) for row in rows]
    axis = _extras.memory_axis(means, peak)
    memory = [_float(row.values, axis) for row in rows]
    latency = None
    if _extras.LATENCY in efficiency:
        latency = [_float(row.values, _extras.LATENCY) for row in rows]
    flags = _extras.pareto_flags(means, memory, latency)
    for name, values in flags.items():
        for row, flag in zip(rows, values, strict=True):
            row.values[name] = flag
    return axis, tuple(flags)


def _add_ranks(rows: Sequence[_Row], columns: Sequence[MetricColumn], store: ResultsStore) -> list[str]:
    bounded = [(column.label, column.higher_is_better) for column in columns if column.bounded]
    labels = {label for label, _ in bounded}
    shown = [{label: r for label, r in row.shown.items() if label in labels} for row in rows]
    means = [_float(row.values, "mean") for row in rows]
    names = [str(row.values["model"]) for row in rows]
    overall, per_column, notes = compute_ranks(shown, names, means, bounded, store)
    for index, row in enumerate(rows):
        row.values[RANK_COLUMN] = overall[index]
        for label, ranks in per_column.items():
            row.values[label + RANK_SUFFIX] = ranks[index]
    return notes


# -- frame ---------------------------------------------------------------------------------------


def _describe_column(
    label: str, cells: Sequence[tuple[MetricValue, RunRecord]], normalized: bool
) -> MetricColumn:
    first_value, first_record = cells[0]
    bounded = all(value.bounded for value, _ in cells)
    chances = sorted({value.chance for value, _ in cells if value.chance is not None})
    return MetricColumn(
        label=label,
        task=first_record.task.name,
        metric=first_record.task.primary_metric,
        bounded=bounded,
        higher_is_better=first_value.higher_is_better,
        sample_counts=tuple(sorted({value.n for value, _ in cells})),
        task_versions=len({record.task.fingerprint for _, record in cells}),
        normalized=normalized and bounded and bool(chances),
        chance_levels=tuple(chances),
        in_mean=bounded and first_record.task.kind not in SEPARATE_KINDS,
    )


def _to_frame(
    rows: Sequence[_Row],
    columns: Sequence[MetricColumn],
    keep_history: bool,
    ranked: bool,
    efficiency: Sequence[str],
    long_context: Sequence[str],
    pareto: Sequence[str],
) -> pd.DataFrame:
    """The frame in display order (rows are already sorted), with stable dtypes for empty cells."""
    normalized = any(column.normalized for column in columns)
    order = list(MODEL_COLUMNS[:1])
    if keep_history:
        order += HISTORY_COLUMNS
    order += MODEL_COLUMNS[1:]
    order += [RANK_COLUMN] if ranked else []
    order += [*SUMMARY_COLUMNS, *(NORMALIZED_SUMMARY_COLUMNS if normalized else ()), *pareto]
    order += [*efficiency, *long_context]
    dtypes: dict[str, str] = {
        "parameters": "Int64",
        "bytes_on_disk": "Int64",
        "mean": "float64",
        "tasks_in_mean": "int64",
        **{name: "float64" for name in (*efficiency, *long_context)},
        **{name: "bool" for name in pareto},
    }
    if normalized:
        dtypes.update({"mean:norm": "float64", "tasks_in_mean:norm": "int64"})
    if ranked:
        dtypes[RANK_COLUMN] = "Int64"
    for column in columns:
        label = column.label
        suffixes = [STDERR_SUFFIX, N_SUFFIX, CI_LOW_SUFFIX, CI_HIGH_SUFFIX]
        suffixes += [NORM_SUFFIX] if column.normalized else []
        suffixes += [RANK_SUFFIX] if ranked and column.bounded else []
        order += [label, *(label + suffix for suffix in suffixes)]
        dtypes.update({label + suffix: "float64" for suffix in ("", *suffixes)})
        dtypes.update({label + suffix: "Int64" for suffix in (N_SUFFIX, RANK_SUFFIX) if suffix in suffixes})
    frame = pd.DataFrame([row.values for row in rows], columns=order)
    return frame.astype(dtypes)


def _float(values: dict[str, object], key: str) -> float:
    value = values.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
