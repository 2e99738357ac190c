"""A persistent response cache keyed by model (`cache_model_key`) + request.

An interrupted run resumes from what it already computed, and a rerun of the same work
is answered from disk. The model key is the model fingerprint (weights + output-changing load
options) plus the numerics it runs at (dtype, device kind), so two models, one model at two
dtypes, or one model on a CPU and on a GPU never share answers.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from evalkit.backends import ModelFacts
from evalkit.errors import DataError
from evalkit.paths import CACHE_ENV, cache_dir, check_writable_dir
from evalkit.requests import Request, Result, result_from_json, result_to_json

# The dtypes the built-in backends run at by default on a CPU (transformers' float32, llama.cpp's own
# GGUF kernels, the fake's float64). A CPU run at one of these keeps the bare fingerprint as its key,
# the key every cache row had before dtype and device joined it, so existing caches stay valid: the
# fingerprint already holds every load option that changes outputs (transformers puts dtype in it).
_BARE_KEY_DTYPES = frozenset({"float32", "gguf", "float64"})


def cache_model_key(facts: ModelFacts, *, untruncated: bool = False) -> str:
    """The response cache's model key: a cached response never crosses numerics.

    The fingerprint, plus the dtype and the device kind (`cuda:1` -> `cuda`) unless the model runs
    on a CPU at its backend's default dtype. bfloat16 and float32, or CPU and CUDA kernels, give
    slightly different log-probabilities, so their answers are kept apart. `untruncated`: answers of
    the shared-prefix path (which never truncates a context) are kept apart from the plain path's.
    """
    device = device_kind(facts.device)
    key = facts.fingerprint
    if device != "cpu" or facts.dtype not in _BARE_KEY_DTYPES:
        key += f"|dtype={facts.dtype}|device={device}"
    return key + ("|untruncated" if untruncated else "")


def device_kind(device: str) -> str:
    """`cuda:1` -> `cuda`; `cpu`, `mps` unchanged."""
    return device.split(":", 1)[0].strip().lower() or "cpu"


class ResponseCache:
    def __init__(self, path: Path | None = None) -> None:
        """Open (or create) the cache; a place that cannot hold it fails here, before any model loads."""
        self.path = path or cache_dir() / "responses.sqlite"
        elsewhere = f"set {CACHE_ENV} to a writable folder"
        check_writable_dir(self.path.parent, "response cache folder", hint=elsewhere)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = _open_responses(self.path)
        except sqlite3.Error as exc:  # "file is not a database", a read-only file, a folder, ...
            raise DataError(
                f"{self.path}: not usable as the response cache ({exc}); it holds only answers that "
                f"can be recomputed: delete it, or {elsewhere}"
            ) from None

    def get_many(self, model: str, requests: Sequence[Request]) -> dict[str, Result]:
        keys = list({r.cache_key() for r in requests})
        found: dict[str, Result] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT request, result FROM responses WHERE model = ? AND request IN ({marks})",
                [model, *chunk],
            )
            for key, payload in rows:
                found[key] = result_from_json(json.loads(payload))
        return found

    def put_many(self, model: str, items: Iterable[tuple[Request, Result]]) -> None:
        rows = [(model, req.cache_key(), json.dumps(result_to_json(res))) for req, res in items]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        self._db.close()


def _open_responses(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=60)
    try:
        db.execute("PRAGMA journal_mode=WAL")  # the first statement to read the file: a bad file fails here
        db.execute(
            "CREATE TABLE IF NOT EXISTS responses "
            "(model TEXT, request TEXT, result TEXT, PRIMARY KEY (model, request))"
        )
        db.commit()
    except sqlite3.Error:
        db.close()
        raise
    return db


class NullCache:
    """Used with --no-cache: remembers nothing."""

    def get_many(self, model: str, requests: Sequence[Request]) -> dict[str, Result]:
        return {}

    def put_many(self, model: str, items: Iterable[tuple[Request, Result]]) -> None:
        return None

    def close(self) -> None:
        return None
