"""Cloze loglikelihood (e.g. LAMBADA): is the target the greedy continuation, and how likely is it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalkit.errors import DataError
from evalkit.kinds._stats import exp_of_negative_mean, mean_metric
from evalkit.kinds.base import PreparedSample, SampleScore
from evalkit.requests import LoglikelihoodRequest, LoglikelihoodResult, Result
from evalkit.results.schema import MetricValue
from evalkit.specs.task import TaskSpec


class Loglikelihood:
    name: str = "loglikelihood"
    uses_prompt: bool = True
    metric_names: tuple[str, ...] = ("acc", "perplexity")

    def prepare(self, task: TaskSpec, doc: dict[str, Any], context: str) -> PreparedSample:
        target = _target(task, doc)
        request = LoglikelihoodRequest(context, task.target_delimiter + target)
        return PreparedSample(str(doc["id"]), context, target, [request], doc)

    def score(self, task: TaskSpec, sample: PreparedSample, results: Sequence[Result]) -> SampleScore:
        (result,) = results
        assert isinstance(result, LoglikelihoodResult)
        return SampleScore(
            sample.sample_id,
            {"acc": float(result.is_greedy), "logprob": result.logprob},
            [result.logprob],
            {"num_tokens": result.num_tokens},
        )

    def aggregate(self, scores: Sequence[SampleScore], metrics: Sequence[str]) -> dict[str, MetricValue]:
        out: dict[str, MetricValue] = {}
        for metric in metrics:
            if metric == "acc":
                out[metric] = mean_metric([s.scores["acc"] for s in scores])
            else:
                out[metric] = exp_of_negative_mean([s.scores["logprob"] for s in scores])
        return out

    def document_problem(self, doc: dict[str, Any]) -> str | None:
        if not isinstance(doc.get("target"), str):
            return "loglikelihood documents need 'target', a string"
        return None

    def fewshot_answer(self, task: TaskSpec, doc: dict[str, Any]) -> str:
        return _target(task, doc)


def _target(task: TaskSpec, doc: dict[str, Any]) -> str:
    target = doc.get("target")
    if not isinstance(target, str):
        raise DataError(f"{task.name}: document {doc.get('id')!r} lacks a string 'target'")
    return target
