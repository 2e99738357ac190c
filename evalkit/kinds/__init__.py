"""Task kinds: each is a task executor registered by name (see `evalkit.kinds.executor`).

Public API:
    EXECUTORS                     the registry of task executors (entry-point group evalkit.executors)
    executor_for(spec)            the executor of a task's kind; check_task(spec) also runs its checks
    TaskExecutor, ExecutionContext, RequestServer, CatalogueLine   the contract
    TaskOutcome, RunFacts         what an executor returns
    task_facts, fingerprint_json, task_fingerprint   the one way executors describe a task
    DocumentExecutor, TaskKind    the shared pipeline of the document kinds, and one kind's logic
    get_kind(name), metrics_for(spec)   a document kind's logic; a task's metric names
    mean_metric(values)           a mean with its standard error and interval, as every kind reports it
"""

from __future__ import annotations

from evalkit.errors import SpecError
from evalkit.kinds._stats import mean_metric
from evalkit.kinds.base import PreparedSample, SampleScore, TaskKind
from evalkit.kinds.executor import (
    EXECUTORS,
    CatalogueLine,
    ExecutionContext,
    RequestServer,
    TaskExecutor,
    check_task,
    executor_for,
)
from evalkit.kinds.outcome import (
    UNAVAILABLE_SOURCE,
    RunFacts,
    TaskOutcome,
    fingerprint_json,
    task_facts,
    task_fingerprint,
)
from evalkit.specs import TaskSpec

__all__ = [
    "EXECUTORS",
    "UNAVAILABLE_SOURCE",
    "CatalogueLine",
    "DocumentExecutor",
    "ExecutionContext",
    "PreparedSample",
    "RequestServer",
    "RunFacts",
    "SampleScore",
    "TaskExecutor",
    "TaskKind",
    "TaskOutcome",
    "check_task",
    "executor_for",
    "fingerprint_json",
    "get_kind",
    "mean_metric",
    "metrics_for",
    "task_facts",
    "task_fingerprint",
]


def get_kind(name: str) -> TaskKind:
    """The request-building and scoring logic of a document kind (multiple_choice, generate, ...)."""
    from evalkit.kinds.documents import DocumentExecutor

    executor = EXECUTORS.get(name)
    if not isinstance(executor, DocumentExecutor):
        raise SpecError(f"task kind {name!r} is not a document kind")
    return executor.kind


def metrics_for(task: TaskSpec) -> list[str]:
    """The task's metrics, checked against its kind (the first one is the primary metric)."""
    return executor_for(task).metrics(task)


def __getattr__(name: str) -> object:
    if name == "DocumentExecutor":  # imports sources: loaded when asked for
        from evalkit.kinds.documents import DocumentExecutor

        return DocumentExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
