"""The leaderboard view and `evalkit leaderboard`, on records fabricated in code (no models).

Set EVALKIT_UPDATE_GOLDEN=1 to rewrite tests/golden/leaderboard.md after an intended change
of the markdown output; review the diff before committing it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from evalkit import report
from evalkit.cli import leaderboard as leaderboard_cli
from evalkit.cli.main import main
from evalkit.errors import DataError
from evalkit.report import build_leaderboard, error_rows, leaderboard_frame
from evalkit.results import MetricValue, ResultsStore, RunRecord

GOLDEN = Path(__file__).parent / "golden"
BASE = json.loads((GOLDEN / "run_record_v1.jsonl").read_text(encoding="utf-8"))
DAY = "2025-01-02T{}:00+00:00"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def perplexity(value: float, n: int = 60) -> MetricValue:
    return MetricValue(value=value, stderr=None, ci95=None, n=n, higher_is_better=False, bounded=False)


def make_record(
    model: str,
    task: str,
    metrics: Mapping[str, float | MetricValue],
    *,
    finished: str = DAY.format("10:00"),
    primary: str | None = None,
    model_fp: str | None = None,
    task_fp: str | None = None,
    run_id: str = "run-1",
    n: int = 400,
    error: str | None = None,
) -> RunRecord:
    """A valid record built on the golden one; plain floats become bounded accuracies with stderr."""
    values = {
        name: value
        if isinstance(value, MetricValue)
        else MetricValue(
            value=value,
            stderr=math.sqrt(value * (1 - value) / n),
            ci95=None,
            n=n,
            higher_is_better=True,
            bounded=True,
        )
        for name, value in metrics.items()
    }
    data = json.loads(json.dumps(BASE))
    data["model"].update(name=model, fingerprint=model_fp or sha(model))
    data["task"].update(
        name=task,
        fingerprint=task_fp or sha(task),
        primary_metric=primary or next(iter(values), "acc"),
        num_samples=n,
    )
    data.update(
        record_id=sha(f"{model}|{task}|{finished}|{run_id}")[:12],
        run_id=run_id,
        finished_at=finished,
        metrics={name: value.model_dump() for name, value in values.items()},
        status="error" if error else "ok",
        error=error,
        samples_file=None,
    )
    return RunRecord.model_validate(data)


def golden_set() -> list[RunRecord]:
    """A small, fixed store: three models, a perplexity task, a gap and a failed run."""
    return [
        make_record("smollm2-135m", "arc_easy", {"acc": 0.5625, "acc_norm": 0.5}),
        make_record("smollm2-135m", "hellaswag", {"acc_norm": 0.41}),
        make_record("smollm2-135m", "wikitext", {"word_perplexity": perplexity(28.3125)}),
        make_record("gemma3-270m", "arc_easy", {"acc": 0.6075}),
        make_record("gemma3-270m", "hellaswag", {"acc_norm": 0.455}),
        make_record("tiny-mamba", "arc_easy", {"acc": 0.3}, n=100),
        make_record("tiny-mamba", "hellaswag", {}, primary="acc_norm", error="RuntimeError: out of memory"),
    ]


def store_with(tmp_path: Path, records: list[RunRecord]) -> Path:
    store = ResultsStore(tmp_path / "results")
    for record in records:
        store.append(record)
    return store.root


def invoke(results: Path, *args: str) -> Result:
    return CliRunner().invoke(leaderboard_cli.leaderboard, ["--results", str(results), *args])


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Through evalkit's real entry point, which turns EvalkitError into `error: ...` and exit 2."""
    old_argv = sys.argv
    sys.argv = ["evalkit", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old_argv
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- the frame ------------------------------------------------------------------------------------


def test_one_row_per_model_sorted_by_mean_of_bounded_metrics() -> None:
    frame = leaderboard_frame(golden_set())
    assert list(frame["model"]) == ["gemma3-270m", "smollm2-135m", "tiny-mamba"]
    smollm = frame.set_index("model").loc["smollm2-135m"]
    # The perplexity column is shown but stays out of the mean; acc_norm of arc_easy is not primary.
    assert smollm["wikitext/word_perplexity"] == 28.3125
    assert smollm["mean"] == pytest.approx((0.5625 + 0.41) / 2)
    assert smollm["tasks_in_mean"] == 2
    assert smollm["arc_easy/acc:n"] == 400
    assert smollm["arc_easy/acc:stderr"] == pytest.approx(math.sqrt(0.5625 * 0.4375 / 400))
    assert "arc_easy/acc_norm" not in frame.columns


def test_missing_tasks_are_nan_and_do_not_lower_the_mean() -> None:
    frame = leaderboard_frame(golden_set()).set_index("model")
    mamba = frame.loc["tiny-mamba"]
    assert math.isnan(mamba["hellaswag/acc_norm"]) and math.isnan(mamba["wikitext/word_perplexity"])
    assert mamba["mean"] == pytest.approx(0.3)
    assert mamba["tasks_in_mean"] == 1
    assert pd.isna(frame.loc["gemma3-270m", "wikitext/word_perplexity:n"])


def test_model_with_only_unbounded_metrics_has_nan_mean_and_sorts_last() -> None:
    records = [
        make_record("ppl-only", "wikitext", {"word_perplexity": perplexity(11.0)}),
        make_record("weak", "arc_easy", {"acc": 0.1}),
    ]
    frame = leaderboard_frame(records)
    assert list(frame["model"]) == ["weak", "ppl-only"]
    assert math.isnan(frame.loc[1, "mean"]) and frame.loc[1, "tasks_in_mean"] == 0


def test_latest_record_per_model_and_task_is_kept() -> None:
    records = [
        make_record("m", "arc_easy", {"acc": 0.7}, finished=DAY.format("12:00"), run_id="run-2"),
        make_record("m", "arc_easy", {"acc": 0.5}, finished=DAY.format("09:00"), run_id="run-1"),
    ]
    frame = leaderboard_frame(records)
    assert len(frame) == 1
    assert frame.loc[0, "arc_easy/acc"] == 0.7  # by finished_at, not by order in the store


def test_times_in_other_zones_compare_by_instant() -> None:
    records = [
        make_record("m", "arc_easy", {"acc": 0.7}, finished="2025-01-02T12:00:00+02:00"),  # 10:00 UTC
        make_record("m", "arc_easy", {"acc": 0.5}, finished="2025-01-02T11:00:00Z"),
    ]
    assert leaderboard_frame(records).loc[0, "arc_easy/acc"] == 0.5


def test_unreadable_finish_time_is_a_data_error_naming_the_record() -> None:
    record = make_record("m", "arc_easy", {"acc": 0.5}, finished="yesterday")
    with pytest.raises(DataError, match=f"record {record.record_id}: finished_at 'yesterday'"):
        leaderboard_frame([record])


def test_keep_history_gives_one_row_per_model_and_run() -> None:
    records = [
        make_record("m", "arc_easy", {"acc": 0.5}, finished=DAY.format("09:00"), run_id="run-1"),
        make_record("m", "hellaswag", {"acc_norm": 0.3}, finished=DAY.format("09:30"), run_id="run-1"),
        make_record("m", "arc_easy", {"acc": 0.7}, finished=DAY.format("12:00"), run_id="run-2"),
    ]
    frame = leaderboard_frame(records, keep_history=True)
    assert list(frame["run_id"]) == ["run-2", "run-1"]  # mean 0.7 before mean 0.4
    assert list(frame["finished_at"]) == [DAY.format("12:00"), DAY.format("09:30")]
    assert frame.loc[1, "mean"] == pytest.approx(0.4)
    assert math.isnan(frame.loc[0, "hellaswag/acc_norm"])
    assert "run_id" not in leaderboard_frame(records).columns


def test_two_task_versions_show_the_latest_with_a_note() -> None:
    records = [
        make_record("m", "arc_easy", {"acc": 0.5}, task_fp=sha("full"), n=2376, finished=DAY.format("09:00")),
        make_record(
            "m", "arc_easy", {"acc": 0.6}, task_fp=sha("limit 100"), n=100, finished=DAY.format("10:00")
        ),
    ]
    board = build_leaderboard(records)
    assert board.frame.loc[0, "arc_easy/acc"] == 0.6
    assert board.frame.loc[0, "arc_easy/acc:n"] == 100
    (note,) = board.notes
    assert "m: arc_easy was evaluated on 2 different task versions" in note and "100 samples" in note


def test_models_sharing_a_name_are_told_apart_by_fingerprint() -> None:
    records = [
        make_record("smollm2-135m", "arc_easy", {"acc": 0.5}, model_fp="1234abcd" + "0" * 56),
        make_record("smollm2-135m", "arc_easy", {"acc": 0.4}, model_fp="9876fedc" + "0" * 56),
    ]
    frame = leaderboard_frame(records)
    assert list(frame["model"]) == ["smollm2-135m@1234abcd", "smollm2-135m@9876fedc"]


def test_error_records_are_excluded_from_the_frame_but_reported() -> None:
    records = golden_set()
    board = build_leaderboard(records)
    assert math.isnan(board.frame.set_index("model").loc["tiny-mamba", "hellaswag/acc_norm"])
    errors = error_rows(records)
    assert errors.to_dict("records") == [
        {
            "model": "tiny-mamba",
            "fingerprint": sha("tiny-mamba"),
            "task": "hellaswag",
            "run_id": "run-1",
            "finished_at": DAY.format("10:00"),
            "error": "RuntimeError: out of memory",
        }
    ]
    assert board.errors.equals(errors)


def test_error_fixed_by_a_later_rerun_is_listed_only_in_history() -> None:
    records = [
        make_record("m", "arc_easy", {}, primary="acc", error="boom", finished=DAY.format("09:00")),
        make_record("m", "arc_easy", {"acc": 0.5}, finished=DAY.format("10:00")),
    ]
    assert error_rows(records).empty
    assert list(error_rows(records, keep_history=True)["error"]) == ["boom"]


def test_record_without_its_primary_metric_is_noted_not_fatal() -> None:
    records = [make_record("m", "arc_easy", {"acc_norm": 0.5}, primary="acc")]
    board = build_leaderboard(records)
    assert board.columns == ()
    assert "no value for its primary metric 'acc'" in board.notes[0]


def test_empty_input_gives_an_empty_frame_with_the_fixed_columns() -> None:
    frame = leaderboard_frame([])
    assert frame.empty
    assert list(frame.columns) == [
        "model",
        "fingerprint",
        "family",
        "parameters",
        "quantization",
        "mean",
        "tasks_in_mean",
    ]


# -- the command ----------------------------------------------------------------------------------


def test_table_shows_percentages_stderr_plain_perplexity_and_a_legend(tmp_path: Path) -> None:
    result = invoke(store_with(tmp_path, golden_set()))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "model",
        "mean",
        "tasks",
        "arc_easy/acc",
        "hellaswag/acc_norm",
        "wikitext/word_perplexity",
    ]
    assert set(lines[1]) == {"-", " "}
    assert lines[3].split() == ["smollm2-135m", "48.6", "2", "56.2", "±2.5", "41.0", "±2.5", "28.31"]
    assert lines[4].split() == ["tiny-mamba", "30.0", "1", "30.0", "±4.6", "-", "-"]
    assert len({len(line) for line in lines[:3]}) == 1  # header, rule and first row line up
    text = result.stdout
    assert "arc_easy/acc" in text and "task arc_easy, primary metric acc, % (higher is better)" in text
    assert "n=100-400 (varies by model)" in text
    assert "primary metric word_perplexity, value (lower is better), n=60" in text
    assert "tiny-mamba / hellaswag (run run-1, 2025-01-02 10:00): RuntimeError: out of memory" in text


