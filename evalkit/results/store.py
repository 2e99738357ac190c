"""A folder of JSON Lines run records, with per-sample logs beside them.

Layout:
    <root>/records.jsonl                 one RunRecord per line (any *.jsonl at the top level is read)
    <root>/samples/<record_id>.jsonl     that record's SampleLog lines

Writes never rewrite existing data: a record is appended as one whole line under an exclusive
lock and fsynced; its samples file is written to a temporary name and renamed into place *before*
the record that points at it. A record is stored whole or not at all: a write that fails (a full
disk) truncates the records file back to its length before the append, removes the samples file
and its temporary, and raises `StoreWriteError`. Only a crash in the middle of an append can leave
a partial last line, which the reader reports (file:line) and skips, and which the next append
fences off with a newline so later records stay readable.

Only the current schema version is written; lines of older versions are upgraded in memory as
they are read (`_upgrade.py`) and stay on disk as they were written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from evalkit.errors import DataError, StoreWriteError
from evalkit.paths import check_writable_dir, check_writable_file
from evalkit.results._upgrade import upgrade_record
from evalkit.results.schema import SCHEMA_VERSION, RunRecord, SampleLog

log = logging.getLogger("evalkit.results")

RECORDS_FILE = "records.jsonl"
SAMPLES_DIR = "samples"


@dataclass(frozen=True)
class ReadProblem:
    file: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ResultsStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def records_path(self) -> Path:
        return self.root / RECORDS_FILE

    # -- writing -----------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Raise `NotWritableError` unless records and samples can be written here; creates nothing.

        Called before a run starts, so that minutes of evaluation never end unable to be stored.
        """
        check_writable_dir(self.root, "results folder")
        if (self.root / SAMPLES_DIR).exists():
            check_writable_dir(self.root / SAMPLES_DIR, "samples folder")
        if self.records_path.exists():
            check_writable_file(self.records_path, "records file")

    def append(self, record: RunRecord, samples: Iterable[SampleLog] | None = None) -> RunRecord:
        """Store one record (and its samples) whole, or raise `StoreWriteError` having stored nothing.

        Returns the record as stored.
        """
        samples_path: Path | None = None
        if samples is not None:
            relative = f"{SAMPLES_DIR}/{record.record_id}.jsonl"
            samples_path = self.root / relative
            record = record.model_copy(update={"samples_file": relative})
        # Encoded before anything is written, so a record that cannot be encoded leaves no samples file.
        line = (record.model_dump_json() + "\n").encode("utf-8")
        failed_at = self.root
        kept = "nothing of it was kept"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if samples_path is not None and samples is not None:
                failed_at = samples_path
                _write_atomically(samples_path, (s.model_dump_json() + "\n" for s in samples))
            failed_at = self.records_path
            _append_whole_line(self.records_path, line)
        except OSError as exc:
            if samples_path is not None and failed_at == self.records_path:
                with contextlib.suppress(OSError):  # the write's own failure is the one to report
                    samples_path.unlink(missing_ok=True)  # no record points at it
            if isinstance(exc, _PartialLineLeft):
                kept = f"a partial line stays ({exc.undo}), which readers skip and the next append fences off"
            raise StoreWriteError(
                f"{failed_at}: the record of {record.model.name} × {record.task.name} was not stored: "
                f"{exc.strerror or exc}; {kept}"
            ) from None
        return record

    # -- reading -----------------------------------------------------------------------------

    def record_files(self) -> list[Path]:
        if not self.root.exists():
            return []
        return sorted(p for p in self.root.glob("*.jsonl") if p.is_file())

    def read(self) -> tuple[list[RunRecord], list[ReadProblem]]:
        """All readable records, and one problem per line that could not be read."""
        if not self.root.exists():
            raise DataError(f"{self.root}: results folder not found")
        records: list[RunRecord] = []
        problems: list[ReadProblem] = []
        for path in self.record_files():
            for line_no, item in _read_lines(path):
                if isinstance(item, ReadProblem):
                    problems.append(item)
                    continue
                parsed = parse_record(item, path, line_no)
                if isinstance(parsed, ReadProblem):
                    problems.append(parsed)
                else:
                    records.append(parsed)
        return records, problems

    def read_samples(self, record: RunRecord) -> list[SampleLog]:
        if record.samples_file is None:
            return []
        path = self.root / record.samples_file
        if not path.exists():
            raise DataError(f"{path}: per-sample log of record {record.record_id} is missing")
        samples = []
        for line_no, item in _read_lines(path):
            if isinstance(item, ReadProblem):
                raise DataError(str(item))
            try:
                samples.append(SampleLog.model_validate(item))
            except ValidationError as exc:
                raise DataError(f"{path}:{line_no}: not a sample log: {_first_error(exc)}") from None
        return samples


