"""The run-record format and its JSON Lines store: golden records, upgrades, round trips, damage.

tests/golden/run_record_v2.jsonl holds hand-checked schema-2 records (an accuracy record and an
efficiency record with its typed figures), round-tripped byte-identically. An optional field added
within version 2 is typed into it by hand (in schema order). tests/golden/run_record_v1.jsonl is the
schema-1 record of the first writer, never regenerated: the "records already on disk still load"
case, read through the v1 -> v2 upgrade. A new schema version gets its own run_record_v<N>.jsonl.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError

from evalkit.errors import DataError, UnknownNameError
from evalkit.results import (
    SCHEMA_VERSION,
    DecodePoint,
    EfficiencyFigures,
    ResultsStore,
    RunRecord,
    SampleLog,
    upgrade_record,
)

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_RECORDS = GOLDEN / "run_record_v2.jsonl"
GOLDEN_V1 = GOLDEN / "run_record_v1.jsonl"
REFERENCE_RESULTS = Path(__file__).parent.parent / "results"


def golden_lines() -> list[str]:
    return GOLDEN_RECORDS.read_text(encoding="utf-8").splitlines(keepends=True)


def golden_line() -> str:
    """The golden accuracy record (line 1)."""
    return golden_lines()[0]


def golden_record() -> RunRecord:
    return RunRecord.model_validate_json(golden_line())


def variant(record_id: str, **fields: object) -> RunRecord:
    """The golden record with another id (and any top-level fields replaced), validated."""
    data = json.loads(golden_line())
    data.update(record_id=record_id, samples_file=None, **fields)
    return RunRecord.model_validate(data)


# -- golden records -------------------------------------------------------------------------------


def test_golden_records_are_lines_of_the_current_schema_version() -> None:
    lines = golden_lines()
    assert len(lines) == 2 and all(line.endswith("\n") for line in lines)
    accuracy, efficiency = (RunRecord.model_validate_json(line) for line in lines)
    assert accuracy.schema_version == efficiency.schema_version == SCHEMA_VERSION == 2
    # Hand-checked facts, so a silent change of field meaning shows up here.
    assert accuracy.model.name == "smollm2-135m"
    assert accuracy.task.primary_metric == "acc"
    acc = accuracy.metrics["acc"]
    assert (acc.value, acc.n, acc.bounded, acc.higher_is_better) == (0.5625, 400, True, True)
    assert acc.ci95 == (0.5139, 0.6111)
    assert accuracy.status == "ok" and accuracy.error is None and accuracy.efficiency is None
    config = accuracy.config
    assert (config.limit, config.limit_unit, config.seed, config.batch_size) == (400, "documents", 1234, 16)
    assert (config.batch_sizes, config.num_documents, config.executor) == ([16], 400, "multiple_choice")

    assert efficiency.task.kind == "efficiency" and efficiency.task.source.origin == "synthetic"
    assert (efficiency.config.limit_unit, efficiency.config.batch_size) == ("none", None)
    figures = efficiency.efficiency
    assert figures is not None and figures.isolated is True
    assert figures.decode_tokens_per_s == efficiency.metrics["decode_tokens_per_s"].value
    assert [p.context_length for p in figures.curves.decode] == [64, 256, 1024]
    assert [p.prompt_length for p in figures.curves.prefill] == [64, 256, 1024]
    assert figures.curves.decode[0].stats.time_per_output_token_s.n == 48  # 3 runs x 16 steps
    assert figures.host_peaks is not None and figures.host_peaks.key is not None
    assert figures.host_peaks.key.cpus == 2
    assert figures.settings is not None and figures.settings.decode_tokens == 16
    assert figures.bits_per_weight == pytest.approx(98362432 * 8 / 134515008)


def test_golden_records_round_trip_byte_identically() -> None:
    for line in golden_lines():
        assert RunRecord.model_validate_json(line).model_dump_json() + "\n" == line


def test_record_without_optional_fields_still_parses() -> None:
    """Fields added to a schema version later must be optional, or records of older writers stop loading."""
    minimal = _required_only(RunRecord, json.loads(golden_line()))
    assert "version" not in minimal["task"]["source"] and "efficiency" not in minimal
    assert "batch_sizes" not in minimal["config"] and "executor" not in minimal["config"]
    record = RunRecord.model_validate(minimal)
    assert record.task.source.version is None and record.efficiency is None
    assert record.config.batch_sizes == [] and record.config.limit_unit == "documents"
    without_optional = {k: v.model_copy(update={"chance": None}) for k, v in golden_record().metrics.items()}
    assert record.metrics == without_optional


def _required_only(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name not in data or not field.is_required():
            continue
        value, annotation = data[name], field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            value = _required_only(annotation, value)
        elif get_origin(annotation) is dict:
            item_type = get_args(annotation)[1]
            if isinstance(item_type, type) and issubclass(item_type, BaseModel):
                value = {key: _required_only(item_type, item) for key, item in value.items()}
        kept[name] = value
    return kept


def test_golden_records_are_read_by_the_store(tmp_path: Path) -> None:
    (tmp_path / "records.jsonl").write_text("".join(golden_lines()), encoding="utf-8")
    records, problems = ResultsStore(tmp_path).read()
    assert problems == []
    assert records == [RunRecord.model_validate_json(line) for line in golden_lines()]


# -- schema 1 on disk -----------------------------------------------------------------------------


def test_v1_golden_record_is_read_and_upgraded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    v1_line = GOLDEN_V1.read_text(encoding="utf-8")
    assert json.loads(v1_line)["schema_version"] == 1
    (tmp_path / "records.jsonl").write_text(v1_line, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="evalkit.results"):
        (record,), problems = ResultsStore(tmp_path).read()
    assert problems == []
    assert record.schema_version == 2
    config = record.config
    assert (config.limit, config.limit_unit, config.seed, config.batch_size) == (400, "documents", 1234, 16)
    assert (config.batch_sizes, config.num_documents, config.executor) == ([], 400, "multiple_choice")
    # The first writer's hand-made figures have no typed field: dropped, and said so.
    assert record.efficiency is None
    assert "efficiency.tokens_per_second, efficiency.peak_rss_bytes" in caplog.text
    # Everything else is the same record the v2 golden states.
    v2 = golden_record()
    assert record == v2.model_copy(update={"config": v2.config.model_copy(update={"batch_sizes": []})})


def test_v1_upgrade_states_each_kind_s_limit_unit_and_leaves_its_input_alone() -> None:
    base = json.loads(GOLDEN_V1.read_text(encoding="utf-8"))
    for kind, unit in (("long_context", "samples_per_cell"), ("efficiency", "none"), ("lmeval", "documents")):
        data = json.loads(json.dumps(base))
        data["task"]["kind"] = kind
        upgraded = upgrade_record(data)
        assert upgraded.data["config"]["limit_unit"] == unit and upgraded.data["config"]["executor"] == kind
        assert data["schema_version"] == 1 and "limit_unit" not in data["config"]
    with pytest.raises(ValueError, match="no upgrade from schema version 7"):
        upgrade_record({**base, "schema_version": 7})


def test_committed_reference_results_read_without_problems_and_typed() -> None:
    records, problems = ResultsStore(REFERENCE_RESULTS).read()
    assert problems == []
    assert len(records) >= 63
    measured = [record for record in records if record.efficiency is not None]
    assert len(measured) >= 3
    for record in measured:
        figures = record.efficiency
        assert isinstance(figures, EfficiencyFigures) and record.config.limit_unit == "none"
        for name in ("decode_tokens_per_s", "prefill_tokens_per_s", "peak_memory_bytes", "mfu", "mbu"):
            value = figures.figure(name)
            assert value is not None and math.isfinite(value) and value > 0, (record.record_id, name)
        assert all(isinstance(point, DecodePoint) for point in figures.curves.decode)
        assert figures.settings is not None and figures.host_peaks is not None
    long_context = [record for record in records if record.task.kind == "long_context"]
    assert long_context and all(record.config.limit_unit == "samples_per_cell" for record in long_context)
    # Documents evaluated are the task's samples, except for efficiency: timed passes, no documents.
    documents = [record for record in records if record.task.kind != "efficiency"]
    assert all(record.config.num_documents == record.task.num_samples for record in documents)
    assert all(record.config.num_documents == 0 for record in measured)


def test_the_writer_writes_only_the_current_version(tmp_path: Path) -> None:
    (tmp_path / "old.jsonl").write_text(GOLDEN_V1.read_text(encoding="utf-8"), encoding="utf-8")
    store = ResultsStore(tmp_path)
    (upgraded,), _ = store.read()
    store.append(upgraded.model_copy(update={"record_id": "rec-copy"}))
    (line,) = store.records_path.read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["schema_version"] == SCHEMA_VERSION
    with pytest.raises(ValidationError, match="schema_version"):
        RunRecord.model_validate(json.loads(GOLDEN_V1.read_text(encoding="utf-8")))  # v1 only via upgrade


# -- efficiency figures ---------------------------------------------------------------------------


def test_figure_accessor_gives_finite_positive_floats_or_none() -> None:
    figures = EfficiencyFigures(decode_tokens_per_s=40, peak_memory_bytes=0, mfu=None)
    assert figures.figure("decode_tokens_per_s") == 40.0 and isinstance(
        figures.figure("decode_tokens_per_s"), float
    )
    assert figures.figure("peak_memory_bytes") is None  # zero is no figure to rank or divide by
    assert figures.figure("mfu") is None and figures.figure("load_time_s") is None
    with pytest.raises(UnknownNameError, match="did you mean 'decode_tokens_per_s'"):
        figures.figure("decode_token_per_s")
    with pytest.raises(UnknownNameError):
        figures.figure("curves")  # not a number
    assert "time_per_output_token_s" in EfficiencyFigures.figure_names()
    assert (
        "isolated" not in EfficiencyFigures.figure_names()
        and "device" not in EfficiencyFigures.figure_names()
    )


def test_efficiency_figures_refuse_unknown_keys_and_non_finite_numbers() -> None:
    with pytest.raises(ValidationError, match="tokens_per_second"):
        EfficiencyFigures.model_validate({"tokens_per_second": 1.0})
    with pytest.raises(ValidationError, match="finite"):
        EfficiencyFigures(mfu=math.inf)
    with pytest.raises(ValidationError, match="finite"):
        EfficiencyFigures(time_per_output_token_s=math.nan)


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
    assert "schema version 99, newer than this evalkit reads (2)" in problems[0].message
    assert "upgrade evalkit" in problems[0].message


def test_record_of_no_known_version_is_skipped(tmp_path: Path) -> None:
    data = json.loads(golden_line())
    data.update(schema_version=0)
    (tmp_path / "records.jsonl").write_text(json.dumps(data) + "\n", encoding="utf-8")
    records, problems = ResultsStore(tmp_path).read()
    assert records == [] and "corrupt record skipped: no schema version 0" in problems[0].message


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