def test_no_stderr_drops_the_plus_minus(tmp_path: Path) -> None:
    result = invoke(store_with(tmp_path, golden_set()), "--no-stderr")
    assert result.exit_code == 0
    assert "±" not in result.stdout
    assert result.stdout.splitlines()[3].split() == ["smollm2-135m", "48.6", "2", "56.2", "41.0", "28.31"]


def test_markdown_matches_the_golden_file(tmp_path: Path) -> None:
    result = invoke(store_with(tmp_path, golden_set()), "--format", "markdown")
    assert result.exit_code == 0, result.output
    golden = GOLDEN / "leaderboard.md"
    if os.environ.get("EVALKIT_UPDATE_GOLDEN") == "1":
        golden.write_text(result.stdout, encoding="utf-8")
    assert result.stdout == golden.read_text(encoding="utf-8")


def test_csv_has_full_precision_stderr_and_n(tmp_path: Path) -> None:
    result = invoke(store_with(tmp_path, golden_set()), "--format", "csv")
    assert result.exit_code == 0
    frame = pd.read_csv(io.StringIO(result.stdout)).set_index("model")
    assert frame.loc["smollm2-135m", "arc_easy/acc"] == 0.5625
    assert frame.loc["smollm2-135m", "arc_easy/acc:stderr"] == math.sqrt(0.5625 * 0.4375 / 400)
    assert frame.loc["tiny-mamba", "arc_easy/acc:n"] == 100
    assert frame.loc["smollm2-135m", "wikitext/word_perplexity"] == 28.3125
    # The failed run cannot go in a CSV, so it goes to stderr rather than nowhere.
    assert "failed run: tiny-mamba / hellaswag" in result.stderr


