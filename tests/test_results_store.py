"""The run-record format and its JSON Lines store: golden record, round trips, damaged files.

tests/golden/run_record_v1.jsonl is a hand-checked schema-1 record. Do not regenerate it: if
the schema changes, version 1 records already on disk must still be read, so add a
run_record_v<N>.jsonl beside it and keep this one as the "old records stay readable" case.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.errors import DataError
from evalkit.results import SCHEMA_VERSION, ResultsStore, RunRecord, SampleLog

GOLDEN_RECORD = Path(__file__).parent / "golden" / "run_record_v1.jsonl"


def golden_line() -> str:
    return GOLDEN_RECORD.read_text(encoding="utf-8")


def golden_record() -> RunRecord:
    return RunRecord.model_validate_json(golden_line())


def variant(record_id: str, **fields: object) -> RunRecord:
    """The golden record with another id (and any top-level fields replaced), validated."""
    data = json.loads(golden_line())
    data.update(record_id=record_id, samples_file=None, **fields)
    return RunRecord.model_validate(data)


# -- golden record --------------------------------------------------------------------------------


def test_golden_record_is_one_line_of_the_current_schema_version() -> None:
    text = golden_line()
    assert text.count("\n") == 1 and text.endswith("\n")
    record = golden_record()
    assert record.schema_version == SCHEMA_VERSION == 1
    # Hand-checked facts, so a silent change of field meaning shows up here.
    assert record.model.name == "smollm2-135m"
    assert record.task.primary_metric == "acc"
    acc = record.metrics["acc"]
    assert (acc.value, acc.n, acc.bounded, acc.higher_is_better) == (0.5625, 400, True, True)
    assert acc.ci95 == (0.5139, 0.6111)
    assert record.status == "ok" and record.error is None


def test_golden_record_round_trips_byte_identically() -> None:
    assert golden_record().model_dump_json() + "\n" == golden_line()


def test_golden_record_is_read_by_the_store(tmp_path: Path) -> None:
    (tmp_path / "records.jsonl").write_text(golden_line(), encoding="utf-8")
    records, problems = ResultsStore(tmp_path).read()
    assert problems == []
    assert records == [golden_record()]


# -- round trips ----------------------------------------------------------------------------------


def test_appended_record_reads_back_equal(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    first, second = variant("rec-a"), variant("rec-b", status="error", error="out of memory")
    assert store.append(first) == first
    store.append(second)
    records, problems = store.read()
    assert problems == []
    assert records == [first, second]


def test_samples_are_stored_beside_the_record_and_read_back(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    samples = [
        SampleLog(sample_id="0", prompt="Q: 2+2?", target="4", response=[-0.1, -2.3], scores={"acc": 1.0}),
        SampleLog(sample_id="1", prompt="Q: sky?", target=["blue"], response="green", scores={"acc": 0.0}),
    ]
    stored = store.append(variant("rec-s"), samples)
    assert stored.samples_file == "samples/rec-s.jsonl"
    (read_back,), _ = store.read()
    assert read_back == stored
    assert store.read_samples(read_back) == samples


def test_append_never_rewrites_existing_lines(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    store.append(variant("rec-a"))
    before = store.records_path.read_bytes()
    store.append(variant("rec-b"))
    after = store.records_path.read_bytes()
    assert after.startswith(before)
    assert after.count(b"\n") == 2


# -- damaged stores -------------------------------------------------------------------------------


def test_garbage_line_is_reported_with_file_and_line_and_skipped(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    store.append(variant("rec-a"))
    with store.records_path.open("a", encoding="utf-8") as handle:
        handle.write("this is not json\n")
    store.append(variant("rec-b"))
    records, problems = store.read()
    assert [record.record_id for record in records] == ["rec-a", "rec-b"]
    assert len(problems) == 1
    assert (problems[0].file, problems[0].line) == (store.records_path, 2)
    assert str(problems[0]).startswith(f"{store.records_path}:2: corrupt line skipped")


def test_truncated_last_line_is_fenced_off_by_the_next_append(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    store.append(variant("rec-a"))
    half = variant("rec-half").model_dump_json()[:150]  # a crash in the middle of a write
    with store.records_path.open("a", encoding="utf-8") as handle:
        handle.write(half)
    records, problems = store.read()
    assert [record.record_id for record in records] == ["rec-a"]
    assert [problem.line for problem in problems] == [2]

    store.append(variant("rec-b"))
    records, problems = store.read()
    assert [record.record_id for record in records] == ["rec-a", "rec-b"]
    assert [problem.line for problem in problems] == [2]  # the half line stays, reported, not rewritten
    assert half in store.records_path.read_text(encoding="utf-8")


def test_record_from_a_newer_schema_is_refused_clearly(tmp_path: Path) -> None:
    data = json.loads(golden_line())
    data.update(schema_version=99, a_field_from_the_future=True)
    (tmp_path / "records.jsonl").write_text(golden_line() + json.dumps(data) + "\n", encoding="utf-8")
    records, problems = ResultsStore(tmp_path).read()
    assert records == [golden_record()]
    assert len(problems) == 1 and problems[0].line == 2
    assert "schema version 99, newer than this evalkit reads (1)" in problems[0].message
    assert "upgrade evalkit" in problems[0].message


def test_record_missing_a_required_field_names_the_field(tmp_path: Path) -> None:
    data = json.loads(golden_line())
    del data["task"]["primary_metric"]
    (tmp_path / "records.jsonl").write_text(json.dumps(data) + "\n", encoding="utf-8")
    records, problems = ResultsStore(tmp_path).read()
    assert records == []
    assert "task.primary_metric" in problems[0].message


def test_missing_results_folder_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="results folder not found"):
        ResultsStore(tmp_path / "nowhere").read()
