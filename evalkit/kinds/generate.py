"""Greedy generation scored against reference answers, as lm-evaluation-harness 0.4.13 scores it.

The answer is extracted from the generation by the task's `answer` block (`_qa_metrics.extract`,
lm-eval's regex filter) and compared with every reference after the same normalisation
(`_qa_metrics.normalise`, lm-eval's exact_match); a sample scores 1 when any reference matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalkit.errors import DataError
from evalkit.kinds._qa_metrics import drop_scores, extract, normalise, squad_scores
from evalkit.kinds._stats import mean_metric
from evalkit.kinds.base import PreparedSample, SampleScore, is_strings
from evalkit.requests import GenerateRequest, GenerateResult, Result
from evalkit.results.schema import MetricValue
from evalkit.specs.task import AnswerSpec, TaskSpec


class Generate:
    name: str = "generate"
    uses_prompt: bool = True
    # exact_match: the `regex` extraction; exact_match_flexible: the `flexible_regex` one;
    # contains: some reference appears anywhere in the normalised generation; f1: DROP's or SQuAD's
    # token F1 (`answer.scorer: drop` or `squad`, which also makes exact_match theirs).
    metric_names: tuple[str, ...] = ("exact_match", "contains", "exact_match_flexible", "f1")

    def prepare(self, task: TaskSpec, doc: dict[str, Any], context: str) -> PreparedSample:
        answers = _answers(task, doc)
        request = GenerateRequest(context, tuple(task.generation.stop), task.generation.max_tokens)
        return PreparedSample(str(doc["id"]), context, answers, [request], doc)

    def score(self, task: TaskSpec, sample: PreparedSample, results: Sequence[Result]) -> SampleScore:
        (result,) = results
        assert isinstance(result, GenerateResult)
        spec = task.answer
        references = _answers(task, sample.doc)
        if spec.scorer != "exact_match":  # DROP's or SQuAD's exact match and token F1
            if spec.scorer == "drop":
                exact, f1 = drop_scores(result.text, _answer_spans(task, sample.doc))
            else:
                exact, f1 = squad_scores(result.text, references)
            scored = {"exact_match": exact, "f1": f1}
            return SampleScore(sample.sample_id, scored, result.text, {"num_tokens": result.num_tokens})
        extracted = extract(result.text, spec.regex, spec.group_select, spec.fallback)
        scores = {
            "exact_match": exact_match(extracted, references, spec),
            "contains": float(
                any(ref and ref in compare_form(result.text, spec) for ref in _compared(references, spec))
            ),
        }
        extra: dict[str, Any] = {"extracted": extracted, "num_tokens": result.num_tokens}
        if spec.flexible_regex is not None:
            flexible = extract(result.text, spec.flexible_regex, -1, spec.fallback)
            scores["exact_match_flexible"] = exact_match(flexible, references, spec)
            extra["extracted_flexible"] = flexible
        return SampleScore(sample.sample_id, scores, result.text, extra)

    def aggregate(self, scores: Sequence[SampleScore], metrics: Sequence[str]) -> dict[str, MetricValue]:
        return {m: mean_metric([s.scores[m] for s in scores]) for m in metrics}

    def document_problem(self, doc: dict[str, Any]) -> str | None:
        if not is_strings(doc.get("answers")):
            return "generate documents need 'answers', a non-empty list of strings"
        return None

    def fewshot_answer(self, task: TaskSpec, doc: dict[str, Any]) -> str:
        return _answers(task, doc)[0]


def exact_match(answer: str, references: Sequence[str], spec: AnswerSpec) -> float:
    """1.0 when the answer equals some reference once both are normalised the task's way."""
    prediction = compare_form(answer, spec)
    return float(any(prediction == ref for ref in _compared(references, spec)))


def compare_form(text: str, spec: AnswerSpec) -> str:
    """`text` as the task compares it (regexes removed, case and punctuation as configured)."""
    if spec.strip:
        text = text.strip()
    return normalise(
        text,
        regexes_to_ignore=spec.regexes_to_ignore,
        ignore_case=spec.ignore_case,
        ignore_punctuation=spec.ignore_punctuation,
        collapse_whitespace=spec.strip,
    )


def _compared(references: Sequence[str], spec: AnswerSpec) -> list[str]:
    return [compare_form(ref, spec) for ref in references]


def _answer_spans(task: TaskSpec, doc: dict[str, Any]) -> list[list[str]]:
    """DROP's gold answers, each a list of spans (a one-span answer per reference without them)."""
    spans = doc.get("answer_spans")
    if spans is None:
        return [[answer] for answer in _answers(task, doc)]
    if not (isinstance(spans, list) and all(is_strings(gold) for gold in spans)):
        raise DataError(f"{task.name}: document {doc.get('id')!r}: 'answer_spans' must be lists of strings")
    return [list(gold) for gold in spans]


def _answers(task: TaskSpec, doc: dict[str, Any]) -> list[str]:
    answers = doc.get("answers")
    if not isinstance(answers, list) or not answers:
        raise DataError(f"{task.name}: document {doc.get('id')!r} lacks a non-empty 'answers' list")
    return [str(a) for a in answers]
