"""Perplexity of whole documents, from rolling loglikelihoods that cover every token once.

Word perplexity and bits per byte are tokenizer-independent, so models with different
vocabularies can be compared; token perplexity is not reported for that reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from evalkit.errors import DataError
from evalkit.kinds._stats import bits_per_byte, weighted_perplexity
from evalkit.kinds.base import PreparedSample, SampleScore
from evalkit.requests import Result, RollingRequest, RollingResult
from evalkit.results.schema import MetricValue
from evalkit.specs.task import TaskSpec


class Perplexity:
    name: str = "perplexity"
    uses_prompt: bool = False
    metric_names: tuple[str, ...] = ("word_perplexity", "byte_perplexity", "bits_per_byte")

    def prepare(self, task: TaskSpec, doc: dict[str, Any], context: str) -> PreparedSample:
        text = doc.get("text")
        if not isinstance(text, str) or not text:
            raise DataError(f"{task.name}: document {doc.get('id')!r} lacks a non-empty 'text'")
        return PreparedSample(str(doc["id"]), text, text, [RollingRequest(text)], doc)

    def score(self, task: TaskSpec, sample: PreparedSample, results: Sequence[Result]) -> SampleScore:
        (result,) = results
        assert isinstance(result, RollingResult)
        text = str(sample.doc["text"])
        return SampleScore(
            sample.sample_id,
            {
                "logprob": result.logprob,
                "words": float(len(re.split(r"\s+", text.strip()))),
                "bytes": float(len(text.encode("utf-8"))),
            },
            [result.logprob],
            {"num_tokens": result.num_tokens},
        )

    def aggregate(self, scores: Sequence[SampleScore], metrics: Sequence[str]) -> dict[str, MetricValue]:
        logprobs = [s.scores["logprob"] for s in scores]
        words = [s.scores["words"] for s in scores]
        num_bytes = [s.scores["bytes"] for s in scores]
        out: dict[str, MetricValue] = {}
        for metric in metrics:
            if metric == "word_perplexity":
                out[metric] = weighted_perplexity(logprobs, words)
            elif metric == "byte_perplexity":
                out[metric] = weighted_perplexity(logprobs, num_bytes)
            else:
                out[metric] = bits_per_byte(logprobs, num_bytes)
        return out

    def document_problem(self, doc: dict[str, Any]) -> str | None:
        if not (isinstance(doc.get("text"), str) and doc["text"]):
            return "perplexity documents need 'text', a non-empty string"
        return None

    def fewshot_answer(self, task: TaskSpec, doc: dict[str, Any]) -> str:
        return ""
