"""The `long_context` task kind end to end on the deterministic fake backend (byte tokens).

What is checked: the stored depth × length matrix and effective context lengths, lengths that land
within tolerance and never over, byte-identical regeneration, cells beyond the window skipped with
a reason (or run and marked), the loglikelihood mode, sweeps, and bad input failing with the task
file named and exit code 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.backends.fake import FakeBackend, FakeOptions
from evalkit.longcontext._types import Probe
from evalkit.longcontext.fit import tolerance_for
from evalkit.longcontext.score import (
    effective_context_length,
    generation_scores,
    ranking_score,
    relative_effective_length,
)
from evalkit.results.store import ResultsStore
from evalkit.runner import EvalConfig, evaluate
from evalkit.specs import default_catalogue

PASSKEY = """\
name: tiny_passkey
kind: long_context
long_context:
  generator: passkey
  haystack: noise
  lengths: [512, 1024, 2048]
  depths: [0.0, 0.5, 1.0]
  samples: 2
  max_new_tokens: 16
"""


def write_task(folder: Path, text: str) -> Path:
    """Write a task file named after its `name:` (the catalogue finds tasks by file name)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = text.split("name: ", 1)[1].split("\n", 1)[0].strip()
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run_fake(
    tasks_dir: Path, task: str, results: Path | None, *, window: int = 4096, seed: int | None = None
) -> object:
    backend = FakeBackend("fake", FakeOptions(context_window=window))
    config = EvalConfig(results_dir=results, use_cache=False, show_progress=False, seed=seed)
    summary = evaluate([backend], [task], config=config, catalogue=default_catalogue([tasks_dir]))
    (record,) = summary.records
    return record


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from evalkit.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_passkey_grid_is_stored_whole_with_lengths_that_are_what_they_say(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    write_task(tasks, PASSKEY)
    record = run_fake(tasks, "tiny_passkey", tmp_path / "results")
    assert record.status == "ok", record.error
    matrix = record.long_context
    assert matrix is not None
    assert matrix.lengths == [512, 1024, 2048] and matrix.depths == [0.0, 0.5, 1.0]
    assert matrix.row_axis == "depth" and matrix.threshold == 85.6
    assert len(matrix.scores) == 3 and all(len(row) == 3 for row in matrix.scores)
    assert all(value is not None and 0 <= value <= 100 for row in matrix.scores for value in row)
    assert matrix.tokenizer == "ByteTokenizer:utf-8"
    for name in ("ruler_all", "ruler_any", "strict", "effective_context_length"):
        assert name in record.metrics
    assert record.task.primary_metric == "ruler_all" and record.task.num_samples == 18

    (stored,) = ResultsStore(tmp_path / "results").read()[0]
    assert stored.long_context == matrix  # the store alone can draw the heatmap
    samples = ResultsStore(tmp_path / "results").read_samples(stored)
    assert len(samples) == 18
    for sample in samples:
        extra = sample.extra
        budget = extra["length"] - extra["generation_budget"]
        assert extra["prompt_tokens"] <= budget  # never over
        assert budget - extra["prompt_tokens"] <= tolerance_for(extra["length"])
        assert extra["prompt_tokens"] + extra["generation_budget"] == extra["total_tokens"]
        assert len(extra["needle_token_offsets"]) == 1
        assert extra["tokenizer"] == "ByteTokenizer:utf-8" and extra["haystack"] == "noise"
        (offset,) = extra["needle_token_offsets"]
        assert 0 <= offset < extra["prompt_tokens"]


def test_needle_offsets_follow_the_depth(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    write_task(tasks, PASSKEY)
    record = run_fake(tasks, "tiny_passkey", tmp_path / "results")
    samples = ResultsStore(tmp_path / "results").read_samples(record)
    at_2048 = {
        s.extra["depth"]: s.extra["needle_token_offsets"][0] for s in samples if s.extra["length"] == 2048
    }
    assert at_2048[0.0] < at_2048[0.5] < at_2048[1.0]


def test_same_seed_regenerates_byte_identical_prompts_and_another_seed_does_not(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    write_task(tasks, PASSKEY)

    def prompts(results: Path, seed: int | None) -> list[str]:
        record = run_fake(tasks, "tiny_passkey", results, seed=seed)
        return [s.extra["prompt_sha256"] for s in ResultsStore(results).read_samples(record)]

    first, again = prompts(tmp_path / "a", None), prompts(tmp_path / "b", None)
    assert first == again
    assert prompts(tmp_path / "c", 7) != first


def test_depths_of_one_sample_share_their_filler(tmp_path: Path) -> None:
    """Prompts at different depths differ only from the shallower needle on: a backend can compute
    the prefix once (the transformers backend does)."""
    tasks = tmp_path / "tasks"
    write_task(tasks, PASSKEY)
    record = run_fake(tasks, "tiny_passkey", tmp_path / "results")
    samples = ResultsStore(tmp_path / "results").read_samples(record)
    at_2048 = [s for s in samples if s.extra["length"] == 2048 and s.sample_id.endswith("s0")]
    by_depth = {s.extra["depth"]: s.prompt for s in at_2048}
    shared = next(i for i, (a, b) in enumerate(zip(by_depth[0.5], by_depth[1.0], strict=False)) if a != b)
    assert shared >= 0.4 * len(by_depth[1.0])
    assert len({s.extra["seed"] for s in at_2048}) == 1


def test_cells_beyond_the_window_are_skipped_with_the_reason(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    write_task(tasks, PASSKEY)
    record = run_fake(tasks, "tiny_passkey", tmp_path / "results", window=1500)
    matrix = record.long_context
    assert matrix is not None
    assert [row[2] for row in matrix.scores] == [None, None, None]
    assert all(value is not None for row in matrix.scores for value in row[:2])
    assert "context window (1500 tokens)" in matrix.skipped["2048"]
    assert record.task.num_samples == 12


def test_forced_cells_beyond_the_window_run_and_are_marked(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    write_task(tasks, PASSKEY + "  beyond_window: run\n")
    record = run_fake(tasks, "tiny_passkey", tmp_path / "results", window=1500)
    matrix = record.long_context
    assert matrix is not None and matrix.beyond_window == [2048] and not matrix.skipped
    samples = ResultsStore(tmp_path / "results").read_samples(record)
    assert {s.extra["beyond_window"] for s in samples if s.extra["length"] == 2048} == {True}
    assert {s.extra["beyond_window"] for s in samples if s.extra["length"] < 2048} == {False}


def test_loglikelihood_mode_ranks_the_answer_against_distractors(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    write_task(tasks, PASSKEY.replace("max_new_tokens: 16", "max_new_tokens: 8\n  mode: loglikelihood"))
    record = run_fake(tasks, "tiny_passkey", tmp_path / "results")
    assert record.status == "ok", record.error
    assert record.task.primary_metric == "ll_rank" and "ruler_all" not in record.metrics
    sample = ResultsStore(tmp_path / "results").read_samples(record)[0]
    (probe,) = sample.extra["probes"]
    assert len(probe["candidates"]) == 5 and len(probe["logprobs"]) == 5  # the answer + 4 distractors


def test_a_sweep_puts_the_swept_values_on_the_rows(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    write_task(
        tasks,
        "name: tiny_ar\nkind: long_context\nlong_context:\n  generator: associative_recall\n"
        "  params: {queries: 2}\n  sweep: {param: pairs, values: [2, 8]}\n  depths: [0.5]\n"
        "  lengths: [512, 1024]\n  max_new_tokens: 12\n",
    )
    record = run_fake(tasks, "tiny_ar", tmp_path / "results")
    assert record.status == "ok", record.error
    matrix = record.long_context
    assert matrix is not None and matrix.row_axis == "pairs" and matrix.depths == [2.0, 8.0]
    samples = ResultsStore(tmp_path / "results").read_samples(record)
    assert {len(s.extra["probes"]) for s in samples} == {2}  # two questions share each context


def test_aggregation_tasks_have_one_row(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    write_task(
        tasks,
        "name: tiny_fwe\nkind: long_context\nlong_context:\n  generator: frequent_words\n"
        "  lengths: [256, 512]\n  max_new_tokens: 24\n",
    )
    record = run_fake(tasks, "tiny_fwe", tmp_path / "results")
    assert record.status == "ok", record.error
    matrix = record.long_context
    assert matrix is not None and matrix.row_axis == "all" and len(matrix.scores) == 1


def test_long_context_quick_suite_resolves_with_its_grid_overrides() -> None:
    from evalkit.runner.plan import plan_tasks

    catalogue = default_catalogue()
    selections = plan_tasks(catalogue, None, "long-context-quick")
    assert len(selections) >= 9
    for selection in selections:
        spec = selection.resolve(catalogue)
        assert spec.long_context is not None and max(spec.long_context.lengths) <= 2048  # CPU-sized
    recall = next(s.resolve(catalogue) for s in selections if s.name == "assoc_recall")
    assert recall.long_context is not None and recall.long_context.sweep is not None
    assert recall.long_context.sweep.values == [4, 8, 32]  # the suite's values, not the task's


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            "  depths: [0.0, 1.5]",
            "tiny_passkey.yaml:9: long_context.depths.1: Input should be less than or equal to 1",
        ),
        (
            "  params: {digitz: 5}",
            "tiny_passkey.yaml:10: unknown generator parameter 'digitz'; did you mean 'digits'?",
        ),
        (
            "  params: {digits: '5'}",
            "tiny_passkey.yaml:10: generator parameter 'digits': Input should be a valid integer",
        ),
        (
            "  params: {digits: true}",
            "tiny_passkey.yaml:10: generator parameter 'digits': Input should be a valid integer",
        ),
        ("  generator: paskey", "unknown generator 'paskey'; did you mean 'passkey'?"),
        ("  haystack: empty.txt", "empty.txt"),
        ("  template: '{context} {query}'", "long_context.template uses ['query']"),
        ("  haystack: missing.txt", "missing.txt"),
    ],
)
def test_bad_input_fails_before_loading_with_the_task_file_and_exit_2(
    tmp_path: Path, edit: str, expected: str
) -> None:
    tasks = tmp_path / "tasks"
    (tasks).mkdir()
    (tasks / "empty.txt").write_text("  \n\n", encoding="utf-8")
    key = edit.split(":")[0]
    lines = [line for line in PASSKEY.splitlines() if not line.startswith(key + ":")]
    lines.append(edit)
    write_task(tasks, "\n".join(lines) + "\n")
    result = cli(
        "run", "-m", "fake", "-t", "tiny_passkey", "--task-dir", str(tasks), "--results", str(tmp_path / "r")
    )
    assert result.returncode == 2, result.stderr
    assert "tiny_passkey.yaml" in result.stderr and expected in result.stderr, result.stderr
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").glob("*.jsonl"))


def test_a_length_the_haystack_file_cannot_fill_fails_with_exit_2(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "short.txt").write_text("One short sentence here. And a second one.\n", encoding="utf-8")
    write_task(tasks, PASSKEY.replace("haystack: noise", "haystack: short.txt"))
    result = cli(
        "run", "-m", "fake", "-t", "tiny_passkey", "--task-dir", str(tasks), "--results", str(tmp_path / "r")
    )
    assert result.returncode == 2
    assert "tiny_passkey.yaml" in result.stderr and "length 512: the haystack ran out" in result.stderr, (
        result.stderr
    )


def test_scores_follow_ruler_and_the_strict_variant_penalises_extra_candidates() -> None:
    probe = Probe("q?", "A:", ("1111", "2222"), ("3333", "4444"))
    assert generation_scores(probe, "1111 and 2222") == {
        "ruler_all": 100.0,
        "ruler_any": 100.0,
        "strict": 100.0,
    }
    assert generation_scores(probe, "1111") == {"ruler_all": 50.0, "ruler_any": 100.0, "strict": 50.0}
    assert generation_scores(probe, "1111 2222 3333 4444")["strict"] == 50.0
    assert generation_scores(probe, "nothing")["ruler_any"] == 0.0
    assert ranking_score([-1.0, -5.0], [-2.0, -3.0]) == 50.0
    assert ranking_score([-2.0], [-2.0]) == 0.0  # a tie is not a win


def test_effective_context_lengths() -> None:
    lengths = [256, 512, 1024, 2048]
    assert effective_context_length(lengths, [100.0, 90.0, 86.0, 40.0], 85.6) == 1024
    assert effective_context_length(lengths, [80.0, 70.0, None, 10.0], 85.6) is None
    assert relative_effective_length(lengths, [50.0, 45.0, 30.0, 41.0], 0.8) == 2048
    assert relative_effective_length(lengths, [50.0, 39.0, 30.0, 10.0], 0.8) == 256
    assert relative_effective_length(lengths, [0.0, 0.0, 0.0, 0.0], 0.8) is None


def test_run_prints_the_effective_context_length(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    write_task(tasks, PASSKEY)
    result = cli(
        "run", "-m", "fake", "-t", "tiny_passkey", "--task-dir", str(tasks), "--results", str(tmp_path / "r")
    )
    assert result.returncode == 0, result.stderr
    assert "effective context" in result.stdout
    record = json.loads((next((tmp_path / "r").glob("*.jsonl"))).read_text().splitlines()[0])
    assert record["long_context"]["lengths"] == [512, 1024, 2048]


def test_a_suite_sweep_value_the_generator_rejects_fails_before_loading(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    (tasks / "suites").mkdir(parents=True)
    (tasks / "suites" / "bad.yaml").write_text(
        "suite: bad\ntasks:\n  - {task: assoc_recall, sweep: [2]}\n", encoding="utf-8"
    )
    result = cli(
        "run", "-m", "fake", "--suite", "bad", "--task-dir", str(tasks), "--results", str(tmp_path / "r")
    )
    assert result.returncode == 2
    assert "assoc_recall.yaml" in result.stderr and "sweep value 2" in result.stderr, result.stderr


def test_cells_a_backend_would_truncate_are_skipped_even_when_forced(tmp_path: Path) -> None:
    class Truncating(FakeBackend):
        def prompt_limit(self) -> int | None:
            return 1500  # like llama.cpp's n_ctx: longer prompts would lose their start

    tasks = tmp_path / "tasks"
    write_task(tasks, PASSKEY + "  beyond_window: run\n")
    config = EvalConfig(results_dir=None, use_cache=False, show_progress=False)
    backend = Truncating("fake", FakeOptions(context_window=1000))
    (record,) = evaluate(
        [backend], ["tiny_passkey"], config=config, catalogue=default_catalogue([tasks])
    ).records
    matrix = record.long_context
    assert matrix is not None and matrix.beyond_window == [1024]  # forced past the window, not truncated
    assert "1500 tokens this backend runs without truncating" in matrix.skipped["2048"]


def test_the_leaderboard_keeps_long_context_out_of_the_accuracy_mean(tmp_path: Path) -> None:
    from evalkit.report.leaderboard import build_leaderboard
    from tests.conftest import write_toy_tasks

    tasks = write_toy_tasks(tmp_path / "tasks")
    write_task(tasks, PASSKEY)
    backend = FakeBackend("fake", FakeOptions())
    config = EvalConfig(results_dir=None, use_cache=False, show_progress=False)
    summary = evaluate(
        [backend], ["toy_mc", "tiny_passkey"], config=config, catalogue=default_catalogue([tasks])
    )
    board = build_leaderboard(summary.records)
    row = board.frame.iloc[0]
    assert row["mean"] == pytest.approx(summary.records[0].metrics["acc"].value)
    assert row["tasks_in_mean"] == 1
    assert "tiny_passkey/ruler_all" in board.frame.columns
    assert "tiny_passkey/effective_context_length" in board.long_context_columns


def test_the_cli_can_force_cells_beyond_the_window(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    write_task(tasks, PASSKEY)
    for flag, expected in (([], "skipped"), (["--beyond-window", "run"], "run")):
        results = tmp_path / expected
        args = ["run", "-m", "fake,context_window=1500", "-t", "tiny_passkey", "--task-dir", str(tasks)]
        result = cli(*args, "--results", str(results), "--no-cache", *flag)
        assert result.returncode == 0, result.stderr
        (record,) = ResultsStore(results).read()[0]
        assert record.long_context is not None
        if expected == "run":
            assert record.long_context.beyond_window == [2048] and not record.long_context.skipped
        else:
            assert record.long_context.beyond_window == [] and "2048" in record.long_context.skipped


def test_tasks_show_renders_a_sample_with_its_answers() -> None:
    result = cli("tasks", "show", "passkey")
    assert result.returncode == 0, result.stderr
    assert "What is the pass key?" in result.stdout and "answers: ['" in result.stdout
