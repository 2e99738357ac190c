"""Which tasks a run covers: task names, suites, and per-entry overrides."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from evalkit.errors import SpecError
from evalkit.kinds import check_task, executor_for
from evalkit.specs import Catalogue, TaskSpec

LMEVAL_PREFIX = "lmeval:"


@dataclass(frozen=True)
class TaskSelection:
    name: str  # a catalogue task, or "lmeval:<lm-eval task name>"
    limit: int | None = None  # from a suite entry; --limit overrides it
    num_fewshot: int | None = None
    lengths: list[int] | None = None  # long_context grid overrides from a suite entry
    depths: list[float] | None = None
    params: dict[str, Any] | None = None
    sweep: list[int] | None = None
    spec: TaskSpec | None = None  # the resolved, checked spec (set by plan_tasks)

    def resolve(self, catalogue: Catalogue) -> TaskSpec:
        """The task as it will run: an `lmeval:` task, or the catalogue task with this entry's
        grid overrides applied (long_context tasks), checked by its kind's executor."""
        if self.is_lmeval:
            try:
                return TaskSpec(name=self.name, kind="lmeval")
            except ValueError:
                raise SpecError(f"--tasks: {self.name!r} is not a valid lm-eval task name") from None
        spec = catalogue.task(self.name)
        if self.has_grid_overrides:
            from evalkit.longcontext import with_grid

            spec = with_grid(spec, self.lengths, self.depths, self.params, self.sweep)
        check_task(spec)
        return spec

    @property
    def has_grid_overrides(self) -> bool:
        return any(v is not None for v in (self.lengths, self.depths, self.params, self.sweep))

    @property
    def is_lmeval(self) -> bool:
        return self.name.startswith(LMEVAL_PREFIX)


def plan_tasks(
    catalogue: Catalogue, tasks: list[str] | None, suite: str | Sequence[str] | None
) -> list[TaskSelection]:
    """Resolve --tasks/--suite into selections; every name is checked before any model loads.

    Several suites run as one list, in the order given (one model load covers them all); a task in
    two of them is an error, as a task listed twice is.
    """
    suites = [suite] if isinstance(suite, str) else list(suite or [])
    if bool(tasks) == bool(suites):
        raise SpecError("give exactly one of --tasks or --suite")
    selections: list[TaskSelection]
    if suites:
        selections = [
            TaskSelection(e.task, e.limit, e.num_fewshot, e.lengths, e.depths, e.params, e.sweep)
            for name in suites
            for e in catalogue.suite(name).tasks
        ]
    else:
        selections = [TaskSelection(name.strip()) for name in tasks or [] if name.strip()]
        if not selections:
            raise SpecError("--tasks: no task names given")
    seen: set[str] = set()
    for selection in selections:
        if selection.name in seen:
            where = f" (suites {', '.join(suites)})" if len(suites) > 1 else ""
            raise SpecError(f"task {selection.name!r} is listed twice{where}")
        seen.add(selection.name)
        if selection.is_lmeval and not selection.name[len(LMEVAL_PREFIX) :]:
            raise SpecError("--tasks: 'lmeval:' needs an lm-eval task name, e.g. lmeval:arc_easy")
    # Every spec is resolved and checked by its executor now, and everything a task needs that no
    # model is needed for (documents, rendered prompts) is loaded and checked: bad input fails in
    # seconds, before any model loads. Errors are UnknownNameError / SpecError / DataError.
    planned = [replace(selection, spec=selection.resolve(catalogue)) for selection in selections]
    for selection in planned:
        assert selection.spec is not None
        executor_for(selection.spec).prepare(selection.spec)
    return planned
