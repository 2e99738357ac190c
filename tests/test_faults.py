"""Faults the store and a run must survive (issue 10, cases 1 and 3).

A record is stored whole or not at all: a full disk (simulated by a fault-injecting `os.write`, and
for real by a file-size limit) leaves no partial line and no `.tmp` file, and `evalkit run` stops with
exit 1 and one line. Places evalkit writes to are checked before any model loads: exit 2, one line
naming the path. Root ignores permission bits, so "not writable" is made with a path under a regular
file (which root cannot cross either) or with an injected access check.
"""

from __future__ import annotations

import errno
import importlib
import os
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.backends import aliases
from evalkit.cli.main import cli, main
from evalkit.errors import NotWritableError, StoreWriteError
from evalkit.paths import check_writable_dir, check_writable_file
from evalkit.results import ResultsStore, RunRecord, SampleLog
from evalkit.runner import cache as cache_module

GOLDEN_LINE = (Path(__file__).parent / "golden" / "run_record_v2.jsonl").read_text().splitlines()[0]


def record(record_id: str) -> RunRecord:
    return RunRecord.model_validate_json(GOLDEN_LINE).model_copy(
        update={"record_id": record_id, "samples_file": None}
    )


def samples(n: int = 20) -> list[SampleLog]:
    return [
        SampleLog(
            sample_id=str(i), prompt=f"Question {i}?", target="yes", response="yes", scores={"acc": 1.0}
        )
        for i in range(n)
    ]


class FullDisk:
    """`os.write` to files whose name contains `name`, as on a disk with `room` bytes free: the write
    that crosses the limit writes what fits and returns a short count, the next fails with ENOSPC.
    The first `after_writes` matching writes pass untouched (earlier records fit). `step` caps every
    write at that many bytes without failing: short writes alone."""

    def __init__(self, name: str, room: int = 0, *, after_writes: int = 0, step: int | None = None) -> None:
        self.name, self.room, self.after_writes, self.step = name, room, after_writes, step
        self.real_write = os.write

    def write(self, fd: int, data: bytes | memoryview) -> int:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return self.real_write(fd, data)
        if self.name not in Path(target).name:
            return self.real_write(fd, data)
        if self.after_writes > 0:
            self.after_writes -= 1
            return self.real_write(fd, data)
        if self.step is not None:
            return self.real_write(fd, bytes(data[: self.step]))
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self.real_write(fd, bytes(data[: self.room]))
        self.room -= written
        return written

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FullDisk:
        monkeypatch.setattr(os, "write", self.write)
        return self


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.name.endswith(".tmp"))


# -- the store: whole or nothing ------------------------------------------------------------------


def test_short_writes_still_store_the_whole_record_and_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    FullDisk(".jsonl", step=7).install(monkeypatch)
    store = ResultsStore(tmp_path)
    stored = store.append(record("a" * 32), samples())
    monkeypatch.undo()
    records, problems = store.read()
    assert problems == [] and records == [stored]
    assert store.read_samples(stored) == samples()


def test_full_disk_on_the_records_file_keeps_nothing_of_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ResultsStore(tmp_path)
    first = store.append(record("a" * 32), samples())
    before = store.records_path.read_bytes()
    FullDisk("records.jsonl", room=300).install(monkeypatch)
    with pytest.raises(StoreWriteError, match=r"records\.jsonl: .* not stored: No space left on device"):
        store.append(record("b" * 32), samples())
    monkeypatch.undo()
    assert store.records_path.read_bytes() == before  # the 300 bytes that fitted are gone again
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [f"{'a' * 32}.jsonl"]
    third = store.append(record("c" * 32))  # the store stays usable once there is room again
    assert store.read() == ([first, third], [])


