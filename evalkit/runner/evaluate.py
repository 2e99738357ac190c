"""`evaluate()`: every model on every task, one run record per pair.

A failing task (bad data, out of memory, a backend bug) becomes an `error` record and
the run goes on; bad names and malformed specs fail before any model is loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from evalkit import __version__
from evalkit.backends import Backend, load_model, parse_model_spec, resolve_alias
from evalkit.errors import EvalkitError, SpecError
from evalkit.kinds import (
    UNAVAILABLE_SOURCE,
    ExecutionContext,
    RequestServer,
    TaskExecutor,
    TaskOutcome,
    executor_for,
    fingerprint_json,
)
from evalkit.paths import cache_dir, check_writable_dir, task_file_locator
from evalkit.results import HostFacts, ResultsStore, RunConfig, RunRecord, SampleLog, TaskFacts
from evalkit.results.provenance import git_sha, host_facts, library_versions
from evalkit.runner.cache import NullCache, ResponseCache
from evalkit.runner.cluster import ClusterOptions, check_cluster_run
from evalkit.runner.execute import BatchSize, Cache, CachedServer
from evalkit.runner.plan import TaskSelection, plan_tasks
from evalkit.specs import Catalogue, TaskSpec, default_catalogue

log = logging.getLogger("evalkit")


@dataclass(frozen=True)
class EvalConfig:
    limit: int | None = None  # overrides every suite entry's limit
    seed: int | None = None  # few-shot seed; None keeps each task's own
    batch_size: int | Literal["auto"] = 16  # "auto": the largest that fits, found by trying (execute.py)
    num_fewshot: int | None = None  # overrides the task's and the suite's
    use_cache: bool = True
    show_progress: bool = True
    results_dir: Path | None = Path("results")  # None: do not store
    beyond_window: Literal["skip", "run"] | None = None  # long_context: overrides the tasks' own setting
    force: bool = False  # rerun pairs whose identical record is already stored (default: skip them)
    cluster: ClusterOptions | None = None  # None: run in this process; else on Ray (--executor ray)


@dataclass
class RunSummary:
    records: list[RunRecord] = field(default_factory=list)
    input_errors: set[str] = field(default_factory=set)  # record ids that failed on bad input
    # pairs not run because the store already held their identical ok record (see EvalConfig.force)
    reused: list[RunRecord] = field(default_factory=list)

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
    suite: str | Sequence[str] | None = None,
    config: EvalConfig | None = None,
    catalogue: Catalogue | None = None,
    on_record: Callable[[RunRecord], None] | None = None,
    on_reused: Callable[[RunRecord], None] | None = None,
) -> RunSummary:
    """Evaluate each model on each task; returns (and stores) one record per pair.

    A pair whose identical ok record is already in the store (same model fingerprint, task spec,
    limit, shots, seed and evalkit version) is not run again unless `config.force`: rerunning an
    interrupted command finishes it instead of storing everything twice. `on_reused` hears of each.
    """
    config = config or EvalConfig()
    catalogue = catalogue or default_catalogue()
    selections = plan_tasks(catalogue, list(tasks) if tasks is not None else None, suite)
    lmeval_tasks = [s.name for s in selections if s.is_lmeval]
    if config.batch_size == "auto" and lmeval_tasks:  # lm-eval batches them itself: no halving
        raise SpecError(
            f"--batch-size auto: not available for lm-eval tasks ({', '.join(lmeval_tasks)}); give a number"
        )
    store = ResultsStore(config.results_dir) if config.results_dir is not None else None
    if store is not None:
        store.check_writable()  # an unwritable results folder must fail now, not after the work
    specs = [parse_model_spec(model) for model in models if isinstance(model, str)]
    if not all(spec.backend == "fake" or (spec.backend, spec.target) == ("alias", "fake") for spec in specs):
        # Real models write converted weights, file hashes and assembled GGUF files to the cache
        # even with --no-cache (which concerns responses only): check it before any of that.
        check_writable_dir(cache_dir(), "cache folder", hint="set EVALKIT_CACHE_DIR to a writable folder")
    for spec in specs:  # fail on a bad model name before spending minutes on the first model
        resolve_alias(spec)
    if config.cluster is not None:
        check_cluster_run(models)  # Ray installed, models given as specs
    cache = ResponseCache() if config.use_cache else NullCache()  # checks its folder and file
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
    summary = RunSummary()
    try:
        with _host(config) as host:  # local: this process; ray: Ray for the run, workers per model
            for model in models:
                with host.model(model) as served:
                    backend = served.backend
                    stored = {} if store is None or config.force else _stored_by_request(store, backend)
                    for selection in selections:
                        previous = stored.get(request_key(backend, selection, catalogue, config))
                        if previous is not None:
                            summary.reused.append(previous)
                            if on_reused is not None:
                                on_reused(previous)
                            continue
                        record, samples, input_error = _run_one(
                            served, selection, catalogue, config, cache, run_id
                        )
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


class ServedModel(Protocol):
    """A model as a run uses it: its backend (a proxy on Ray), a RequestServer, task placement."""

    @property
    def backend(self) -> Backend: ...

    def server(self, cache: Cache, *, batch_size: BatchSize, show_progress: bool) -> RequestServer: ...

    def run(
        self, executor: TaskExecutor, spec: TaskSpec, context: ExecutionContext
    ) -> tuple[TaskOutcome, HostFacts | None]:
        """The outcome, and the facts of the host it ran on when that is not this one."""
        ...


class ModelHost(Protocol):
    def model(self, model: str | Backend) -> contextlib.AbstractContextManager[ServedModel]: ...


@dataclass(frozen=True)
class _LocalModel:
    backend: Backend

    def server(self, cache: Cache, *, batch_size: BatchSize, show_progress: bool) -> RequestServer:
        return CachedServer(self.backend, cache, batch_size=batch_size, show_progress=show_progress)

    def run(
        self, executor: TaskExecutor, spec: TaskSpec, context: ExecutionContext
    ) -> tuple[TaskOutcome, HostFacts | None]:
        return executor.run(self.backend, spec, context), None


class _LocalHost:
    @contextlib.contextmanager
    def model(self, model: str | Backend) -> Iterator[ServedModel]:
        yield _LocalModel(load_model(model) if isinstance(model, str) else model)


@contextlib.contextmanager
def _host(config: EvalConfig) -> Iterator[ModelHost]:
    if config.cluster is None:
        yield _LocalHost()
        return
    from evalkit.runner.cluster import RayExecutor

    with RayExecutor(config.cluster) as ray_host:
        yield ray_host


def _run_one(
    served: ServedModel,
    selection: TaskSelection,
    catalogue: Catalogue,
    config: EvalConfig,
    cache: ResponseCache | NullCache,
    run_id: str,
) -> tuple[RunRecord, list[SampleLog] | None, bool]:
    started = datetime.now(UTC)
    clock = time.perf_counter()
    backend = served.backend
    ran_on: HostFacts | None = None
    context = ExecutionContext(
        server=served.server(cache, batch_size=config.batch_size, show_progress=config.show_progress),
        limit=config.limit if config.limit is not None else selection.limit,
        num_fewshot=config.num_fewshot if config.num_fewshot is not None else selection.num_fewshot,
        seed=config.seed,
        batch_size=config.batch_size,
        show_progress=config.show_progress,
        beyond_window=config.beyond_window,
    )
    facts = backend.describe()
    outcome: TaskOutcome | None = None
    error: str | None = None
    input_error = False
    try:
        spec = selection.spec if selection.spec is not None else selection.resolve(catalogue)
        outcome, ran_on = served.run(executor_for(spec), spec, context)
    except EvalkitError as exc:
        error, input_error = str(exc), True
    except Exception as exc:  # one broken task must not end the run (e.g. out of memory)
        log.debug("task %s failed", selection.name, exc_info=True)
        error = f"{type(exc).__name__}: {exc} [{_where(exc)}]"
    finished = datetime.now(UTC)
    if outcome is not None:
        ran = outcome.ran
        run_config = RunConfig(
            executor=ran.executor,
            limit=ran.limit,
            limit_unit=ran.limit_unit,
            seed=ran.seed,
            batch_size=ran.batch_size,
            batch_sizes=list(ran.batch_sizes),
            num_fewshot=ran.num_fewshot,
            num_documents=ran.num_documents,
            chat_template=facts.chat_template,
            request_key=request_key(backend, selection, catalogue, config),
        )
    else:  # nothing ran: the record states what was asked for
        run_config = RunConfig(
            executor=_kind_of(selection, catalogue),
            limit=context.limit,
            seed=context.seed,
            batch_size=context.batch_size,
            num_fewshot=context.num_fewshot or 0,
            num_documents=0,
            chat_template=facts.chat_template,
        )
    record = RunRecord(
        record_id=uuid.uuid4().hex,
        run_id=run_id,
        started_at=started.isoformat(timespec="seconds"),
        finished_at=finished.isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - clock, 3),
        evalkit_version=__version__,
        git_sha=git_sha(),
        model=facts,
        task=outcome.task if outcome is not None else _failed_task_facts(selection, catalogue),
        config=run_config,
        metrics=outcome.metrics if outcome is not None else {},
        efficiency=outcome.efficiency if outcome is not None else None,
        long_context=outcome.long_context if outcome is not None else None,
        host=ran_on or host_facts(),
        libraries=library_versions(),
        status="ok" if error is None else "error",
        error=error,
    )
    return record, (outcome.samples if outcome is not None else None), input_error


def request_key(backend: Backend, selection: TaskSelection, catalogue: Catalogue, config: EvalConfig) -> str:
    """What a pair asks for, hashed: equal keys ask for the same work (batch size is not part of it:
    a backend answers the same whatever its batch size)."""
    spec = _resolved(selection, catalogue)
    facts = backend.describe()
    asked = {
        "model": facts.fingerprint,
        "task": selection.name,
        "spec": fingerprint_json(spec) if spec is not None else None,
        "limit": config.limit if config.limit is not None else selection.limit,
        "num_fewshot": config.num_fewshot if config.num_fewshot is not None else selection.num_fewshot,
        "seed": config.seed,
        "beyond_window": config.beyond_window,
        "evalkit": __version__,
    }
    if facts.device != "cpu":  # the same weights on a GPU compute other numbers (and timings);
        asked["device"] = facts.device  # CPU keys stay those of records written before devices
    if facts.chat_template:  # the prompts change; plain keys stay those of records written before
        asked["chat"] = json.dumps([facts.fewshot_multiturn, facts.system_prompt])
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode("utf-8")).hexdigest()


def _stored_by_request(store: ResultsStore, backend: Backend) -> dict[str, RunRecord]:
    """This model's stored ok records by request key (the latest wins; unreadable lines are skipped:
    they are reported by the views that read the store)."""
    if not store.root.exists():
        return {}
    fingerprint = backend.describe().fingerprint
    records, _ = store.read()
    return {
        r.config.request_key: r
        for r in records
        if r.status == "ok" and r.config.request_key is not None and r.model.fingerprint == fingerprint
    }


def _resolved(selection: TaskSelection, catalogue: Catalogue) -> TaskSpec | None:
    try:
        return selection.spec if selection.spec is not None else selection.resolve(catalogue)
    except EvalkitError:
        return None


def _kind_of(selection: TaskSelection, catalogue: Catalogue) -> str:
    spec = _resolved(selection, catalogue)
    return spec.kind if spec is not None else ""


def _failed_task_facts(selection: TaskSelection, catalogue: Catalogue) -> TaskFacts:
    """Task facts for an error record: as much as is known without the data."""
    spec = _resolved(selection, catalogue)
    primary, spec_json = "", selection.name
    if spec is not None:
        spec_json = fingerprint_json(spec)
        with contextlib.suppress(EvalkitError):  # an error record needs no primary metric
            primary = (executor_for(spec).metrics(spec) or [""])[0]
    return TaskFacts(
        name=selection.name,
        kind=spec.kind if spec is not None else "",
        fingerprint=hashlib.sha256(spec_json.encode()).hexdigest(),
        spec_file=task_file_locator(spec.source_file) if spec is not None else None,
        primary_metric=primary,
        num_fewshot=selection.num_fewshot or 0,
        num_samples=0,
        source=UNAVAILABLE_SOURCE,
    )


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno}"
