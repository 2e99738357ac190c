"""The `efficiency` task executor: checks, catalogue line, and the measurement as a task outcome."""

from __future__ import annotations

from evalkit.backends import Backend
from evalkit.kinds import CatalogueLine, ExecutionContext, RunFacts, TaskOutcome
from evalkit.specs import TaskSpec


class EfficiencyExecutor:
    name = "efficiency"
    placement = "node"  # on a cluster: the whole task on one worker, alone (timings must not be shared)

    def check(self, spec: TaskSpec) -> None:
        return None  # the block is fully typed (EfficiencySpec); a missing one means the defaults

    def prepare(self, spec: TaskSpec) -> None:
        return None  # random tokens, drawn per model: nothing to load before a model

    def metrics(self, spec: TaskSpec) -> list[str]:
        from evalkit.efficiency._task import HEADLINE_METRICS

        return list(HEADLINE_METRICS)

    def describe(self, spec: TaskSpec, *, count: bool) -> CatalogueLine:
        return CatalogueLine("-", "generated: random-token prompts (no dataset)")

    def preview(self, spec: TaskSpec) -> list[str]:
        return ["source: none (random-token prompts of exact lengths, drawn from the task's seed)"]

    def run(self, backend: Backend, spec: TaskSpec, context: ExecutionContext) -> TaskOutcome:
        """Timed forward passes on seeded random tokens. `limit`, shots and the batch size do not
        apply (the record says so); `seed` replaces the task's token seed."""
        from evalkit.efficiency._task import run_efficiency_task

        measured = run_efficiency_task(backend, spec, seed=context.seed)
        ran = RunFacts(
            executor=self.name,
            limit=None,
            limit_unit="none",
            seed=measured.seed,
            batch_size=None,
            batch_sizes=(),
            num_fewshot=0,
            num_documents=0,
        )
        return TaskOutcome(measured.task, measured.metrics, [], ran, efficiency=measured.figures)


EFFICIENCY = EfficiencyExecutor()
