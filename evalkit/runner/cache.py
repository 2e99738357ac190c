"""A persistent response cache keyed by model fingerprint + request.

An interrupted run resumes from what it already computed, and a rerun of the same work
is answered from disk. Keying on the model fingerprint (weights + output-changing load
options) means two models, or one model at two dtypes, never share answers.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from evalkit.paths import cache_dir
from evalkit.requests import Request, Result, result_from_json, result_to_json


def cache_root() -> Path:
    return cache_dir()


class ResponseCache:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_root() / "responses.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses "
            "(model TEXT, request TEXT, result TEXT, PRIMARY KEY (model, request))"
        )
        self._db.commit()

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


class NullCache:
    """Used with --no-cache: remembers nothing."""

    def get_many(self, model: str, requests: Sequence[Request]) -> dict[str, Result]:
        return {}

    def put_many(self, model: str, items: Iterable[tuple[Request, Result]]) -> None:
        return None

    def close(self) -> None:
        return None
