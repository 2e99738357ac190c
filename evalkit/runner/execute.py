"""Serving a task's requests: cache lookup, de-duplication, length-sorted chunks, progress.

`CachedServer` is what the runner hands an executor (`evalkit.kinds.RequestServer`): it answers
requests for one model through the response cache and remembers the batch sizes it really used,
so the record can say them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from evalkit.backends import Backend
from evalkit.requests import GenerateRequest, LoglikelihoodRequest, Request, Result, RollingRequest

# Requests are sent in chunks so that progress advances and finished work reaches the
# cache regularly (an interrupted run loses at most one chunk).
CHUNK_SIZE = 512

R = TypeVar("R", bound=Request)


class Cache(Protocol):
    def get_many(self, model: str, requests: Sequence[Request]) -> dict[str, Result]: ...

    def put_many(self, model: str, items: list[tuple[Request, Result]]) -> None: ...


class CachedServer:
    """Answers one model's requests through the cache; see `execute`."""

    def __init__(self, backend: Backend, cache: Cache, *, batch_size: int, show_progress: bool) -> None:
        self.backend, self.cache = backend, cache
        self.batch_size, self.show_progress = batch_size, show_progress
        self._used: set[int] = set()

    def serve(
        self,
        requests: Sequence[Request],
        *,
        description: str = "",
        prefix_reuse: bool = False,
        batch_size: int | None = None,
    ) -> list[Result]:
        return execute(
            self.backend,
            requests,
            cache=self.cache,
            batch_size=self.batch_size if batch_size is None else batch_size,
            description=description,
            show_progress=self.show_progress,
            prefix_reuse=prefix_reuse,
            used_batch_sizes=self._used,
        )

    def batch_sizes(self) -> tuple[int, ...]:
        return tuple(sorted(self._used))


def execute(
    backend: Backend,
    requests: Sequence[Request],
    *,
    cache: Cache,
    batch_size: int,
    description: str = "",
    show_progress: bool = True,
    prefix_reuse: bool = False,
    used_batch_sizes: set[int] | None = None,
) -> list[Result]:
    """Answer every request (in order), computing each distinct request at most once.

    `prefix_reuse` (long-context tasks) sends generate and loglikelihood requests to a backend's
    `PrefixReuse` methods when it has them: shared prefixes are computed once and contexts are never
    truncated. Those results are cached apart from the plain path's (which truncates like lm-eval).
    `used_batch_sizes` collects the batch sizes requests were sent with (prefix reuse walks one
    prompt at a time: 1); requests answered from the cache add nothing.
    """
    from evalkit.backends.capabilities import PrefixReuse

    reuse = prefix_reuse and isinstance(backend, PrefixReuse)
    fingerprint = backend.describe().fingerprint + ("|untruncated" if reuse else "")
    known = cache.get_many(fingerprint, requests)
    pending: dict[str, Request] = {}
    for request in requests:
        key = request.cache_key()
        if key not in known and key not in pending:
            pending[key] = request
    todo = _order_for_batching(list(pending.values()))
    progress = _progress(len(todo), description, show_progress)
    try:
        for kind, chunk in _chunks(todo):
            results = _dispatch(backend, kind, chunk, batch_size, reuse)
            if used_batch_sizes is not None:
                shared = reuse and kind in (LoglikelihoodRequest, GenerateRequest)
                used_batch_sizes.add(1 if shared else batch_size)
            cache.put_many(fingerprint, list(zip(chunk, results, strict=True)))
            for request, result in zip(chunk, results, strict=True):
                known[request.cache_key()] = result
            progress.update(len(chunk))
    finally:
        progress.close()
    return [known[r.cache_key()] for r in requests]


def _order_for_batching(requests: list[Request]) -> list[Request]:
    """Group by request type; within a type, longest context first, identical contexts adjacent.

    Long-first surfaces an out-of-memory failure at once, similar lengths in one chunk
    waste little padding, and adjacent identical contexts let the backend encode each once.
    """
    rank = {LoglikelihoodRequest: 0, GenerateRequest: 1, RollingRequest: 2}
    return sorted(requests, key=lambda r: (rank[type(r)], -len(_context(r)), _context(r)))


def _chunks(requests: list[Request]) -> list[tuple[type, list[Request]]]:
    """Split into same-type chunks of about CHUNK_SIZE, never splitting a shared context."""
    chunks: list[tuple[type, list[Request]]] = []
    current: list[Request] = []
    for request in requests:
        boundary = current and (
            type(request) is not type(current[-1])
            or (len(current) >= CHUNK_SIZE and _context(request) != _context(current[-1]))
        )
        if boundary:
            chunks.append((type(current[0]), current))
            current = []
        current.append(request)
    if current:
        chunks.append((type(current[0]), current))
    return chunks


def _context(request: Request) -> str:
    return request.context if isinstance(request, LoglikelihoodRequest | GenerateRequest) else request.text


def _dispatch(
    backend: Backend, kind: type, chunk: list[Request], batch_size: int, reuse: bool
) -> list[Result]:
    calls: dict[type, Callable[[list[Request], int], Sequence[Result]]] = {
        LoglikelihoodRequest: backend.loglikelihood,  # type: ignore[dict-item]
        GenerateRequest: backend.generate,  # type: ignore[dict-item]
        RollingRequest: backend.loglikelihood_rolling,  # type: ignore[dict-item]
    }
    if reuse:
        shared: Any = backend  # a PrefixReuse (checked by the caller)
        calls[LoglikelihoodRequest] = lambda requests, _: shared.loglikelihood_shared(requests)
        calls[GenerateRequest] = lambda requests, _: shared.generate_shared(requests)
    results = list(calls[kind](chunk, batch_size))
    if len(results) != len(chunk):
        raise RuntimeError(f"backend returned {len(results)} results for {len(chunk)} requests")
    return results


class _Progress(Protocol):
    def update(self, n: int) -> object: ...

    def close(self) -> None: ...


def _progress(total: int, description: str, enabled: bool) -> _Progress:
    from tqdm import tqdm

    progress: _Progress = tqdm(
        total=total,
        desc=description,
        unit="req",
        disable=not enabled or total == 0,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )
    return progress