def test_json_is_a_list_of_rows_with_nulls_for_gaps(tmp_path: Path) -> None:
    result = invoke(store_with(tmp_path, golden_set()), "--format", "json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [row["model"] for row in rows] == ["gemma3-270m", "smollm2-135m", "tiny-mamba"]
    mamba = rows[2]
    assert mamba["arc_easy/acc:stderr"] == math.sqrt(0.3 * 0.7 / 100)
    assert mamba["arc_easy/acc:n"] == 100 and mamba["tasks_in_mean"] == 1
    assert mamba["hellaswag/acc_norm"] is None and mamba["hellaswag/acc_norm:n"] is None
    assert rows[1]["mean"] == (0.5625 + 0.41) / 2
    assert "failed run: tiny-mamba / hellaswag" in result.stderr


def test_all_flag_shows_every_run(tmp_path: Path) -> None:
    records = [
        make_record("m", "arc_easy", {"acc": 0.5}, finished=DAY.format("09:00"), run_id="run-1"),
        make_record("m", "arc_easy", {"acc": 0.7}, finished=DAY.format("12:00"), run_id="run-2"),
    ]
    results = store_with(tmp_path, records)
    assert len(json.loads(invoke(results, "--format", "json").stdout)) == 1
    result = invoke(results, "--all")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["model", "run", "finished", "mean"]
    assert lines[2].split() == ["m", "run-2", "2025-01-02", "12:00", "70.0", "1", "70.0", "±2.3"]
    assert lines[3].split()[:2] == ["m", "run-1"]


def test_corrupt_lines_are_errors_but_the_rest_is_shown(tmp_path: Path) -> None:
    results = store_with(tmp_path, golden_set()[:2])
    records_file = results / "records.jsonl"
    with records_file.open("a", encoding="utf-8") as handle:
        handle.write("{not json}\n")
        handle.write(make_record("gemma3-270m", "arc_easy", {"acc": 0.6}).model_dump_json()[:100])
    before = records_file.read_bytes()

    result = invoke(results)
    assert result.exit_code == 2
    assert "smollm2-135m" in result.stdout and "56.2" in result.stdout
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"error: {records_file}:3: corrupt line skipped")
    assert errors[1].startswith(f"error: {records_file}:4: corrupt line skipped")
    assert records_file.read_bytes() == before  # reading never repairs or rewrites

    ResultsStore(results).append(make_record("gemma3-270m", "arc_easy", {"acc": 0.6}))
    result = invoke(results, "--format", "json")
    assert result.exit_code == 2
    assert [row["model"] for row in json.loads(result.stdout)] == ["gemma3-270m", "smollm2-135m"]


