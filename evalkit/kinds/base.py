"""What every task kind provides: requests from a sample, scores from the results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from evalkit.requests import Request, Result
from evalkit.results.schema import MetricValue
from evalkit.specs.task import TaskSpec


@dataclass(frozen=True)
class PreparedSample:
    """One document turned into the requests that score it."""

    sample_id: str
    prompt: str  # the full context shown to the model (for logs and the sample browser)
    target: str | list[str]
    requests: list[Request]
    doc: dict[str, Any] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class SampleScore:
    sample_id: str
    scores: dict[str, float]  # per-sample metric values (e.g. acc 0/1, logprob)
    response: str | list[float] | None  # generated text or per-choice loglikelihoods
    extra: dict[str, Any] = field(default_factory=dict)


class TaskKind(Protocol):
    name: str
    metric_names: tuple[str, ...]  # every metric this kind can report; the task picks a subset
    uses_prompt: bool  # False when documents are scored as they are (perplexity): no template, no shots

    def prepare(self, task: TaskSpec, doc: dict[str, Any], context: str) -> PreparedSample:
        """Build the requests for `doc`; `context` is the rendered prompt (few-shot included)."""
        ...

    def score(self, task: TaskSpec, sample: PreparedSample, results: Sequence[Result]) -> SampleScore: ...

    def aggregate(self, scores: Sequence[SampleScore], metrics: Sequence[str]) -> dict[str, MetricValue]: ...

    def fewshot_answer(self, task: TaskSpec, doc: dict[str, Any]) -> str:
        """The gold answer text that follows a few-shot example's query."""
        ...

    def document_problem(self, doc: dict[str, Any]) -> str | None:
        """What a canonical document lacks for this kind (checked on every document at load), or None."""
        ...


def is_strings(value: object) -> bool:
    """A non-empty list of strings."""
    return isinstance(value, list) and bool(value) and all(isinstance(item, str) for item in value)