def test_full_disk_after_a_crash_left_a_partial_line_removes_only_what_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ResultsStore(tmp_path)
    store.records_path.write_text(GOLDEN_LINE[:150])  # a crash mid-append, before this run
    FullDisk("records.jsonl", room=1).install(monkeypatch)  # room for the fencing newline only
    with pytest.raises(StoreWriteError):
        store.append(record("b" * 32))
    assert store.records_path.read_text() == GOLDEN_LINE[:150]


def test_failed_fsync_keeps_nothing_of_the_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ResultsStore(tmp_path)
    store.append(record("a" * 32))
    before = store.records_path.read_bytes()

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(StoreWriteError, match="Input/output error"):
        store.append(record("b" * 32))
    assert store.records_path.read_bytes() == before


def test_full_disk_on_the_samples_log_leaves_no_temporary_and_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ResultsStore(tmp_path)
    FullDisk(".tmp", room=100).install(monkeypatch)
    with pytest.raises(StoreWriteError, match=rf"samples/{'b' * 32}\.jsonl: .*No space left on device"):
        store.append(record("b" * 32), samples())
    assert leftovers(tmp_path) == [] and list((tmp_path / "samples").iterdir()) == []
    assert not store.records_path.exists()


# -- evalkit run on a full disk: exit 1, one line, nothing claimed that is not stored -------------


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """`evalkit ARGS` in this process (so faults can be injected), as the console script runs it."""
    monkeypatch.setattr(sys, "argv", ["evalkit", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_toy(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], toy: Path, results: Path
) -> tuple[int, str, str]:
    return run_main(
        monkeypatch,
        capsys,
        "run",
        "-m",
        "fake",
        "-s",
        "toy",
        "--task-dir",
        str(toy),
        "--results",
        str(results),
        "-q",
    )


def test_run_stops_with_exit_1_when_the_disk_fills_at_the_second_record(
    toy_tasks: Path,
    tmp_path: Path,
    fresh_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = tmp_path / "results"
    FullDisk("records.jsonl", room=200, after_writes=1).install(monkeypatch)
    code, out, err = run_toy(monkeypatch, capsys, toy_tasks, results)
    assert code == 1
    assert err.splitlines() == [err.strip()] and err.startswith("error: ")
    assert "records.jsonl" in err and "fake × toy_cloze" in err and "No space left on device" in err
    assert "stored 1 record(s)" in out and "toy_cloze" not in out  # only what the store holds
    records, problems = ResultsStore(results).read()
    assert problems == [] and [r.task.name for r in records] == ["toy_mc"]
    assert [p.name for p in (results / "samples").iterdir()] == [f"{records[0].record_id}.jsonl"]


def test_run_stops_with_exit_1_when_the_samples_log_hits_a_full_disk(
    toy_tasks: Path,
    tmp_path: Path,
    fresh_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = tmp_path / "results"
    FullDisk(".tmp", room=50).install(monkeypatch)
    code, out, err = run_toy(monkeypatch, capsys, toy_tasks, results)
    assert code == 1 and len(err.splitlines()) == 1 and "No space left on device" in err
    assert "stored 0 record(s)" in out
    assert leftovers(results) == [] and list((results / "samples").iterdir()) == []
    assert not (results / "records.jsonl").exists() or ResultsStore(results).read() == ([], [])


def _limit_file_size(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then the kernel fails the write with EFBIG instead


def test_run_at_a_real_file_size_limit_stores_nothing_partial(toy_tasks: Path, tmp_path: Path) -> None:
    """Not simulated: the kernel cuts the append short at RLIMIT_FSIZE, as a full disk would."""
    results = tmp_path / "results"
    base = [sys.executable, "-c", "from evalkit.cli.main import main; main()", "run", "-m", "fake"]
    base += ["--task-dir", str(toy_tasks), "--results", str(results), "--no-cache", "-q"]
    first = subprocess.run([*base, "-t", "toy_mc"], capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    before = (results / "records.jsonl").read_bytes()
    assert max(p.stat().st_size for p in (results / "samples").iterdir()) < len(before)
    second = subprocess.run(
        [*base, "-t", "toy_cloze"],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=lambda: _limit_file_size(len(before) + 100),  # the new line does not fit
    )
    assert second.returncode == 1, second.stderr
    assert second.stderr.startswith("error: ") and len(second.stderr.splitlines()) == 1
    assert "File too large" in second.stderr and "records.jsonl" in second.stderr
    assert (results / "records.jsonl").read_bytes() == before
    assert len(list((results / "samples").iterdir())) == 1 and leftovers(results) == []


# -- writable places, checked before any model loads ---------------------------------------------


def test_check_writable_dir_creates_nothing_and_names_what_blocks(tmp_path: Path) -> None:
    check_writable_dir(tmp_path / "a" / "b", "results folder")
    assert not (tmp_path / "a").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(
        NotWritableError, match=re.escape(f"results folder {blocker}/r is under {blocker}, which is not")
    ):
        check_writable_dir(blocker / "r", "results folder")
    with pytest.raises(NotWritableError, match=re.escape(f"--out {blocker} is not a folder")):
        check_writable_dir(blocker, "--out")


def test_check_writable_dir_reports_a_folder_without_write_permission(tmp_path: Path) -> None:
    def denied(path: Path) -> bool:
        return path != tmp_path

    with pytest.raises(
        NotWritableError, match=re.escape(f"cannot be created: {tmp_path} is not writable; set X")
    ):
        check_writable_dir(tmp_path / "cache", "cache", hint="set X", access=denied)
    with pytest.raises(NotWritableError, match=re.escape(f"cache {tmp_path} is not writable")):
        check_writable_dir(tmp_path, "cache", access=denied)


def test_check_writable_file_refuses_a_folder_and_a_read_only_file(tmp_path: Path) -> None:
    with pytest.raises(NotWritableError, match="is a folder, not a file"):
        check_writable_file(tmp_path, "--out")
    existing = tmp_path / "plot.html"
    existing.write_text("old")
    with pytest.raises(NotWritableError, match=re.escape(f"--out {existing} is not writable")):
        check_writable_file(existing, "--out", access=lambda path: False)
    check_writable_file(existing, "--out")


@pytest.fixture
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Model specs that were loaded: a preflight failure must leave this empty."""
    loaded: list[str] = []
    evaluate_module = importlib.import_module("evalkit.runner.evaluate")  # the package re-exports the name
    real = evaluate_module.load_model

    def load(spec: object) -> object:
        loaded.append(str(spec))
        return real(spec)  # type: ignore[arg-type]

    monkeypatch.setattr(evaluate_module, "load_model", load)
    return loaded


def assert_one_error_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize("layout", ["results under a file", "records.jsonl a folder"])
def test_run_refuses_an_unwritable_results_folder_before_loading_a_model(
    layout: str,
    toy_tasks: Path,
    tmp_path: Path,
    fresh_cache: Path,
    no_model_loads: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    results = blocker / "results"
    if layout == "records.jsonl a folder":
        results = tmp_path / "results"
        (results / "records.jsonl").mkdir(parents=True)
    code, _, err = run_toy(monkeypatch, capsys, toy_tasks, results)
    assert_one_error_line(code, err, str(results))
    assert no_model_loads == []


@pytest.mark.parametrize("layout", ["a file", "under a file", "under an unwritable HOME"])
def test_run_refuses_an_unwritable_cache_before_loading_a_model(
    layout: str,
    toy_tasks: Path,
    tmp_path: Path,
    no_model_loads: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    if layout == "under an unwritable HOME":  # the cache defaults to ~/.cache/evalkit
        monkeypatch.delenv("EVALKIT_CACHE_DIR")
        monkeypatch.setenv("HOME", str(blocker / "home"))
        named = str(blocker / "home" / ".cache" / "evalkit")
    else:
        named = str(blocker if layout == "a file" else blocker / "cache")
        monkeypatch.setenv("EVALKIT_CACHE_DIR", named)
    code, _, err = run_toy(monkeypatch, capsys, toy_tasks, tmp_path / "results")
    assert_one_error_line(code, err, named, "EVALKIT_CACHE_DIR")
    assert no_model_loads == [] and not (tmp_path / "results").exists()


def test_run_names_a_corrupt_response_cache_and_how_to_fix_it(
    toy_tasks: Path,
    tmp_path: Path,
    fresh_cache: Path,
    no_model_loads: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fresh_cache.mkdir()
    (fresh_cache / "responses.sqlite").write_bytes(b"not a database, " * 512)
    code, _, err = run_toy(monkeypatch, capsys, toy_tasks, tmp_path / "results")
    assert_one_error_line(
        code,
        err,
        str(fresh_cache / "responses.sqlite"),
        "file is not a database",
        "delete it",
        "EVALKIT_CACHE_DIR",
    )
    assert no_model_loads == []


@pytest.mark.parametrize(
    "command", [["site", "--no-ranks", "--out"], ["plot", "accuracy", "--out"]], ids=["site", "plot"]
)
def test_views_refuse_an_out_path_under_a_file(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ResultsStore(tmp_path / "results").append(record("a" * 32))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / ("site" if command[0] == "site" else "plot.html")
    code, stdout, err = run_main(
        monkeypatch, capsys, *command, str(out), "--results", str(tmp_path / "results")
    )
    assert_one_error_line(code, err, f"--out {out}", str(blocker))
    assert stdout == ""


@pytest.fixture
def gemma_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The Gemma chunk wheels, stood in for: assembling is recorded, never done."""
    assembled: list[Path] = []

    class Chunks:
        @staticmethod
        def assemble(target: Path, overwrite: bool = False) -> None:
            assembled.append(target)
            Path(target).write_bytes(b"GGUF")

    monkeypatch.setattr(aliases, "_package_dir", lambda module, alias, pip: tmp_path)
    monkeypatch.setitem(sys.modules, aliases.GEMMA3_PACKAGE, Chunks)
    return assembled


@pytest.mark.parametrize("cache", ["writable", "under a file"])
def test_models_list_assembles_nothing_and_says_not_yet_assembled(
    cache: str, gemma_chunks: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_path = tmp_path / "cache"
    if cache == "under a file":
        (tmp_path / "file").write_text("x")
        cache_path = tmp_path / "file" / "cache"
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(cache_path))
    result = CliRunner().invoke(cli, ["models", "list"])
    assert result.exit_code == 0, result.output
    assert f"gguf:{cache_path / 'gguf' / aliases.GEMMA3_FILE} (not yet assembled" in result.output
    assert gemma_chunks == [] and not (tmp_path / "cache").exists()


def test_models_list_shows_an_assembled_gemma_file_as_it_is(
    gemma_chunks: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    assembled = aliases.GEMMA3_270M.locate()  # what a run does: assemble once
    assert gemma_chunks != [] and aliases.GEMMA3_270M.where() == assembled
    assert "not yet assembled" not in CliRunner().invoke(cli, ["models", "list"]).output


def test_response_cache_is_checked_when_opened(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotWritableError, match=r"response cache folder .* set EVALKIT_CACHE_DIR"):
        cache_module.ResponseCache(tmp_path / "file" / "responses.sqlite")


def test_a_real_model_without_the_response_cache_still_checks_the_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Converted weights and assembled GGUF files go to the cache folder even with --no-cache."""
    from evalkit.errors import NotWritableError
    from evalkit.runner import EvalConfig, evaluate

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(blocker / "cache"))
    config = EvalConfig(results_dir=tmp_path / "results", use_cache=False, show_progress=False)
    with pytest.raises(NotWritableError, match="cache folder"):
        evaluate(["gguf:/nowhere/model.gguf"], ["demo_qa"], config=config)
    summary = evaluate(["fake"], ["demo_qa"], config=config)  # the fake model writes no cache
    assert [r.status for r in summary.records] == ["ok"]
