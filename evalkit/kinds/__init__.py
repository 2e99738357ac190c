"""Task kinds: how a document becomes requests, and how results become metrics.

Public API:
    get_kind(name) -> TaskKind
    KINDS          -> the registered kind names
"""

from __future__ import annotations

from evalkit.errors import SpecError, UnknownNameError
from evalkit.kinds.base import PreparedSample, SampleScore, TaskKind
from evalkit.kinds.generate import Generate
from evalkit.kinds.loglikelihood import Loglikelihood
from evalkit.kinds.multiple_choice import MultipleChoice
from evalkit.kinds.perplexity import Perplexity
from evalkit.specs.task import TaskSpec

__all__ = ["KINDS", "PreparedSample", "SampleScore", "TaskKind", "get_kind", "metrics_for"]

KINDS: dict[str, TaskKind] = {
    kind.name: kind for kind in (MultipleChoice(), Loglikelihood(), Generate(), Perplexity())
}


def get_kind(name: str) -> TaskKind:
    kind = KINDS.get(name)
    if kind is None:
        raise UnknownNameError("task kind", name, KINDS)
    return kind


def metrics_for(task: TaskSpec) -> list[str]:
    """The task's metrics, checked against its kind (the first one is the primary metric)."""
    kind = get_kind(task.kind)
    chosen = task.metrics if task.metrics is not None else list(kind.metric_names)
    for metric in chosen:
        if metric not in kind.metric_names:
            from evalkit.errors import did_you_mean

            hint = did_you_mean(metric, kind.metric_names)
            extra = (
                f"; did you mean {hint}?" if hint else f"; {task.kind} offers {', '.join(kind.metric_names)}"
            )
            raise SpecError(f"{task.source_file or task.name}: unknown metric {metric!r}{extra}")
    if not chosen:
        raise SpecError(f"{task.source_file or task.name}: metrics must not be empty")
    return list(chosen)
