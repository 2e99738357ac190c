"""Compare two models (or runs, or single records) task by task with paired tests.

A side is named by a model name (its latest ok record per task), a run id (that run's records;
``RUN:MODEL`` when the run evaluated several models) or a record id. Per task both sides have,
the per-sample scores are matched by sample id and tested with
:func:`~evalkit.report.stats.compare_paired`; over all tasks, the bounded primary metrics are
pooled into one test, as the leaderboard's overall rank does. Significance is judged per test
at p < 0.05 with no correction for testing many tasks, and the report says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evalkit.errors import DataError, UnknownNameError
from evalkit.query import StoreQuery, choose_latest
from evalkit.report._ranks import RANK_SEED, SampleScores, pooled_comparison
from evalkit.report.stats import ALPHA, PairedComparison, compare_paired
from evalkit.results import ResultsStore, RunRecord


@dataclass(frozen=True)
class Selection:
    """One side of a comparison: the records it compares, by task name."""

    name: str  # what the user typed
    label: str  # what it resolved to, e.g. "smollm2-135m (latest per task)"
    records: dict[str, RunRecord]
    store: ResultsStore


@dataclass(frozen=True)
class TaskComparison:
    task: str
    metric: str
    record_a: RunRecord
    record_b: RunRecord
    samples_a: int | None  # samples with a score in A's log (None: no usable log)
    samples_b: int | None
    result: PairedComparison | None  # None when the task could not be tested
    problem: str | None = None  # why it could not

    @property
    def same_task_version(self) -> bool:
        return self.record_a.task.fingerprint == self.record_b.task.fingerprint

    @property
    def bounded(self) -> bool:
        value = self.record_a.metrics.get(self.metric)
        return value.bounded if value is not None else False


@dataclass(frozen=True)
class ModelComparison:
    a: Selection
    b: Selection
    tasks: tuple[TaskComparison, ...]
    overall: PairedComparison | None  # pooled bounded primary metrics; None with --metric or < 2 tasks
    only_a: tuple[str, ...]  # tasks only A has
    only_b: tuple[str, ...]
    alpha: float = ALPHA


def select_records(store: ResultsStore, records: Sequence[RunRecord] | StoreQuery, name: str) -> Selection:
    """Resolve a record id, a run id (or RUN:MODEL) or a model name to records by task name."""
    query = records if isinstance(records, StoreQuery) else StoreQuery(records)
    by_record = {record.record_id: record for record in query.records}
    if name in by_record:
        record = by_record[name]
        if record.status != "ok":
            raise DataError(f"record {name} ({_what(record)}) is a failed run: {record.error or '?'}")
        return Selection(name, f"record {name} ({_what(record)})", {record.task.name: record}, store)
    run_ids = {record.run_id for record in query.records}
    run_id, _, model = name.partition(":")
    if run_id in run_ids and (model or name == run_id):
        return _select_run(store, query, run_id, model or None)
    return _select_model(store, query, name)


def compare_models(
    a: Selection, b: Selection, *, task: str | None = None, metric: str | None = None, seed: int = RANK_SEED
) -> ModelComparison:
    """Paired comparison of B against A on every task both have (or on ``task``)."""
    shared = sorted(a.records.keys() & b.records.keys())
    if not shared:
        raise DataError(
            f"{a.label} and {b.label} share no task (A has {_names(a.records)}; B has {_names(b.records)})"
        )
    if task is not None:
        if task not in shared:
            raise UnknownNameError("task (of those both sides have)", task, shared)
        shared = [task]
    scores_a, scores_b = SampleScores(a.store), SampleScores(b.store)
    tasks = tuple(
        _compare_task(a.records[name], b.records[name], metric, scores_a, scores_b, seed) for name in shared
    )
    tested = [item for item in tasks if item.result is not None]
    if not tested:
        raise DataError(f"no task could be tested: {tasks[0].task}: {tasks[0].problem}")
    overall = None
    if metric is None and len(tested) > 1:
        labels = [_label(item.record_a) for item in tested if item.bounded]
        overall = pooled_comparison(
            {_label(item.record_a): item.record_a for item in tested},
            {_label(item.record_a): item.record_b for item in tested},
            labels,
            scores_a,
            scores_b,
        )
    return ModelComparison(
        a=a,
        b=b,
        tasks=tasks,
        overall=overall,
        only_a=tuple(sorted(a.records.keys() - b.records.keys())) if task is None else (),
        only_b=tuple(sorted(b.records.keys() - a.records.keys())) if task is None else (),
    )


def _compare_task(
    record_a: RunRecord,
    record_b: RunRecord,
    metric: str | None,
    scores_a: SampleScores,
    scores_b: SampleScores,
    seed: int,
) -> TaskComparison:
    metric = metric or record_a.task.primary_metric
    side_a, side_b = scores_a.get(record_a, metric), scores_b.get(record_b, metric)
    counts = (None if side_a is None else len(side_a), None if side_b is None else len(side_b))
    problem = None
    if side_a is None or side_b is None:
        problem = scores_a.missing.get(record_a.record_id) or scores_b.missing.get(record_b.record_id)
    elif not (shared := sorted(side_a.keys() & side_b.keys())):
        problem = "the two per-sample logs share no sample id"
    else:
        result = compare_paired([side_a[i] for i in shared], [side_b[i] for i in shared], metric, seed=seed)
        return TaskComparison(record_a.task.name, metric, record_a, record_b, *counts, result)
    return TaskComparison(record_a.task.name, metric, record_a, record_b, *counts, None, problem)


def _select_run(store: ResultsStore, query: StoreQuery, run_id: str, model: str | None) -> Selection:
    names = query.names
    in_run = [record for record in query.records if record.run_id == run_id and record.status == "ok"]
    models = sorted({names[record.model.fingerprint] for record in in_run})
    if model is not None:
        if model not in models and model not in {record.model.name for record in in_run}:
            raise UnknownNameError(f"model in run {run_id}", model, models)
        in_run = [r for r in in_run if model in (r.model.name, names[r.model.fingerprint])]
        models = sorted({names[record.model.fingerprint] for record in in_run})
    if not in_run:
        raise DataError(f"run {run_id} has no successful records")
    if len(models) > 1:
        raise DataError(
            f"run {run_id} holds records of {len(models)} models ({', '.join(models)}); "
            f"name one as {run_id}:{models[0]}"
        )
    # The shared rule, applied within the run: its latest ok record per task.
    latest = [choice.record for choice in choose_latest(in_run)]
    label = f"run {run_id} ({models[0]})"
    return Selection(run_id if model is None else f"{run_id}:{model}", label, _by_task(latest), store)


def _select_model(store: ResultsStore, query: StoreQuery, name: str) -> Selection:
    fingerprints = query.fingerprints_named(name)
    if not fingerprints:
        known = {record.model.name for record in query.records} | set(query.names.values())
        raise UnknownNameError("model, run or record id", name, known)
    shown = sorted(query.names[fp] for fp in fingerprints)
    if len(shown) > 1:
        raise DataError(f"{name!r} names {len(shown)} models; use one of {', '.join(shown)}")
    latest = query.latest_of_model(fingerprints[0])
    if not latest:
        raise DataError(f"model {name} has no successful records")
    return Selection(name, f"{shown[0]} (latest per task)", _by_task(latest), store)


def _by_task(records: Sequence[RunRecord]) -> dict[str, RunRecord]:
    return {record.task.name: record for record in records}


def _label(record: RunRecord) -> str:
    return f"{record.task.name}/{record.task.primary_metric}"


def _what(record: RunRecord) -> str:
    return f"{record.model.name} / {record.task.name}"


def _names(records: dict[str, RunRecord]) -> str:
    return ", ".join(sorted(records)) or "none"
