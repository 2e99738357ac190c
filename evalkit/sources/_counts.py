"""Counting a task's documents without reading them again: `evalkit tasks list` in well under a second.

A count is remembered with the identity of the copy it was counted from — the resolved task spec
and, for every file of the mirror that would be read, its path, size and modification time — so
an edited spec, another installed mirror version or a changed file is counted afresh. The memo is
a convenience: when its file cannot be read or written the documents are simply loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from evalkit import paths
from evalkit.sources import _files
from evalkit.sources._load import DocumentCheck, load_documents
from evalkit.sources._types import SourceFacts
from evalkit.specs import TaskSpec

MEMO_NAME = "document_counts.json"
MEMO_VERSION = 1


def counted_source(
    task: TaskSpec, *, document_problem: DocumentCheck | None = None, renders_prompt: bool = True
) -> SourceFacts:
    """The `SourceFacts` (count included) of the task's evaluation documents, from the memo when
    the same copy was counted before, else by loading them (and remembering)."""
    key = data_identity(task)
    memo_path = paths.cache_dir() / MEMO_NAME
    memo = _read(memo_path) if key is not None else {}
    if key is not None and key in memo:
        try:
            return SourceFacts.model_validate(memo[key])
        except ValueError:
            pass  # a memo from another schema: count again
    facts = load_documents(task, document_problem=document_problem, renders_prompt=renders_prompt).source
    if key is not None:
        memo[key] = facts.model_dump(mode="json")
        _write(memo_path, memo)
    return facts


def data_identity(task: TaskSpec) -> str | None:
    """What the task's loaded documents depend on, hashed: the resolved spec and the path, size and
    modification time of every file of the copy that would be read. None when that copy is not a
    local file (the hub): then nothing may be remembered."""
    dataset = task.dataset
    if dataset.hub is not None and dataset.prefer == "hub":
        return None
    task_dir = Path(task.source_file).parent if task.source_file else Path.cwd()
    for mirror in dataset.mirrors:  # the first mirror on this machine is the one load_documents reads
        try:
            located = _files.locate(mirror, task_dir)
        except _files.MirrorUnavailable:
            continue
        files = []
        for path in located.paths:
            for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
                if file.is_file():
                    stat = file.stat()
                    files.append([str(file), stat.st_size, stat.st_mtime_ns])
        spec = task.model_dump_json(exclude_defaults=True, exclude={"fewshot_seed"})  # seeds pick, not load
        payload = json.dumps([MEMO_VERSION, spec, task.source_file, files], sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()
    return None


def _read(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, memo: dict[str, object]) -> None:
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch.write_text(json.dumps(memo, sort_keys=True), encoding="utf-8")
        os.replace(scratch, path)
    except OSError:
        scratch.unlink(missing_ok=True)  # an unwritable cache only costs the next count its time
