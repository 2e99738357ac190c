"""The `lmeval` task executor: `--tasks lmeval:NAME` runs lm-eval's own task NAME on any backend."""

from __future__ import annotations

from evalkit.backends import Backend
from evalkit.errors import SpecError
from evalkit.kinds import CatalogueLine, ExecutionContext, RunFacts, TaskOutcome
from evalkit.specs import TaskSpec

# lm-eval's own default seed for few-shot sampling (its CLI's --seed default for that generator).
LMEVAL_DEFAULT_SEED = 1234

AUTO_REFUSED = (
    "{task}: --batch-size auto is not available for lm-eval tasks (lm-eval batches them itself, "
    "without evalkit's out-of-memory halving); give a number, e.g. --batch-size 16"
)


class LmEvalExecutor:
    name = "lmeval"
    placement = "worker"  # on a cluster: the whole task on one worker (lm-eval runs its own loop)

    def check(self, spec: TaskSpec) -> None:
        return None  # the name is checked by lm-eval's index when the task loads

    def prepare(self, spec: TaskSpec) -> None:
        return None  # lm-eval loads its own task and data when it runs

    def metrics(self, spec: TaskSpec) -> list[str]:
        return []  # known only once lm-eval has loaded the task

    def describe(self, spec: TaskSpec, *, count: bool) -> CatalogueLine:
        return CatalogueLine("-", "lm-eval's own task (its dataset, prompts and metrics)")

    def preview(self, spec: TaskSpec) -> list[str]:
        return ["source: lm-eval's own task definition"]

    def run(self, backend: Backend, spec: TaskSpec, context: ExecutionContext) -> TaskOutcome:
        """lm-eval's evaluator with evalkit's backend answering. lm-eval batches by itself with the
        run's batch size and does not go through evalkit's response cache."""
        if context.batch_size == "auto":  # lm-eval calls the backend itself: no halving on the way
            raise SpecError(AUTO_REFUSED.format(task=spec.name))
        from evalkit.interop.lmeval import LMEVAL_PREFIX, run_lmeval_task

        seed = LMEVAL_DEFAULT_SEED if context.seed is None else context.seed
        outcome = run_lmeval_task(
            backend,
            spec.name.removeprefix(LMEVAL_PREFIX),
            limit=context.limit,
            num_fewshot=context.num_fewshot,
            seed=seed,
            batch_size=context.batch_size,
        )
        ran = RunFacts(
            executor=self.name,
            limit=context.limit,
            limit_unit="documents",
            seed=seed,
            batch_size=context.batch_size,
            batch_sizes=(context.batch_size,),
            num_fewshot=outcome.task.num_fewshot,
            num_documents=outcome.task.num_samples,
        )
        return TaskOutcome(outcome.task, outcome.metrics, outcome.samples, ran)


LMEVAL = LmEvalExecutor()
