"""The fuzz corpus (tests/fuzz/cases.yaml): malformed input → exit 2 and one `error:` line, never a traceback.

Each case runs in-process through `evalkit.cli.main:main`, the console script's own function, with
`sys.exit` caught; a few run as real subprocesses too, to show the in-process output is the same.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import write_toy_tasks
from fabricate_results import run_main

FUZZ = Path(__file__).parent / "fuzz"
FOLDERS = ("tasks", "suites", "policies", "results")


@dataclass(frozen=True)
class Case:
    says: str
    file: str | None = None
    line: int | None = None
    pad_to_bytes: int | None = None
    args: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.file or " ".join(self.args)[:60]


def load_cases() -> list[Case]:
    raw: list[dict[str, Any]] = yaml.safe_load((FUZZ / "cases.yaml").read_text(encoding="utf-8"))
    return [Case(**{**entry, "args": tuple(entry.get("args", ()))}) for entry in raw]


CASES = load_cases()


@dataclass(frozen=True)
class Prepared:
    args: list[str]
    file: Path | None  # where the input file lies, as the command is given it


def prepare(case: Case, tmp: Path) -> Prepared:
    """Lay the case's input out in `tmp` and build its command line (see cases.yaml)."""
    tasks = write_toy_tasks(tmp / "tasks")
    out = str(tmp / "out")
    if case.file is None:
        return Prepared([arg.replace("{tasks}", str(tasks)) for arg in case.args], None)
    source = FUZZ / case.file
    folder, stem = source.parent.name, source.stem
    if folder == "tasks":
        target = tasks / source.name
        args = ["run", "-m", "fake", "-t", stem, "--task-dir", str(tasks), "--results", out, "-q"]
    elif folder == "suites":
        target = tasks / "suites" / source.name
        args = ["run", "-m", "fake", "--suite", stem, "--task-dir", str(tasks), "--results", out, "-q"]
    elif folder == "policies":
        target = tmp / source.name
        args = ["gate", "--policy", str(target), "--results", out]
    else:
        target = tmp / "store" / "records.jsonl"
        target.parent.mkdir()
        args = ["leaderboard", "--results", str(target.parent)]
    shutil.copyfile(source, target)
    if case.pad_to_bytes is not None:
        with target.open("a", encoding="utf-8") as handle:
            while handle.tell() <= case.pad_to_bytes:
                handle.write("# padding to test the size limit\n" * 1024)
    return Prepared(args, target)


def run_in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code, _, err = run_main(args, capsys)
    except Exception as exc:  # any exception but SystemExit is a traceback the user would see
        pytest.fail(f"evalkit {' '.join(args)} raised {type(exc).__name__}: {exc}")
    return code, err


def assert_one_error_line(case: Case, prepared: Prepared, code: int, err: str) -> None:
    assert code == 2, f"exit {code}, stderr: {err!r}"
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, f"not exactly one line: {err!r}"
    assert err.startswith("error: "), err
    assert case.says in err, err
    if prepared.file is not None and case.line is not None:
        assert f"{prepared.file}:{case.line}: " in err, err
    elif prepared.file is not None:
        assert str(prepared.file) in err, err


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_malformed_input_is_one_error_line_and_exit_2(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    prepared = prepare(case, tmp_path)
    code, err = run_in_process(prepared.args, capsys)
    assert_one_error_line(case, prepared, code, err)


# One case of each way an error is printed: click's usage error, a YAML error, a store's corrupt line.
SAMPLE = ("runn", "tasks/tag_function_on_mapping.yaml", "results/not_json.jsonl")


@pytest.mark.parametrize("case", [c for c in CASES if c.id in SAMPLE], ids=lambda c: c.id)
def test_the_console_script_prints_what_the_in_process_run_prints(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    prepared = prepare(case, tmp_path)
    _, in_process = run_in_process(prepared.args, capsys)
    completed = subprocess.run(
        [sys.executable, "-c", "from evalkit.cli.main import main; main()", *prepared.args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert_one_error_line(case, prepared, completed.returncode, completed.stderr)
    assert completed.stderr == in_process


def test_the_corpus_is_whole() -> None:
    """Every input file has exactly one case, every case's file exists, and the corpus is not thin."""
    files = {str(path.relative_to(FUZZ)) for folder in FOLDERS for path in (FUZZ / folder).iterdir()}
    named = [case.file for case in CASES if case.file is not None]
    assert sorted(named) == sorted(set(named)), "a file has two cases"
    assert set(named) == files
    assert all(case.file is None or case.file.split("/")[0] in FOLDERS for case in CASES)
    assert all(bool(case.file) != bool(case.args) for case in CASES), "a case is a file or a command line"
    assert len(CASES) >= 60 and len({c.file.split("/")[0] for c in CASES if c.file}) == len(FOLDERS)