def test_newer_schema_record_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = store_with(tmp_path, golden_set()[:1])
    future = json.loads(golden_set()[3].model_dump_json()) | {"schema_version": 99}
    with (results / "records.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(future) + "\n")
    code, out, err = run_main(["leaderboard", "--results", str(results)], capsys)
    assert code == 2
    assert "smollm2-135m" in out and "gemma3-270m" not in out
    assert err.strip() == (
        f"error: {results / 'records.jsonl'}:2: record uses schema version 99, newer than this "
        "evalkit reads (1); upgrade evalkit to read it"
    )


def test_missing_results_folder_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["leaderboard", "--results", str(tmp_path / "nope")], capsys)
    assert (code, out) == (2, "")
    assert err == f"error: {tmp_path / 'nope'}: results folder not found\n"


def test_empty_store_says_so_and_succeeds(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    result = invoke(tmp_path / "results")
    assert result.exit_code == 0
    assert result.stdout == f"no run records in {tmp_path / 'results'} yet; `evalkit run` stores them there\n"
    result = invoke(tmp_path / "results", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert "no run records" in result.stderr


def test_store_with_only_failed_runs_lists_them(tmp_path: Path) -> None:
    result = invoke(store_with(tmp_path, golden_set()[-1:]))
    assert result.exit_code == 0
    assert result.stdout.startswith("no successful run records to rank\n")
    assert "tiny-mamba / hellaswag" in result.stdout


def test_cli_formats_mirror_the_report_api() -> None:
    assert leaderboard_cli.FORMATS == report.FORMATS


def test_cli_module_does_not_import_pandas() -> None:
    code = "import sys, evalkit.cli.leaderboard; print('pandas' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "False"
