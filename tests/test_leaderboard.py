"""The leaderboard view and `evalkit leaderboard`, on records fabricated in code (no models).

Set EVALKIT_UPDATE_GOLDEN=1 to rewrite tests/golden/leaderboard.md after an intended change
of the markdown output; review the diff before committing it.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result
from fabricate_results import (
    DAY,
    GOLDEN,
    correct_on,
    golden_samples,
    golden_set,
    make_record,
    perplexity,
    run_main,
    scored,
    sha,
    store_with,
)
from fabricate_results import (
    accuracy as report_accuracy,
)

from evalkit import report
from evalkit.cli import leaderboard as leaderboard_cli
from evalkit.errors import DataError
from evalkit.report import build_leaderboard, compare_paired, error_rows, leaderboard_frame
from evalkit.results import SCHEMA_VERSION, LongContextMatrix, ResultsStore, RunRecord, SampleLog


def golden_store(tmp_path: Path) -> Path:
    """The golden set with per-sample logs, so the command can rank."""
    records = golden_set()
    return store_with(tmp_path / "results", records, golden_samples(records))


def invoke(results: Path, *args: str) -> Result:
    return CliRunner().invoke(leaderboard_cli.leaderboard, ["--results", str(results), *args])


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
    board = build_leaderboard(records, normalized=False)
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
    board = build_leaderboard(records, normalized=False)
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
        "bytes_on_disk",
        "mean",
        "tasks_in_mean",
        "pareto_memory",
    ]


# -- the command ----------------------------------------------------------------------------------


def test_table_shows_ranks_percentages_intervals_normalized_scores_and_a_legend(tmp_path: Path) -> None:
    result = invoke(golden_store(tmp_path), "--wide")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "rank",
        "model",
        "mean",
        "mean:norm",
        "tasks",
        "pareto",
        "arc_easy/acc",
        "arc_easy/acc:norm",
        "hellaswag/acc_norm",
        "wikitext/word_perplexity",
    ]
    assert set(lines[1]) == {"-", " "}
    # gemma3 and smollm2 are not told apart by the paired tests, so they share rank 1.
    assert lines[2].split()[:6] == ["1", "gemma3-270m", "53.1", "47.7", "2", "mem"]
    assert lines[3].split() == [
        "1", "smollm2-135m", "48.6", "41.7", "2", "-", "56.2", "±4.9", "41.7", "41.0", "-4.7/+4.9", "28.31",
    ]  # fmt: skip
    # Wilson's intervals from the value and n (these records store none): 30 of 100 is 21.9-39.6 %
    assert lines[4].split() == [
        "3",
        "tiny-mamba",
        "30.0",
        "6.7",
        "1",
        "-",
        "30.0",
        "-8.1/+9.6",
        "6.7",
        "-",
        "-",
    ]
    assert len({len(line) for line in lines[:3]}) == 1  # header, rule and first row line up
    text = result.stdout
    assert "arc_easy/acc" in text and "task arc_easy, primary metric acc, % (higher is better)" in text
    assert "n=100-400 (varies by model)" in text
    assert "primary metric word_perplexity, value (lower is better), n=60" in text
    assert "chance 25.0%: 0 is guessing, 100 is perfect" in text
    assert "no chance level is stored for hellaswag/acc_norm" in text
    assert "gemma3-270m ~ smollm2-135m (p = 0.0936, 800 shared samples)" in text  # why they tie
    assert "tiny-mamba / hellaswag (run run-1, 2025-01-02 10:00): RuntimeError: out of memory" in text


def test_no_ci_raw_only_no_ranks_give_the_plain_table(tmp_path: Path) -> None:
    result = invoke(golden_store(tmp_path), "--no-ci", "--raw-only", "--no-ranks", "--wide")
    assert result.exit_code == 0
    assert "±" not in result.stdout and ":norm" not in result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["model", "mean", "tasks"]
    assert lines[3].split() == ["smollm2-135m", "48.6", "2", "-", "56.2", "41.0", "28.31"]


def test_markdown_matches_the_golden_file(tmp_path: Path) -> None:
    result = invoke(golden_store(tmp_path), "--format", "markdown")
    assert result.exit_code == 0, result.output
    golden = GOLDEN / "leaderboard.md"
    if os.environ.get("EVALKIT_UPDATE_GOLDEN") == "1":
        golden.write_text(result.stdout, encoding="utf-8")
    assert result.stdout == golden.read_text(encoding="utf-8")


def test_csv_has_full_precision_stderr_and_n(tmp_path: Path) -> None:
    result = invoke(golden_store(tmp_path), "--format", "csv")
    assert result.exit_code == 0
    frame = pd.read_csv(io.StringIO(result.stdout)).set_index("model")
    assert frame.loc["smollm2-135m", "arc_easy/acc"] == 0.5625
    assert frame.loc["smollm2-135m", "arc_easy/acc:norm"] == pytest.approx((0.5625 - 0.25) / 0.75)
    assert frame.loc["smollm2-135m", "arc_easy/acc:ci_low"] == pytest.approx(0.51352, abs=1e-5)  # Wilson's
    assert frame.loc["smollm2-135m", "arc_easy/acc:ci_high"] == pytest.approx(0.61029, abs=1e-5)
    assert list(frame["rank"]) == [1, 1, 3] and list(frame["hellaswag/acc_norm:rank"].fillna(0)) == [1, 1, 0]
    assert frame.loc["smollm2-135m", "arc_easy/acc:stderr"] == math.sqrt(0.5625 * 0.4375 / 400)
    assert frame.loc["tiny-mamba", "arc_easy/acc:n"] == 100
    assert frame.loc["smollm2-135m", "wikitext/word_perplexity"] == 28.3125
    # The failed run cannot go in a CSV, so it goes to stderr rather than nowhere.
    assert "failed run: tiny-mamba / hellaswag" in result.stderr


def test_json_is_a_list_of_rows_with_nulls_for_gaps(tmp_path: Path) -> None:
    result = invoke(golden_store(tmp_path), "--format", "json")
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
    results = store_with(tmp_path / "results", records)
    assert len(json.loads(invoke(results, "--format", "json").stdout)) == 1
    result = invoke(results, "--all", "--wide")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["rank", "model", "run", "finished", "mean"]
    # Without per-sample logs the two runs cannot be told apart, so they share a rank (and a note says why).
    assert lines[2].split() == [
        "1",
        "m",
        "run-2",
        "2025-01-02",
        "12:00",
        "70.0",
        "1",
        "mem",
        "70.0",
        "-4.7/+4.3",
    ]
    assert lines[3].split()[:3] == ["1", "m", "run-1"]
    assert "cannot be paired, so pairs involving them are not counted as different" in result.stdout


def test_corrupt_lines_are_errors_but_the_rest_is_shown(tmp_path: Path) -> None:
    results = store_with(tmp_path / "results", golden_set()[:2])
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
    results = store_with(tmp_path / "results", golden_set()[:1])
    future = json.loads(golden_set()[3].model_dump_json()) | {"schema_version": 99}
    with (results / "records.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(future) + "\n")
    code, out, err = run_main(["leaderboard", "--results", str(results)], capsys)
    assert code == 2
    assert "smollm2-135m" in out and "gemma3-270m" not in out
    assert err.strip() == (
        f"error: {results / 'records.jsonl'}:2: record uses schema version 99, newer than this "
        f"evalkit reads ({SCHEMA_VERSION}); upgrade evalkit to read it"
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
    result = invoke(store_with(tmp_path / "results", golden_set()[-1:]))
    assert result.exit_code == 0
    assert result.stdout.startswith("no successful run records to rank\n")
    assert "tiny-mamba / hellaswag" in result.stdout


def test_cli_formats_mirror_the_report_api() -> None:
    assert leaderboard_cli.FORMATS == report.FORMATS


def test_cli_module_does_not_import_pandas() -> None:
    code = "import sys, evalkit.cli.leaderboard; print('pandas' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "False"


# -- ranks with tie groups ---------------------------------------------------------------------


def ranked(
    tmp_path: Path, records: Sequence[RunRecord], samples: Mapping[str, Sequence[SampleLog]]
) -> pd.DataFrame:
    """Ranked frame, by model, of the records as stored (with their per-sample log paths)."""
    store = ResultsStore(store_with(tmp_path / "results", records, samples))
    stored, _ = store.read()
    return build_leaderboard(stored, ranks=True, store=store).frame.set_index("model")


def test_identical_per_sample_results_share_a_rank(tmp_path: Path) -> None:
    # b is a hair better on the stored value, but is right on exactly the samples a is right on
    # (plus none): the paired test sees no discordant sample and cannot tell them apart.
    records = [
        make_record("a", "arc_easy", {"acc": 0.5}, n=200),
        make_record("b", "arc_easy", {"acc": 0.5}, n=200),
        make_record("c", "arc_easy", {"acc": 0.2}, n=200),
    ]
    samples = {
        records[0].record_id: correct_on(200, range(100)),
        records[1].record_id: correct_on(200, range(100)),
        records[2].record_id: correct_on(200, range(40)),
    }
    frame = ranked(tmp_path, records, samples)
    assert frame.loc["a", "rank"] == frame.loc["b", "rank"] == 1
    assert frame.loc["c", "rank"] == 3  # competition ranking: two models above it
    assert list(frame["arc_easy/acc:rank"]) == [1, 1, 3]


def test_clearly_different_models_get_different_ranks(tmp_path: Path) -> None:
    records = [
        make_record("strong", "arc_easy", {"acc": 0.9}, n=100),
        make_record("weak", "arc_easy", {"acc": 0.5}, n=100),
    ]
    samples = {
        records[0].record_id: correct_on(100, range(90)),
        records[1].record_id: correct_on(100, range(50)),
    }
    frame = ranked(tmp_path, records, samples)
    assert (frame.loc["strong", "rank"], frame.loc["weak", "rank"]) == (1, 2)


def test_tie_groups_chain_adjacent_non_significant_pairs(tmp_path: Path) -> None:
    # x~y and y~z are each too close to call, x vs z alone would differ: all three share rank 1.
    records = [
        make_record("x", "arc_easy", {"acc": 0.60}, n=200),
        make_record("y", "arc_easy", {"acc": 0.55}, n=200),
        make_record("z", "arc_easy", {"acc": 0.50}, n=200),
    ]
    samples = {
        records[0].record_id: correct_on(200, range(0, 120)),
        records[1].record_id: correct_on(200, range(20, 130)),  # vs x: 20 vs 10 discordant, p = 0.10
        records[2].record_id: correct_on(200, range(40, 140)),  # vs y: 20 vs 10, p = 0.10
    }
    a, _, c = (scores for scores in samples.values())
    x_vs_z = compare_paired([s.scores["acc"] for s in a], [s.scores["acc"] for s in c], "acc")
    assert x_vs_z.p_value < 0.05  # 40 vs 20 discordant: alone, x and z differ
    frame = ranked(tmp_path, records, samples)
    assert list(frame["rank"]) == [1, 1, 1]


def test_overall_rank_pools_tasks_and_per_task_ranks_follow_each_column(tmp_path: Path) -> None:
    records = [
        make_record("a", "arc_easy", {"acc": 0.9}, n=100),
        make_record("a", "piqa", {"acc": 0.5}, n=100),
        make_record("b", "arc_easy", {"acc": 0.5}, n=100),
        make_record("b", "piqa", {"acc": 0.5}, n=100),
    ]
    samples = {
        records[0].record_id: correct_on(100, range(90)),
        records[1].record_id: correct_on(100, range(50)),
        records[2].record_id: correct_on(100, range(50)),
        records[3].record_id: correct_on(100, range(50)),
    }
    frame = ranked(tmp_path, records, samples)
    assert (frame.loc["a", "rank"], frame.loc["b", "rank"]) == (1, 2)
    assert (frame.loc["a", "arc_easy/acc:rank"], frame.loc["b", "arc_easy/acc:rank"]) == (1, 2)
    assert (frame.loc["a", "piqa/acc:rank"], frame.loc["b", "piqa/acc:rank"]) == (1, 1)


def test_fractional_scores_are_ranked_with_the_bootstrap(tmp_path: Path) -> None:
    records = [
        make_record("good", "squad", {"f1": 0.8}, n=50),
        make_record("bad", "squad", {"f1": 0.3}, n=50),
    ]
    samples = {
        records[0].record_id: scored([0.8 + 0.002 * i for i in range(50)], "f1"),
        records[1].record_id: scored([0.3 + 0.002 * i for i in range(50)], "f1"),
    }
    frame = ranked(tmp_path, records, samples)
    assert list(frame["rank"]) == [1, 2]


def test_unbounded_metrics_are_not_ranked(tmp_path: Path) -> None:
    records = [make_record("m", "wikitext", {"word_perplexity": perplexity(20.0)})]
    frame = ranked(tmp_path, records, {})
    assert "wikitext/word_perplexity:rank" not in frame.columns
    assert pd.isna(frame.loc["m", "rank"])  # no bounded metric, no mean, no rank


def test_ranks_need_the_store() -> None:
    with pytest.raises(ValueError, match="needs the store"):
        build_leaderboard(golden_set(), ranks=True)


# -- chance, suites, efficiency, long context, Pareto -------------------------------------------


def test_chance_normalized_columns_and_mean() -> None:
    records = [
        make_record("m", "arc_easy", {"acc": 0.625}, chance=0.25),
        make_record("m", "boolq", {"acc": 0.75}, chance=0.5),
        make_record("m", "triviaqa", {"exact_match": 0.1}),
    ]
    board = build_leaderboard(records)
    row = board.frame.iloc[0]
    assert row["arc_easy/acc:norm"] == pytest.approx(0.5)
    assert row["boolq/acc:norm"] == pytest.approx(0.5)
    assert "triviaqa/exact_match:norm" not in board.frame.columns
    assert row["mean"] == pytest.approx((0.625 + 0.75 + 0.1) / 3)
    assert (row["mean:norm"], row["tasks_in_mean:norm"]) == (pytest.approx(0.5), 2)
    assert "no chance level is stored for triviaqa/exact_match" in board.notes[0]
    assert not any(name.endswith(":norm") for name in build_leaderboard(records, normalized=False).frame)


def test_suite_restricts_columns_and_mean_to_its_tasks(tmp_path: Path) -> None:
    records = [
        make_record("m", "arc_easy", {"acc": 0.6}),
        make_record("m", "hellaswag", {"acc_norm": 0.4}),
        make_record("m", "my_private_task", {"acc": 0.1}),
        make_record("only-private", "my_private_task", {"acc": 0.9}),
    ]
    frame = build_leaderboard(records, tasks=["hellaswag", "arc_easy"]).frame
    assert list(frame["model"]) == ["m"]
    assert [c for c in frame.columns if c.count("/") and ":" not in c] == [
        "hellaswag/acc_norm",
        "arc_easy/acc",
    ]
    assert frame.loc[0, "mean"] == pytest.approx(0.5)

    result = invoke(store_with(tmp_path / "results", records), "--suite", "quick", "--no-ranks", "--wide")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Suite quick: arc_easy, arc_challenge, hellaswag")
    assert "my_private_task" not in result.stdout and "only-private" not in result.stdout
    assert lines[2].split()[:4] == ["model", "mean", "tasks", "pareto"]


def test_unknown_suite_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = store_with(tmp_path / "results", golden_set()[:1])
    code, out, err = run_main(["leaderboard", "--results", str(results), "--suite", "quik"], capsys)
    assert (code, out) == (2, "")
    assert err == "error: unknown suite 'quik'; did you mean 'quick'?\n"


def test_efficiency_and_long_context_columns_appear_only_when_stored(tmp_path: Path) -> None:
    plain = [make_record("m", "arc_easy", {"acc": 0.5})]
    frame = leaderboard_frame(plain)
    assert not {"peak_memory_bytes", "time_per_output_token_s", "pareto_latency"} & set(frame.columns)
    assert not any(c.endswith("/effective_context_length") for c in frame.columns)

    matrix = LongContextMatrix(
        lengths=[1024, 4096], depths=[0.0, 1.0], scores=[[100.0, 50.0], [100.0, 40.0]],
        threshold=85.6, effective_context_length=1024,
    )  # fmt: skip
    first = {"peak_memory_bytes": 2**30, "decode_tokens_per_s": 40}
    second = {"peak_memory_bytes": 2**29, "decode_tokens_per_s": 20}
    records = [
        make_record("m", "arc_easy", {"acc": 0.5}, efficiency=first),
        make_record("m", "niah", {"acc": 0.7}, efficiency=second, long_context=matrix),
    ]
    board = build_leaderboard(records)
    row = board.frame.iloc[0]
    assert board.efficiency_columns == ("peak_memory_bytes", "decode_tokens_per_s")
    assert row["peak_memory_bytes"] == 2**30  # the most the model needed
    assert row["decode_tokens_per_s"] == 30  # the median over its records
    assert row["niah/effective_context_length"] == 1024
    assert "time_per_output_token_s" not in board.frame.columns

    result = invoke(store_with(tmp_path / "results", records), "--no-ranks", "--wide")
    header = result.stdout.splitlines()[0].split()
    assert header[4:9] == ["peak", "MiB", "decode", "tok/s", "niah/effective_ctx"]
    assert result.stdout.splitlines()[2].split()[4:7] == ["1024", "30.0", "1024"]


def test_pareto_flags_against_memory_and_latency() -> None:
    def model(name: str, acc: float, memory: int, latency: float) -> RunRecord:
        efficiency = {"peak_memory_bytes": memory, "time_per_output_token_s": latency}
        return make_record(name, "arc_easy", {"acc": acc}, efficiency=efficiency)

    records = [
        model("big-accurate", 0.8, 4000, 0.050),
        model("small-fast", 0.5, 1000, 0.010),
        model("dominated", 0.4, 2000, 0.020),  # worse than small-fast on every axis
        model("mid", 0.6, 3000, 0.005),  # the fastest, but only mid-sized
    ]
    board = build_leaderboard(records)
    frame = board.frame.set_index("model")
    assert board.memory_axis == "peak_memory_bytes"
    assert frame["pareto_memory"].to_dict() == {
        "big-accurate": True, "mid": True, "small-fast": True, "dominated": False,
    }  # fmt: skip
    assert frame["pareto_latency"].to_dict() == {
        "big-accurate": True, "mid": True, "small-fast": False, "dominated": False,
    }  # fmt: skip


def test_pareto_memory_falls_back_to_file_size_for_every_row_when_one_lacks_peak_memory() -> None:
    measured = {"peak_memory_bytes": 10**9}
    records = [
        make_record("small", "arc_easy", {"acc": 0.5}, bytes_on_disk=100, efficiency=measured),
        make_record("large", "arc_easy", {"acc": 0.6}, bytes_on_disk=900),
    ]
    board = build_leaderboard(records)
    assert board.memory_axis == "bytes_on_disk"
    assert list(board.frame["pareto_memory"]) == [True, True]


def test_proportion_intervals_stay_inside_0_to_100_percent(tmp_path: Path) -> None:
    # Records as older evalkit wrote them: a Wald interval (2 of 9: -6.6 to 51.0 %; 9 of 9: a point at
    # 100 %; 3 of 20: -1.1 to 31.1 %). The leaderboard shows Wilson's intervals instead.
    cases = {"two-of-nine": (2, 9), "nine-of-nine": (9, 9), "three-of-twenty": (3, 20)}
    records = []
    for model, (correct, n) in cases.items():
        value = correct / n
        wald = 1.959963984540054 * math.sqrt(value * (1 - value) / (n - 1))
        metric = report_accuracy(value, n).model_copy(update={"ci95": (value - wald, value + wald)})
        records.append(make_record(model, "arc_easy", {"acc": metric}, n=n))
    results = store_with(tmp_path / "results", records)
    frame = pd.read_csv(io.StringIO(invoke(results, "--format", "csv").stdout)).set_index("model")
    for model, (correct, n) in cases.items():
        low, high = frame.loc[model, "arc_easy/acc:ci_low"], frame.loc[model, "arc_easy/acc:ci_high"]
        assert 0.0 <= low <= correct / n <= high <= 1.0 and low < high, model
    assert frame.loc["nine-of-nine", "arc_easy/acc:ci_high"] == 1.0
    table = invoke(results, "--no-ranks").stdout
    assert "22.2 -15.9/+32.5" in table and "100.0 -29.9/+0.0" in table and "15.0 -9.8/+21.0" in table


# -- the terminal table fits 100 columns -------------------------------------------------------------


def test_the_terminal_table_matches_the_golden_file_and_fits_100_columns(tmp_path: Path) -> None:
    result = invoke(golden_store(tmp_path))
    assert result.exit_code == 0, result.output
    golden = GOLDEN / "leaderboard_terminal.txt"
    if os.environ.get("EVALKIT_UPDATE_GOLDEN") == "1":
        golden.write_text(result.stdout, encoding="utf-8")
    assert result.stdout == golden.read_text(encoding="utf-8")
    assert max(len(line) for line in result.stdout.splitlines()) <= 100


def test_the_reference_run_fits_100_columns_and_wide_keeps_one_row_per_model() -> None:
    """The committed reference run (3 models, 21 task columns) was 1,048 characters wide."""
    results = Path(__file__).resolve().parents[1] / "results"
    compact = invoke(results, "--no-ranks")
    assert compact.exit_code == 0, compact.output
    lines = compact.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    titles = [line.split(":")[0] for line in lines if line.split(":")[0] in SECTION_TITLES]
    assert titles == ["Overview", "Accuracy", "Long context", "Efficiency", "Notes"]
    # fewer models than tasks: tasks are the rows, models the columns
    accuracy = lines.index(next(line for line in lines if line.startswith("task/metric")))
    assert lines[accuracy].split()[1:] == ["gemma3-270m", "llamacpp:smollm2-135m", "smollm2-135m"]
    wide = invoke(results, "--no-ranks", "--wide").stdout.splitlines()
    assert (
        max(len(line) for line in wide) > 500 and sum(line.startswith("smollm2-135m ") for line in wide) == 1
    )


SECTION_TITLES = {"Overview", "Accuracy", "Other metrics", "Long context", "Efficiency", "Notes"}


def test_more_models_than_tasks_are_rows_and_wide_sections_wrap_into_blocks(tmp_path: Path) -> None:
    records = [
        make_record(f"model-with-a-long-name-{i}", task, {"acc": report_accuracy(0.3 + i / 100, 50)})
        for i in range(5)
        for task in ("arc_easy", "piqa")
    ]
    result = invoke(store_with(tmp_path / "results", records), "--no-ranks")
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    header = next(line for line in lines if line.startswith("model ") and "arc_easy/acc" in line)
    assert header.split()[1:] == ["arc_easy/acc", "piqa/acc"]  # 5 models > 2 tasks: models are rows

    many = [
        make_record(f"m{i}", f"task_{t:02d}", {"acc": report_accuracy(0.5, 40)})
        for i in range(2)
        for t in range(30)
    ]
    text = invoke(store_with(tmp_path / "many", many), "--no-ranks").stdout
    assert max(len(line) for line in text.splitlines()) <= 100
