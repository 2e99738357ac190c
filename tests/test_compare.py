"""`evalkit compare` and the comparison API, on records and sample logs fabricated in code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fabricate_results import DAY, correct_on, make_record, perplexity, run_main, scored, sha, store_with

from evalkit import report
from evalkit.cli import compare as compare_cli
from evalkit.errors import DataError
from evalkit.report import compare_models, select_records
from evalkit.results import ResultsStore, RunRecord, SampleLog


def two_models() -> tuple[list[RunRecord], dict[str, list[SampleLog]]]:
    """small and large on arc_easy (large clearly better), piqa (a toss-up) and wikitext."""
    records = [
        make_record("small", "arc_easy", {"acc": 0.5}, n=100),
        make_record("small", "piqa", {"acc_norm": 0.6}, n=50),
        make_record("small", "wikitext", {"word_perplexity": perplexity(30.0)}),
        make_record("large", "arc_easy", {"acc": 0.9}, n=100, run_id="run-2", finished=DAY.format("11:00")),
        make_record("large", "piqa", {"acc_norm": 0.62}, n=50, run_id="run-2", finished=DAY.format("11:00")),
        make_record("large", "wikitext", {"word_perplexity": perplexity(20.0)}, run_id="run-2"),
    ]
    samples = {
        records[0].record_id: correct_on(100, range(50)),
        records[1].record_id: correct_on(50, range(30), "acc_norm"),
        records[3].record_id: correct_on(100, range(90)),
        records[4].record_id: correct_on(50, range(5, 36), "acc_norm"),
        records[2].record_id: scored([-3.0, -4.0], "logprob"),  # perplexity is not a per-sample mean
        records[5].record_id: scored([-2.0, -3.0], "logprob"),
    }
    return records, samples


def invoke(results: Path, *args: str) -> Result:
    return CliRunner().invoke(compare_cli.compare, [*args, "--results", str(results)])


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return store_with(tmp_path / "results", *two_models())


def test_table_has_one_tested_row_per_shared_task_and_a_pooled_row(results: Path) -> None:
    result = invoke(results, "small", "large")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:2] == ["A: small (latest per task)", "B: large (latest per task)"]
    assert lines[3].split()[:6] == ["task", "metric", "n", "A", "B", "B-A"]
    rows = {line.split()[0]: line.split() for line in lines[5:9]}
    # arc_easy: 40 discordant samples, all for B: p = 2 / 2**40.
    assert rows["arc_easy"][:6] == ["arc_easy", "acc", "100", "50.0", "90.0", "+40.0"]
    assert rows["arc_easy"][8:] == ["<0.001", "McNemar", "exact", "B", "better"]
    # piqa: 5 vs 6 discordant: nothing to see.
    assert rows["piqa"][:6] == ["piqa", "acc_norm", "50", "60.0", "62.0", "+2.0"]
    assert rows["piqa"][8] == "1.000" and rows["piqa"][-3:] == ["no", "significant", "difference"]
    assert rows["wikitext"][:3] == ["wikitext", "word_perplexity", "-"]
    assert lines[8].split()[:6] == ["all", "tasks", "(pooled)", "primary", "150", "53.3"]
    text = result.stdout
    assert "B is better on 1 and worse on 0 of 2 tested task(s), with no significant difference on 1" in text
    assert "not corrected for 2 tests" in text
    assert "wikitext: not tested: record" in text and "per-sample 'word_perplexity' scores" in text


def test_json_carries_every_number(results: Path) -> None:
    result = invoke(results, "small", "large", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    arc = next(item for item in data["tasks"] if item["task"] == "arc_easy")
    assert arc["p_value"] == pytest.approx(2 / 2**40)
    assert arc["n"] == 100 and arc["difference"] == pytest.approx(0.4) and arc["significant"] is True
    assert arc["test"] == "mcnemar_exact" and arc["same_task_version"] is True
    low, high = arc["ci95"]
    assert 0 < low < 0.4 < high < 1
    assert data["overall"]["n"] == 150 and data["alpha"] == 0.05
    wikitext = next(item for item in data["tasks"] if item["task"] == "wikitext")
    assert "p_value" not in wikitext and "word_perplexity" in wikitext["problem"]


def test_markdown_is_a_table(results: Path) -> None:
    result = invoke(results, "small", "large", "--format", "markdown", "--task", "arc_easy")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[3] == "| task | metric | n | A | B | B-A | 95% CI of B-A | p | test | verdict |"
    assert lines[5].startswith("| arc_easy | acc | 100 | 50.0 | 90.0 | +40.0 | [+")
    assert "(pooled)" not in result.stdout  # one task: nothing to pool


def test_bootstrap_is_used_for_fractional_scores(tmp_path: Path) -> None:
    records = [make_record("a", "squad", {"f1": 0.5}, n=40), make_record("b", "squad", {"f1": 0.5}, n=40)]
    samples = {
        records[0].record_id: scored([0.5 + 0.01 * (i % 3) for i in range(40)], "f1"),
        records[1].record_id: scored([0.5 + 0.01 * (i % 3) for i in range(40)], "f1"),
    }
    result = invoke(store_with(tmp_path / "results", records, samples), "a", "b", "--format", "json")
    (task,) = json.loads(result.stdout)["tasks"]
    assert (task["test"], task["p_value"], task["difference"]) == ("paired_bootstrap", 1.0, 0.0)


def test_other_metric_and_other_store_for_b(tmp_path: Path) -> None:
    a = make_record("m", "arc_easy", {"acc": 0.5, "acc_norm": 0.5}, n=10)
    b = make_record("m", "arc_easy", {"acc": 0.5, "acc_norm": 0.6}, n=10)

    def log(norm_correct: int) -> list[SampleLog]:
        return [
            SampleLog(
                sample_id=str(i),
                prompt="",
                target="",
                response=None,
                scores={"acc": float(i < 5), "acc_norm": float(i < norm_correct)},
            )
            for i in range(10)
        ]

    log_a, log_b = log(5), log(6)
    one = store_with(tmp_path / "one", [a], {a.record_id: log_a})
    two = store_with(tmp_path / "two", [b], {b.record_id: log_b})
    result = invoke(one, "m", "m", "--results-b", str(two), "--metric", "acc_norm", "--format", "json")
    assert result.exit_code == 0, result.output
    (task,) = json.loads(result.stdout)["tasks"]
    assert (task["metric"], task["difference"], task["p_value"]) == ("acc_norm", pytest.approx(0.1), 1.0)


def test_different_task_versions_are_compared_on_shared_samples_with_a_note(tmp_path: Path) -> None:
    records = [
        make_record("a", "arc_easy", {"acc": 0.5}, n=100, task_fp=sha("limit 100")),
        make_record("b", "arc_easy", {"acc": 0.5}, n=60, task_fp=sha("limit 60")),
    ]
    samples = {
        records[0].record_id: correct_on(100, range(50)),
        records[1].record_id: correct_on(60, range(30)),
    }
    result = invoke(store_with(tmp_path / "results", records, samples), "a", "b")
    assert result.exit_code == 0, result.output
    assert "arc_easy: different task versions (fingerprints" in result.stdout
    assert "60 samples shared of 100 (A) and 60 (B)" in result.stdout


# -- naming the two sides -----------------------------------------------------------------------


def test_model_names_take_the_latest_record_per_task(tmp_path: Path) -> None:
    records, samples = two_models()
    rerun = make_record(
        "small", "arc_easy", {"acc": 0.9}, n=100, run_id="run-3", finished=DAY.format("12:00")
    )
    samples[rerun.record_id] = correct_on(100, range(90))
    store = ResultsStore(store_with(tmp_path / "results", [*records, rerun], samples))
    stored, _ = store.read()
    selection = select_records(store, stored, "small")
    assert selection.records["arc_easy"].run_id == "run-3"
    comparison = compare_models(selection, select_records(store, stored, "large"), task="arc_easy")
    (task,) = comparison.tasks
    assert task.result is not None and task.result.difference == 0.0


def test_run_and_record_ids_select_records(tmp_path: Path) -> None:
    records, samples = two_models()
    both_models = make_record(
        "small", "arc_easy", {"acc": 0.5}, n=100, run_id="run-2", finished=DAY.format("12:00")
    )
    samples[both_models.record_id] = correct_on(100, range(50))
    store = ResultsStore(store_with(tmp_path / "results", [*records, both_models], samples))
    stored, _ = store.read()
    assert set(select_records(store, stored, "run-1").records) == {"arc_easy", "piqa", "wikitext"}
    record = select_records(store, stored, records[0].record_id)
    assert list(record.records) == ["arc_easy"] and record.label.startswith(f"record {records[0].record_id}")
    with pytest.raises(
        DataError, match=r"run run-2 holds records of 2 models \(large, small\); name one as run-2:large"
    ):
        select_records(store, stored, "run-2")
    selection = select_records(store, stored, "run-2:large")
    assert (
        set(selection.records) == {"arc_easy", "piqa", "wikitext"} and selection.label == "run run-2 (large)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["smal", "large"], "error: unknown model, run or record id 'smal'; did you mean 'small'?"),
        (
            ["small", "large", "--task", "hellaswag"],
            "error: unknown task (of those both sides have) 'hellaswag'",
        ),
        (["run-2", "ghost"], "error: unknown model, run or record id 'ghost'; known: large, small"),
    ],
)
def test_unknown_names_are_one_error_line(
    results: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run_main(["compare", *args, "--results", str(results)], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(message) and err.count("\n") == 1


def test_no_shared_task_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [make_record("a", "arc_easy", {"acc": 0.5}), make_record("b", "piqa", {"acc": 0.5})]
    results = store_with(tmp_path / "results", records)
    code, out, err = run_main(["compare", "a", "b", "--results", str(results)], capsys)
    assert (code, out) == (2, "")
    assert (
        err
        == "error: a (latest per task) and b (latest per task) share no task (A has arc_easy; B has piqa)\n"
    )


def test_missing_sample_logs_are_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [make_record("a", "arc_easy", {"acc": 0.5}), make_record("b", "arc_easy", {"acc": 0.5})]
    results = store_with(tmp_path / "results", records)
    code, out, err = run_main(["compare", "a", "b", "--results", str(results)], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("error: no task could be tested: arc_easy: record ")
    assert "(a / arc_easy) has no per-sample log" in err and err.count("\n") == 1


def test_failed_record_id_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failed = make_record("a", "arc_easy", {}, primary="acc", error="boom")
    results = store_with(tmp_path / "results", [failed, make_record("b", "arc_easy", {"acc": 0.5})])
    code, _, err = run_main(["compare", failed.record_id, "b", "--results", str(results)], capsys)
    assert code == 2 and err == f"error: record {failed.record_id} (a / arc_easy) is a failed run: boom\n"


# -- the command's weight -----------------------------------------------------------------------


def test_cli_formats_mirror_the_report_api() -> None:
    assert compare_cli.FORMATS == report.COMPARE_FORMATS


def test_help_imports_neither_pandas_nor_scipy() -> None:
    code = (
        "import sys\n"
        "from evalkit.cli.main import cli\n"
        "for args in (['--help'], ['compare', '--help'], ['leaderboard', '--help']):\n"
        "    cli.main(args, standalone_mode=False)\n"
        "print(sorted(m for m in ('pandas', 'scipy', 'numpy') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip().splitlines()[-1] == "[]"


def test_stats_module_imports_scipy_only_when_a_test_runs() -> None:
    code = "import sys, evalkit.report.stats; print('scipy' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "False"


def test_an_unreadable_store_line_is_an_error_as_in_every_other_view(results: Path) -> None:
    with (results / "records.jsonl").open("a") as handle:
        handle.write('{"schema_version": 2, "truncated\n')
    result = invoke(results, "small", "large")
    assert result.exit_code == 2
    assert "McNemar" in result.output  # the comparison is still shown
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "records.jsonl:" in errors[0]
