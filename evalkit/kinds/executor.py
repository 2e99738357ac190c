"""The task-executor contract: every task kind is an executor registered by name.

The runner knows no kind by name. For each (model, task) it looks the task's `kind` up in
`EXECUTORS`, hands the executor the loaded backend, the resolved spec and an `ExecutionContext`
(the run's options and a `RequestServer` that answers requests through the response cache), and
stores the `TaskOutcome` it returns. Built-in kinds (multiple_choice, loglikelihood, generate,
perplexity, long_context, efficiency, lmeval) are registered through entry points in evalkit's
own `pyproject.toml`, exactly as an outside package registers its own (see docs/plugins.md).

An executor:
- `check(spec)`: validates its own part of the spec (cheap: no data is read), raising `SpecError`
  with `spec.where(...)` (file:line); `tasks list` and `tasks show` call it too;
- `prepare(spec)`: when a run is planned, before any model loads, loads and checks what the task
  needs that no model is needed for (its documents, each one's rendered prompt), so bad data fails
  in seconds rather than after the first model has loaded; `run` then reuses it;
- `metrics(spec)`: the metric names it will report, primary first (error records need it too);
- `describe(spec, count=...)`: a catalogue line (sample count, data source) for `tasks list`;
- `preview(spec)`: the first sample as sent, for `tasks show`;
- `run(backend, spec, context)`: does the work and states what ran (`TaskOutcome.ran`).

Optionally, a class attribute `placement` (a `Placement`; read with `placement_of`) says where a
distributed run (`evalkit run --executor ray`) runs the task: "driver" (the default) runs `run`
on the driver, whose backend is a proxy and whose server sends the requests to the workers in
shards; "worker" runs the whole task on one worker (an executor with its own request loop, e.g.
lm-eval's); "node" does too, with nothing else running beside it (timings, e.g. efficiency).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, cast, runtime_checkable

from evalkit.backends import Backend
from evalkit.errors import SpecError, UnknownNameError
from evalkit.kinds.outcome import TaskOutcome
from evalkit.registry import Registry
from evalkit.requests import Request, Result
from evalkit.specs import TaskSpec


class RequestServer(Protocol):
    """Answers requests for one model: the runner's cache, de-duplication and batching."""

    def serve(
        self,
        requests: Sequence[Request],
        *,
        description: str = "",
        prefix_reuse: bool = False,
        batch_size: int | Literal["auto"] | None = None,
    ) -> list[Result]:
        """Every request's result, in order; each distinct request computed at most once.

        `prefix_reuse`: send to a backend's shared-prefix path when it has one (never truncates).
        `batch_size`: this call's batch size instead of the run's (None: the run's).
        """
        ...

    def batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes requests were sent to the backend with so far (sorted, distinct)."""
        ...


@dataclass(frozen=True)
class ExecutionContext:
    """The run's options as they reach an executor (`None`: keep the task's own setting)."""

    server: RequestServer
    limit: int | None = None
    num_fewshot: int | None = None
    seed: int | None = None
    batch_size: int | Literal["auto"] = 16  # "auto": the server finds the largest that fits
    show_progress: bool = True
    beyond_window: Literal["skip", "run"] | None = None


@dataclass(frozen=True)
class CatalogueLine:
    samples: str  # a count, or "-" when not counted / not applicable
    source: str  # where the documents come from, in words


@runtime_checkable
class TaskExecutor(Protocol):
    name: str

    def check(self, spec: TaskSpec) -> None: ...

    def prepare(self, spec: TaskSpec) -> None: ...

    def metrics(self, spec: TaskSpec) -> list[str]: ...

    def describe(self, spec: TaskSpec, *, count: bool) -> CatalogueLine: ...

    def preview(self, spec: TaskSpec) -> list[str]: ...

    def run(self, backend: Backend, spec: TaskSpec, context: ExecutionContext) -> TaskOutcome: ...


Placement = Literal["driver", "worker", "node"]


def placement_of(executor: TaskExecutor) -> Placement:
    """Where a distributed run runs `executor`'s tasks (its optional `placement`; default "driver")."""
    placement = getattr(executor, "placement", "driver")
    if placement not in ("driver", "worker", "node"):
        raise ValueError(f"executor {executor.name!r}: unknown placement {placement!r}")
    return cast(Placement, placement)


def _is_executor(entry: object) -> bool:
    return isinstance(entry, TaskExecutor)


EXECUTORS: Registry[TaskExecutor] = Registry("task kind", "executors", check=_is_executor)


def executor_for(spec: TaskSpec) -> TaskExecutor:
    """The executor of `spec.kind`; an unknown kind is an error at the task file's `kind:` line."""
    try:
        return EXECUTORS.get(spec.kind)
    except UnknownNameError as exc:
        raise SpecError(f"{spec.where('kind')}: {exc}") from None


def check_task(spec: TaskSpec) -> TaskExecutor:
    """Run the kind's own load-time checks; returns its executor."""
    executor = executor_for(spec)
    executor.check(spec)
    return executor
