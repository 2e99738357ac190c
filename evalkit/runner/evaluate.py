"""`evaluate()`: every model on every task, one run record per pair.

A failing task (bad data, out of memory, a backend bug) becomes an `error` record and
the run goes on; bad names and malformed specs fail before any model is loaded.
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from evalkit import __version__
from evalkit.backends import Backend, load_model, parse_model_spec, resolve_alias
from evalkit.errors import EvalkitError
from evalkit.results.provenance import git_sha, host_facts, library_versions
from evalkit.results.schema import DataSourceFacts, RunConfig, RunRecord, SampleLog, TaskFacts
from evalkit.results.store import ResultsStore
from evalkit.runner.cache import NullCache, ResponseCache
from evalkit.runner.plan import LMEVAL_PREFIX, TaskSelection, plan_tasks
from evalkit.runner.task_run import TaskOutcome, fingerprint_json, run_task
from evalkit.specs.catalogue import Catalogue, default_catalogue
from evalkit.specs.task import TaskSpec

log = logging.getLogger("evalkit")


@dataclass(frozen=True)
class EvalConfig:
    limit: int | None = None  # overrides every suite entry's limit
    seed: int | None = None  # few-shot seed; None keeps each task's own
    batch_size: int = 16
    num_fewshot: int | None = None  # overrides the task's and the suite's
    use_cache: bool = True
    show_progress: bool = True
    results_dir: Path | None = Path("results")  # None: do not store
    beyond_window: str | None = None  # long_context: "skip" | "run" overrides the tasks' own setting


@dataclass
class RunSummary:
    records: list[RunRecord] = field(default_factory=list)
    input_errors: set[str] = field(default_factory=set)  # record ids that failed on bad input

    @property
    def exit_code(self) -> int:
        """0 all ok; 2 if a task failed on bad input (data, spec); 1 if only internal failures."""
        if not self.failed:
            return 0
        return 2 if self.input_errors else 1

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.records if r.status == "error"]


def evaluate(
    models: Sequence[str | Backend],
    tasks: Sequence[str] | None = None,
    *,
    suite: str | None = None,
    config: EvalConfig | None = None,
    catalogue: Catalogue | None = None,
    on_record: Callable[[RunRecord], None] | None = None,
) -> RunSummary:
    """Evaluate each model on each task; returns (and stores) one record per pair."""
    config = config or EvalConfig()
    catalogue = catalogue or default_catalogue()
    selections = plan_tasks(catalogue, list(tasks) if tasks is not None else None, suite)
    for model in models:  # fail on a bad model name before spending minutes on the first model
        if isinstance(model, str):
            resolve_alias(parse_model_spec(model))
    store = ResultsStore(config.results_dir) if config.results_dir is not None else None
    cache = ResponseCache() if config.use_cache else NullCache()
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
    summary = RunSummary()
    try:
        for model in models:
            backend = load_model(model) if isinstance(model, str) else model
            for selection in selections:
                record, samples, input_error = _run_one(backend, selection, catalogue, config, cache, run_id)
                if store is not None:
                    record = store.append(record, samples)
                summary.records.append(record)
                if input_error:
                    summary.input_errors.add(record.record_id)
                if on_record is not None:
                    on_record(record)
    finally:
        cache.close()
    return summary


def _run_one(
    backend: Backend,
    selection: TaskSelection,
    catalogue: Catalogue,
    config: EvalConfig,
    cache: ResponseCache | NullCache,
    run_id: str,
) -> tuple[RunRecord, list[SampleLog] | None, bool]:
    started = datetime.now(UTC)
    clock = time.perf_counter()
    limit = config.limit if config.limit is not None else selection.limit
    num_fewshot = config.num_fewshot if config.num_fewshot is not None else selection.num_fewshot
    facts = backend.describe()
    outcome: TaskOutcome | None = None
    error: str | None = None
    input_error = False
    try:
        if selection.is_lmeval:
            from evalkit.interop.lmeval import run_lmeval_task

            lm = run_lmeval_task(
                backend,
                selection.name[len(LMEVAL_PREFIX) :],
                limit=limit,
                num_fewshot=num_fewshot,
                seed=config.seed if config.seed is not None else 1234,
                batch_size=config.batch_size,
            )
            outcome = TaskOutcome(lm.task, lm.metrics, lm.samples, lm.task.num_fewshot, config.seed or 1234)
        else:
            outcome = run_task(
                backend,
                _with_beyond_window(selection.resolve(catalogue), config.beyond_window),
                limit=limit,
                num_fewshot=num_fewshot,
                seed=config.seed,
                batch_size=config.batch_size,
                cache=cache,
                show_progress=config.show_progress,
            )
    except EvalkitError as exc:
        error, input_error = str(exc), True
    except Exception as exc:  # one broken task must not end the run (e.g. out of memory)
        log.debug("task %s failed", selection.name, exc_info=True)
        error = f"{type(exc).__name__}: {exc} [{_where(exc)}]"
    finished = datetime.now(UTC)
    task_facts = outcome.task if outcome is not None else _failed_task_facts(selection, catalogue)
    record = RunRecord(
        record_id=uuid.uuid4().hex,
        run_id=run_id,
        started_at=started.isoformat(timespec="seconds"),
        finished_at=finished.isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - clock, 3),
        evalkit_version=__version__,
        git_sha=git_sha(),
        model=facts,
        task=task_facts,
        config=RunConfig(
            limit=limit,
            seed=outcome.seed if outcome is not None else (config.seed or 0),
            batch_size=config.batch_size,
            num_fewshot=outcome.num_fewshot if outcome is not None else (num_fewshot or 0),
            chat_template=facts.chat_template,
        ),
        metrics=outcome.metrics if outcome is not None else {},
        efficiency=outcome.efficiency if outcome is not None else None,
        long_context=outcome.long_context if outcome is not None else None,
        host=host_facts(),
        libraries=library_versions(),
        status="ok" if error is None else "error",
        error=error,
    )
    return record, (outcome.samples if outcome is not None else None), input_error


def _with_beyond_window(spec: TaskSpec, beyond_window: str | None) -> TaskSpec:
    if beyond_window is None or spec.long_context is None:
        return spec
    grid = spec.long_context.model_copy(update={"beyond_window": beyond_window})
    return spec.model_copy(update={"long_context": grid})


def _failed_task_facts(selection: TaskSelection, catalogue: Catalogue) -> TaskFacts:
    """Task facts for an error record: as much as is known without the data."""
    kind, spec_file, primary, spec_json = "lmeval", None, "", selection.name
    if not selection.is_lmeval:
        try:
            spec = catalogue.task(selection.name)
            kind, spec_file, spec_json = spec.kind, spec.source_file, fingerprint_json(spec)
            primary = (spec.metrics or [""])[0]
        except EvalkitError:
            pass
    return TaskFacts(
        name=selection.name,
        kind=kind,
        fingerprint=hashlib.sha256(spec_json.encode()).hexdigest(),
        spec_file=spec_file,
        primary_metric=primary,
        num_fewshot=selection.num_fewshot or 0,
        num_samples=0,
        source=DataSourceFacts(
            origin="unavailable", format="", location="", split="", num_documents=0, content_sha256=""
        ),
    )


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno}"
