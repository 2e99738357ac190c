"""The runner: plans a run, serves requests through the cache, and stores run records.

Public API:
    evaluate(models, tasks=None, suite=None, config=EvalConfig()) -> RunSummary
"""

from evalkit.runner.evaluate import EvalConfig, RunSummary, evaluate
from evalkit.runner.plan import TaskSelection, plan_tasks

__all__ = ["EvalConfig", "RunSummary", "TaskSelection", "evaluate", "plan_tasks"]