def parse_record(data: object, path: Path, line_no: int) -> RunRecord | ReadProblem:
    """One line's JSON as a current-version record (older versions upgraded), or why it was skipped."""
    if not isinstance(data, dict):
        return ReadProblem(path, line_no, "corrupt record skipped: not a JSON object")
    version = data.get("schema_version")
    if not isinstance(version, int):
        return ReadProblem(path, line_no, "corrupt record skipped: no schema_version")
    if version > SCHEMA_VERSION:
        return ReadProblem(
            path,
            line_no,
            f"record uses schema version {version}, newer than this evalkit reads "
            f"({SCHEMA_VERSION}); upgrade evalkit to read it",
        )
    if version < 1:
        return ReadProblem(path, line_no, f"corrupt record skipped: no schema version {version}")
    upgraded = upgrade_record(data)
    if upgraded.dropped:
        log.warning(
            "%s:%d: schema %d record read without %s (no such figure in schema %d)",
            path,
            line_no,
            version,
            ", ".join(upgraded.dropped),
            SCHEMA_VERSION,
        )
    try:
        return RunRecord.model_validate(upgraded.data)
    except ValidationError as exc:
        return ReadProblem(path, line_no, f"corrupt record skipped: {_first_error(exc)}")


def _read_lines(path: Path) -> Iterator[tuple[int, object | ReadProblem]]:
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield line_no, json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield line_no, ReadProblem(path, line_no, f"corrupt line skipped: {exc}")


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "(record)"
    return f"{where}: {error['msg']}"


def _append_whole_line(path: Path, line: bytes) -> None:
    """Append `line` under an exclusive lock; on any failure truncate back so no partial line remains."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # other writers append only under this lock: truncating is safe
        before = os.fstat(fd).st_size
        if before and os.pread(fd, 1, before - 1) != b"\n":
            line = b"\n" + line  # fence off a partial line left by a crash
        try:
            _write_all(fd, line)
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, before)  # shrinking needs no free space
                os.fsync(fd)
            except OSError as undo:
                raise _PartialLineLeft(exc, undo) from exc
            raise
    finally:
        os.close(fd)


class _PartialLineLeft(OSError):
    """A failed append whose partial line could not be truncated away either."""

    def __init__(self, failure: OSError, undo: OSError) -> None:
        super().__init__(failure.errno, failure.strerror)
        self.undo = undo.strerror or str(undo)


def _write_all(fd: int, data: bytes) -> None:
    """`os.write` until every byte is written: a write may write fewer bytes than asked (a full disk)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # no progress and no error: stop rather than loop forever
            raise OSError(errno.EIO, "the write made no progress")
        view = view[written:]


def _write_atomically(path: Path, lines: Iterable[str]) -> None:
    """Write `lines` to a temporary name, then rename it to `path`; on failure leave neither behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            chunk = bytearray()
            for line in lines:
                chunk += line.encode("utf-8")
                if len(chunk) >= _CHUNK:
                    _write_all(fd, bytes(chunk))
                    chunk.clear()
            _write_all(fd, bytes(chunk))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:  # a failed write, or an interrupt: no partial temporary stays behind
        temporary.unlink(missing_ok=True)
        raise


_CHUNK = 1 << 20  # samples are written in chunks of about this many bytes
