"""Multiple choice: the loglikelihood of each choice after a shared context.

acc picks the most likely choice; acc_norm divides each loglikelihood by the choice's
length in characters first (lm-eval's convention), which removes the bias toward short
answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalkit.errors import DataError
from evalkit.kinds._stats import mean_metric
from evalkit.kinds.base import PreparedSample, SampleScore, is_strings
from evalkit.requests import LoglikelihoodRequest, LoglikelihoodResult, Result
from evalkit.results.schema import MetricValue
from evalkit.specs.task import TaskSpec


class MultipleChoice:
    name: str = "multiple_choice"
    uses_prompt: bool = True
    metric_names: tuple[str, ...] = ("acc", "acc_norm")

    def prepare(self, task: TaskSpec, doc: dict[str, Any], context: str) -> PreparedSample:
        choices, gold = _choices_and_gold(task, doc)
        contexts = doc.get("contexts")
        requests: list[Any] = []
        if contexts is not None:
            # Partial scoring (Winogrande): each choice has its own context, the continuation is shared.
            prefix = context[: len(context) - len(str(contexts[gold]))]
            requests = [
                LoglikelihoodRequest(prefix + str(ctx), task.target_delimiter + choice)
                for ctx, choice in zip(contexts, choices, strict=True)
            ]
        else:
            requests = [LoglikelihoodRequest(context, task.target_delimiter + choice) for choice in choices]
        return PreparedSample(str(doc["id"]), context, choices[gold], requests, doc)

    def score(self, task: TaskSpec, sample: PreparedSample, results: Sequence[Result]) -> SampleScore:
        logprobs = [_ll(r) for r in results]
        choices, gold = _choices_and_gold(task, sample.doc)
        best = max(range(len(logprobs)), key=logprobs.__getitem__)
        normalised = [lp / max(len(choice), 1) for lp, choice in zip(logprobs, choices, strict=True)]
        best_norm = max(range(len(normalised)), key=normalised.__getitem__)
        return SampleScore(
            sample.sample_id,
            {"acc": float(best == gold), "acc_norm": float(best_norm == gold)},
            logprobs,
            {"gold": gold, "predicted": best, "predicted_norm": best_norm, "num_choices": len(choices)},
        )

    def aggregate(self, scores: Sequence[SampleScore], metrics: Sequence[str]) -> dict[str, MetricValue]:
        # Random guessing scores 1/k on a k-choice question; leaderboards normalise against it.
        chance = sum(1.0 / s.extra["num_choices"] for s in scores) / len(scores) if scores else None
        return {
            m: mean_metric([s.scores[m] for s in scores]).model_copy(update={"chance": chance})
            for m in metrics
        }

    def document_problem(self, doc: dict[str, Any]) -> str | None:
        choices, gold = doc.get("choices"), doc.get("gold")
        if not is_strings(choices):
            return "multiple_choice documents need 'choices', a non-empty list of strings"
        assert isinstance(choices, list)
        if not isinstance(gold, int) or isinstance(gold, bool) or not 0 <= gold < len(choices):
            return f"'gold' must be an index into the {len(choices)} choices, got {gold!r}"
        contexts = doc.get("contexts")
        if contexts is not None and (not is_strings(contexts) or len(contexts) != len(choices)):
            return "'contexts' must be a list of strings, one per choice"
        return None

    def fewshot_answer(self, task: TaskSpec, doc: dict[str, Any]) -> str:
        choices, gold = _choices_and_gold(task, doc)
        return choices[gold]


def _choices_and_gold(task: TaskSpec, doc: dict[str, Any]) -> tuple[list[str], int]:
    try:
        choices = [str(c) for c in doc["choices"]]
        gold = int(doc["gold"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"{task.name}: document {doc.get('id')!r} lacks valid 'choices'/'gold' ({exc})"
        ) from None
    if not 0 <= gold < len(choices):
        raise DataError(
            f"{task.name}: document {doc.get('id')!r} has gold {gold} outside {len(choices)} choices"
        )
    return choices, gold


def _ll(result: Result) -> float:
    assert isinstance(result, LoglikelihoodResult)
    return result.logprob
