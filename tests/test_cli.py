"""The command line: every command through click's runner, and the exit-code contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli.main import cli


def invoke(*args: str) -> tuple[int, str, str]:
    """Run `evalkit ARGS` as the console script does (errors → one line, exit 2)."""
    completed = subprocess.run(
        [sys.executable, "-c", "from evalkit.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    return completed.returncode, completed.stdout, completed.stderr


def test_help_is_instant_and_imports_nothing_heavy() -> None:
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom evalkit.cli.main import cli\n"
        "r = CliRunner().invoke(cli, ['--help'])\nassert r.exit_code == 0, r.output\n"
        "names = ('torch', 'transformers', 'pandas', 'datasets', 'lm_eval', 'numpy')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    for command in ("run", "tasks", "models", "leaderboard"):
        assert command in result.output


def test_run_then_leaderboard(toy_tasks: Path, tmp_path: Path, fresh_cache: Path) -> None:
    results = tmp_path / "results"
    code, out, err = invoke(
        "run", "-m", "fake", "--suite", "toy", "--task-dir", str(toy_tasks), "--results", str(results), "-q"
    )
    assert code == 0, err
    assert "toy_mc" in out and "stored 4 record(s)" in out
    code, out, err = invoke("leaderboard", "--results", str(results), "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "-m", "fake", "-t", "arc_easyy"], "did you mean 'arc_easy'"),
        (["run", "-m", "fake", "--suite", "quik"], "did you mean 'quick'"),
        (["run", "-m", "fake,sed=1", "-t", "arc_easy"], "did you mean 'seed'"),
        (["run", "-m", "fake"], "give exactly one of --tasks or --suite"),
        (["run", "-m", "fake", "-t", "arc_easy", "--limit", "0"], "--limit"),
        (["tasks", "show", "hellaswg"], "did you mean 'hellaswag'"),
        (["leaderboard", "--results", "/nonexistent/results"], "/nonexistent/results"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    code, _, err = invoke(*args)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert any(message in line for line in lines), err
    assert "Traceback" not in err


def test_malformed_task_file_names_file_and_line(toy_tasks: Path, tmp_path: Path) -> None:
    (toy_tasks / "broken.yaml").write_text("name: broken\nkind: multiple_choice\ndataset: {}\ntemplte: x\n")
    code, _, err = invoke(
        "run", "-m", "fake", "-t", "broken", "--task-dir", str(toy_tasks), "--results", str(tmp_path)
    )
    assert code == 2
    assert f"{toy_tasks / 'broken.yaml'}:4: unknown key 'templte'; did you mean 'template'?" in err


def test_answer_regex_that_does_not_compile_is_exit_2_with_file_and_line(
    toy_tasks: Path, tmp_path: Path
) -> None:
    (toy_tasks / "badre.yaml").write_text(
        "name: badre\nkind: generate\ndataset:\n  mirrors:\n"
        "    - {format: jsonl, path: qa.jsonl, split: test}\n"
        'template: "Q: {question}"\nanswer:\n  regex: "The answer is (\\\\d+"\n'
    )
    results = tmp_path / "results"
    code, _, err = invoke(
        "run", "-m", "fake", "-t", "badre", "--task-dir", str(toy_tasks), "--results", str(results)
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{toy_tasks / 'badre.yaml'}:8: answer.regex: regex " in err and "does not compile" in err
    assert not results.exists()


def test_missing_data_file_exit_2_before_any_model_loads(
    toy_tasks: Path, tmp_path: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (toy_tasks / "data" / "qa.jsonl").unlink()
    results = tmp_path / "results"
    loaded: list[str] = []
    import sys

    from evalkit.runner import evaluate  # noqa: F401  (the module, for monkeypatching)

    monkeypatch.setattr(sys.modules["evalkit.runner.evaluate"], "load_model", loaded.append)
    code, _, err = invoke(
        "run", "-m", "fake", "--suite", "toy", "--task-dir", str(toy_tasks), "--results", str(results), "-q"
    )
    assert code == 2 and loaded == []  # found while planning: no model was loaded for nothing
    assert err.strip().startswith("error:") and "toy_gen.yaml" in err and "qa.jsonl" in err
    assert not (results / "records.jsonl").exists()  # nothing half-run is stored


def test_models_list_shows_aliases() -> None:
    result = CliRunner().invoke(cli, ["models", "list"])
    assert result.exit_code == 0
    assert "smollm2-135m" in result.output and "gemma3-270m" in result.output


def test_tasks_list_shows_builtin_tasks_and_suites() -> None:
    result = CliRunner().invoke(cli, ["tasks", "list", "--no-counts"])
    assert result.exit_code == 0, result.output
    for name in ("arc_easy", "hellaswag", "mmlu", "lambada_openai", "quick"):
        assert name in result.output


def test_leaderboard_shows_variants_against_their_reference() -> None:
    """The reference run's llama.cpp row is measured against the dequantized transformers run."""
    repo_results = Path(__file__).resolve().parents[1] / "results"
    result = CliRunner().invoke(cli, ["leaderboard", "--results", str(repo_results), "--no-ranks"])
    assert result.exit_code == 0, result.output
    assert "Quantized variants against their reference" in result.output
    section = result.output.split("Quantized variants against their reference", 1)[1]
    rows = [line.split() for line in section.splitlines() if line.startswith("llamacpp:smollm2-135m ")]
    assert rows and all(row[1] == "smollm2-135m" and row[-1] == "paired" for row in rows)
    assert "efficiency_quick" not in {row[2] for row in rows}  # accuracy changes only


def test_tasks_list_and_show_take_task_dirs(toy_tasks: Path, fresh_cache: Path) -> None:
    listed = CliRunner().invoke(cli, ["tasks", "list", "--task-dir", str(toy_tasks)])
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if line.startswith("toy_mc "))
    assert "multiple_choice" in row and " 6 " in row  # counted from the folder's own data
    shown = CliRunner().invoke(cli, ["tasks", "show", "toy_gen", "--task-dir", str(toy_tasks)])
    assert shown.exit_code == 0, shown.output
    assert "first sample, as sent to the model:" in shown.output and "Q: Capital of France?" in shown.output
