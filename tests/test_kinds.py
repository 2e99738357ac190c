"""Task kinds: requests built from documents, and metrics computed from results."""

from __future__ import annotations

import math
import statistics

import pytest

from evalkit.kinds import get_kind, metrics_for
from evalkit.kinds.prompt import build_context, choose_fewshot, template_fields
from evalkit.requests import GenerateResult, LoglikelihoodRequest, LoglikelihoodResult, RollingResult
from evalkit.specs import TaskSpec
from evalkit.specs.dataset import DatasetSpec


def spec(**fields: object) -> TaskSpec:
    base: dict[str, object] = {"name": "t", "kind": "multiple_choice", "dataset": DatasetSpec()}
    base.update(fields)
    return TaskSpec.model_validate(base)


def test_multiple_choice_requests_share_one_context() -> None:
    task = spec(template="Q: {question}\nA:")
    doc = {"id": "1", "question": "sky?", "choices": ["blue", "red"], "gold": 0}
    kind = get_kind("multiple_choice")
    sample = kind.prepare(task, doc, build_context(task, doc, [], kind.fewshot_answer))
    assert sample.requests == [
        LoglikelihoodRequest("Q: sky?\nA:", " blue"),
        LoglikelihoodRequest("Q: sky?\nA:", " red"),
    ]
    assert sample.target == "blue"


def test_acc_and_acc_norm_follow_lm_eval() -> None:
    task = spec()
    kind = get_kind("multiple_choice")
    doc = {"id": "1", "query": "q", "choices": ["a", "much longer answer"], "gold": 1}
    sample = kind.prepare(task, doc, "q")
    # Raw: "a" wins (-2 > -10). Per character: -2/1 = -2 vs -10/18 = -0.56, so the long one wins.
    score = kind.score(
        task, sample, [LoglikelihoodResult(-2.0, False, 1), LoglikelihoodResult(-10.0, False, 3)]
    )
    assert score.scores == {"acc": 0.0, "acc_norm": 1.0}


def test_partial_scoring_uses_per_choice_contexts() -> None:
    task = spec(num_fewshot=0)
    doc = {
        "id": "w",
        "contexts": ["Ann gave Bo", "Bo gave Ann"],
        "choices": ["the book", "the book"],
        "gold": 1,
    }
    kind = get_kind("multiple_choice")
    sample = kind.prepare(task, doc, build_context(task, doc, [], kind.fewshot_answer))
    assert [r.context for r in sample.requests] == ["Ann gave Bo", "Bo gave Ann"]
    assert {r.continuation for r in sample.requests} == {" the book"}


def test_mean_metric_stderr_is_sample_std_over_sqrt_n() -> None:
    kind = get_kind("multiple_choice")
    task = spec()
    values = [1.0, 0.0, 1.0, 1.0]
    scores = []
    for i, v in enumerate(values):
        doc = {"id": str(i), "query": "q", "choices": ["x", "y"], "gold": 0 if v else 1}
        sample = kind.prepare(task, doc, "q")
        scores.append(
            kind.score(
                task, sample, [LoglikelihoodResult(-1.0, True, 1), LoglikelihoodResult(-2.0, False, 1)]
            )
        )
    metric = kind.aggregate(scores, ["acc"])["acc"]
    assert metric.value == pytest.approx(0.75)
    assert metric.stderr == pytest.approx(statistics.stdev(values) / math.sqrt(4))
    assert metric.n == 4 and metric.bounded and metric.higher_is_better
    assert metric.ci95 is not None and metric.ci95[0] < 0.75 < metric.ci95[1]


def test_fewshot_is_seeded_per_sample_and_excludes_itself() -> None:
    task = spec(num_fewshot=2)
    pool = [{"id": str(i), "query": f"q{i}", "choices": ["a"], "gold": 0} for i in range(10)]
    first = choose_fewshot(task, pool[3], pool, 2, same_split=True)
    again = choose_fewshot(task, pool[3], pool, 2, same_split=True)
    assert first == again and pool[3] not in first
    other_seed = choose_fewshot(spec(num_fewshot=2, fewshot_seed=7), pool[3], pool, 2, same_split=True)
    assert other_seed != first or len(pool) < 4


def test_fewshot_context_layout() -> None:
    task = spec(template="Q: {q}\nA:", instruction="About {topic}.\n\n")
    kind = get_kind("multiple_choice")
    shot = {"id": "s", "q": "one", "choices": ["1", "2"], "gold": 0, "topic": "x"}
    doc = {"id": "d", "q": "two", "choices": ["1", "2"], "gold": 1, "topic": "numbers"}
    context = build_context(task, doc, [shot], kind.fewshot_answer)
    assert context == "About numbers.\n\nQ: one\nA: 1\n\nQ: two\nA:"


def test_templates_only_allow_plain_fields() -> None:
    assert template_fields("Q: {question} {x}", "t") == ["question", "x"]
    from evalkit.errors import SpecError

    for bad in ["{q.__class__}", "{q[0]}", "{q!r}", "{q:>10}"]:
        with pytest.raises(SpecError):
            template_fields(bad, "t")


def test_generate_extracts_and_normalises() -> None:
    task = spec(kind="generate", answer={"regex": r"answer is (\w+)", "ignore_case": True})
    kind = get_kind("generate")
    doc = {"id": "g", "query": "q", "answers": ["Paris"]}
    sample = kind.prepare(task, doc, "q")
    score = kind.score(task, sample, [GenerateResult("I think the answer is PARIS.", 7)])
    assert score.scores == {"exact_match": 1.0, "contains": 1.0}
    miss = kind.score(task, sample, [GenerateResult("no idea", 2)])
    assert miss.scores == {"exact_match": 0.0, "contains": 0.0}


def test_perplexity_metrics_are_consistent() -> None:
    task = spec(kind="perplexity")
    kind = get_kind("perplexity")
    texts = ["hello world", "a b c d"]
    scores = []
    for i, text in enumerate(texts):
        sample = kind.prepare(task, {"id": str(i), "text": text}, "")
        scores.append(kind.score(task, sample, [RollingResult(-10.0 * (i + 1), 3)]))
    metrics = kind.aggregate(scores, list(kind.metric_names))
    total_bytes = sum(len(t) for t in texts)
    assert metrics["bits_per_byte"].value == pytest.approx(30.0 / total_bytes / math.log(2))
    assert metrics["byte_perplexity"].value == pytest.approx(2 ** metrics["bits_per_byte"].value)
    assert metrics["word_perplexity"].value == pytest.approx(math.exp(30.0 / 6))
    assert not metrics["word_perplexity"].higher_is_better


def test_metrics_for_rejects_unknown_metric() -> None:
    from evalkit.errors import SpecError

    with pytest.raises(SpecError, match="did you mean 'acc_norm'"):
        metrics_for(spec(metrics=["acc_nrom"]))
