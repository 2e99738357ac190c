"""A folder of JSON Lines run records, with per-sample logs beside them.

Layout:
    <root>/records.jsonl                 one RunRecord per line (any *.jsonl at the top level is read)
    <root>/samples/<record_id>.jsonl     that record's SampleLog lines

Writes never rewrite existing data: a record is appended as one `write()` of a whole line
under an exclusive lock and fsynced; its samples file is written to a temporary name and
renamed into place *before* the record that points at it. A crash can therefore leave at
worst a partial last line, which the reader reports (file:line) and skips, and which the
next append fences off with a newline so later records stay readable.

Only the current schema version is written; lines of older versions are upgraded in memory as
they are read (`_upgrade.py`) and stay on disk as they were written.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from evalkit.errors import DataError
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

    def append(self, record: RunRecord, samples: Iterable[SampleLog] | None = None) -> RunRecord:
        """Store one record (and its samples); returns the record as stored."""
        self.root.mkdir(parents=True, exist_ok=True)
        if samples is not None:
            relative = f"{SAMPLES_DIR}/{record.record_id}.jsonl"
            _write_atomically(self.root / relative, (s.model_dump_json() + "\n" for s in samples))
            record = record.model_copy(update={"samples_file": relative})
        line = (record.model_dump_json() + "\n").encode("utf-8")
        fd = os.open(self.records_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _ends_without_newline(self.records_path):
                line = b"\n" + line  # fence off a partial line left by a crash
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
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


def _ends_without_newline(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return False
    with path.open("rb") as handle:
        handle.seek(size - 1)
        return handle.read(1) != b"\n"


def _write_atomically(path: Path, lines: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
