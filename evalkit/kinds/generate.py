"""Greedy generation scored against reference answers (exact match and containment)."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any

from evalkit.errors import DataError, SpecError
from evalkit.kinds._stats import mean_metric
from evalkit.kinds.base import PreparedSample, SampleScore, is_strings
from evalkit.requests import GenerateRequest, GenerateResult, Result
from evalkit.results.schema import MetricValue
from evalkit.specs.task import AnswerSpec, TaskSpec

_PUNCTUATION = str.maketrans("", "", string.punctuation)


class Generate:
    name: str = "generate"
    uses_prompt: bool = True
    metric_names: tuple[str, ...] = ("exact_match", "contains")

    def prepare(self, task: TaskSpec, doc: dict[str, Any], context: str) -> PreparedSample:
        answers = _answers(task, doc)
        request = GenerateRequest(context, tuple(task.generation.stop), task.generation.max_tokens)
        return PreparedSample(str(doc["id"]), context, answers, [request], doc)

    def score(self, task: TaskSpec, sample: PreparedSample, results: Sequence[Result]) -> SampleScore:
        (result,) = results
        assert isinstance(result, GenerateResult)
        extracted = extract_answer(result.text, task.answer, task.name)
        prediction = normalise(extracted, task.answer)
        references = [normalise(a, task.answer) for a in _answers(task, sample.doc)]
        exact = any(prediction == ref for ref in references)
        contains = any(ref and ref in normalise(result.text, task.answer) for ref in references)
        return SampleScore(
            sample.sample_id,
            {"exact_match": float(exact), "contains": float(contains)},
            result.text,
            {"extracted": extracted, "num_tokens": result.num_tokens},
        )

    def aggregate(self, scores: Sequence[SampleScore], metrics: Sequence[str]) -> dict[str, MetricValue]:
        return {m: mean_metric([s.scores[m] for s in scores]) for m in metrics}

    def document_problem(self, doc: dict[str, Any]) -> str | None:
        if not is_strings(doc.get("answers")):
            return "generate documents need 'answers', a non-empty list of strings"
        return None

    def fewshot_answer(self, task: TaskSpec, doc: dict[str, Any]) -> str:
        return _answers(task, doc)[0]


def extract_answer(text: str, answer: AnswerSpec, task_name: str) -> str:
    """Apply the task's regex: the first capture group (or whole match); '' when nothing matches."""
    if answer.regex is None:
        return text
    try:
        pattern = re.compile(answer.regex)
    except re.error as exc:
        raise SpecError(f"{task_name}: answer.regex {answer.regex!r} is invalid: {exc}") from None
    match = pattern.search(text)
    if match is None:
        return ""
    return match.group(1) if pattern.groups else match.group(0)


def normalise(text: str, answer: AnswerSpec) -> str:
    if answer.strip:
        text = text.strip()
    if answer.ignore_case:
        text = text.lower()
    if answer.ignore_punctuation:
        text = text.translate(_PUNCTUATION)
    return " ".join(text.split()) if answer.strip else text


def _answers(task: TaskSpec, doc: dict[str, Any]) -> list[str]:
    answers = doc.get("answers")
    if not isinstance(answers, list) or not answers:
        raise DataError(f"{task.name}: document {doc.get('id')!r} lacks a non-empty 'answers' list")
    return [str(a) for a in answers]
