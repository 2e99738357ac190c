"""Serving a task's requests: cache lookup, de-duplication, length-sorted chunks, progress.

`CachedServer` is what the runner hands an executor (`evalkit.kinds.RequestServer`): it answers
requests for one model through the response cache and remembers the batch sizes it really used,
so the record can say them.

Out of memory. A batch that runs out of memory (`is_out_of_memory`) is retried at half the batch
size, down to 1; only an out-of-memory error at batch size 1 fails the task. The halved size is
kept for the rest of the call, since requests go longest first and later batches are no larger.
`batch_size="auto"` finds the largest size that fits by trying, as lm-eval's `auto` does: it starts
at `AUTO_START_CPU` (or `AUTO_START_GPU` on a GPU) and halves on out-of-memory; the size that
worked is kept for that loaded model for the rest of the run.
"""

from __future__ import annotations

import gc
import logging
import sys
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, TypeVar

from evalkit.backends import Backend, ModelFacts
from evalkit.requests import GenerateRequest, LoglikelihoodRequest, Request, Result, RollingRequest
from evalkit.runner.cache import cache_model_key, device_kind

# Requests are sent in chunks so that progress advances and finished work reaches the
# cache regularly (an interrupted run loses at most one chunk).
CHUNK_SIZE = 512
# Contexts that begin with the same this many characters are kept in one chunk where possible
# (`order_for_batching`): long enough to cover a few-shot header (MMLU's "The following are
# multiple choice questions (with answers) about <subject>." and the first example), short
# enough that contexts sharing a prefix the backend would compute once always match.
FAMILY_CHARS = 200

# Where `--batch-size auto` starts its search: the longest requests go first, so the first batch
# tells at once whether a size fits. A CPU rarely runs out of memory and gains little past 64.
AUTO_START_CPU = 64
AUTO_START_GPU = 512

BatchSize = int | Literal["auto"]

R = TypeVar("R", bound=Request)

log = logging.getLogger("evalkit.runner")


class Cache(Protocol):
    def get_many(self, model: str, requests: Sequence[Request]) -> dict[str, Result]: ...

    def put_many(self, model: str, items: list[tuple[Request, Result]]) -> None: ...


class CachedServer:
    """Answers one model's requests through the cache; see `execute`."""

    def __init__(self, backend: Backend, cache: Cache, *, batch_size: BatchSize, show_progress: bool) -> None:
        self.backend, self.cache = backend, cache
        self.batch_size, self.show_progress = batch_size, show_progress
        self._used: set[int] = set()

    def serve(
        self,
        requests: Sequence[Request],
        *,
        description: str = "",
        prefix_reuse: bool = False,
        batch_size: BatchSize | None = None,
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
    batch_size: BatchSize,
    description: str = "",
    show_progress: bool = True,
    prefix_reuse: bool = False,
    used_batch_sizes: set[int] | None = None,
) -> list[Result]:
    """Answer every request (in order), computing each distinct request at most once.

    `prefix_reuse` (long-context tasks) sends generate and loglikelihood requests to a backend's
    `PrefixReuse` methods when it has them: shared prefixes are computed once and contexts are never
    truncated. Those results are cached apart from the plain path's (which truncates like lm-eval).
    `batch_size` is an int or "auto"; a batch that runs out of memory is retried at half the size
    (see the module's doc). `used_batch_sizes` collects the batch sizes that requests were answered
    with (prefix reuse walks one prompt at a time: 1); requests answered from the cache add nothing.
    """
    from evalkit.backends.capabilities import PrefixReuse

    if batch_size != "auto" and (isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(f"batch_size must be 'auto' or at least 1, got {batch_size!r}")
    reuse = prefix_reuse and isinstance(backend, PrefixReuse)
    facts = backend.describe()
    model_key = cache_model_key(facts, untruncated=reuse)
    sizes = _BatchSizes(backend, facts, batch_size)
    known, missing = cached_and_missing(cache, model_key, requests)
    todo = order_for_batching(missing)
    progress = progress_bar(len(todo), description, show_progress)
    try:
        for kind, chunk in _chunks(todo):
            shared = reuse and kind in (LoglikelihoodRequest, GenerateRequest)
            results, used = _dispatch_halving(
                backend, kind, chunk, 1 if shared else sizes.next(kind), reuse, description
            )
            if not shared:
                sizes.worked(kind, used)
            if used_batch_sizes is not None:
                used_batch_sizes.add(used)
            cache.put_many(model_key, list(zip(chunk, results, strict=True)))
            for request, result in zip(chunk, results, strict=True):
                known[request.cache_key()] = result
            progress.update(len(chunk))
    finally:
        progress.close()
    return [known[r.cache_key()] for r in requests]


class _BatchSizes:
    """The batch size to send each request type with during one `execute` call.

    A fixed size starts at the size asked, for each request type; after an out-of-memory halving the
    smaller size stays for that type. "auto" starts at the size that worked before for this loaded
    model (any request type), else at the device's starting point, and remembers what works.
    """

    def __init__(self, backend: Backend, facts: ModelFacts, asked: BatchSize) -> None:
        self.backend, self.asked = backend, asked
        self.current: dict[type, int] = {}
        self.found = _AUTO_SIZES.get(backend) if asked == "auto" and _weakly_keyable(backend) else None
        self.start = auto_batch_start(facts) if asked == "auto" else asked

    def next(self, kind: type) -> int:
        if self.asked == "auto":
            return self.found if self.found is not None else self.start
        return self.current.get(kind, self.start)

    def worked(self, kind: type, size: int) -> None:
        if self.asked != "auto":
            self.current[kind] = size
            return
        self.found = size
        if _weakly_keyable(self.backend):
            _AUTO_SIZES[self.backend] = size


# The "auto" batch size that worked, per loaded model. Held weakly: the entry goes when the model
# does, so "for the rest of the run" means for as long as that model is loaded (a Ray worker keeps
# its model, and so its size, across the units it serves).
_AUTO_SIZES: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()


def _weakly_keyable(backend: object) -> bool:
    """False for a backend that cannot be weakly referenced or hashed (it searches on each call)."""
    try:
        weakref.ref(backend)
        hash(backend)
    except TypeError:
        return False
    return True


def auto_batch_start(facts: ModelFacts) -> int:
    """Where "auto" starts: `AUTO_START_GPU` when the model runs on a GPU, else `AUTO_START_CPU`."""
    device = device_kind(facts.device)
    return AUTO_START_CPU if device == "cpu" else AUTO_START_GPU


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an out-of-memory error: `MemoryError`, torch's `OutOfMemoryError` (CUDA and, where it
    exists, the generic one), or a RuntimeError saying "out of memory" (MPS, older torch, other
    libraries) or "can't allocate memory" (torch's CPU allocator). Never imports torch."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    if torch is not None:
        candidates = (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None))
        kinds = tuple(k for k in candidates if isinstance(k, type))
        if kinds and isinstance(exc, kinds):
            return True
    if isinstance(exc, RuntimeError):
        message = str(exc).lower()
        return "out of memory" in message or "can't allocate memory" in message
    return False


def _dispatch_halving(
    backend: Backend, kind: type, chunk: list[Request], batch_size: int, reuse: bool, description: str
) -> tuple[list[Result], int]:
    """The chunk's results and the batch size they were computed with, halving on out-of-memory."""
    size = batch_size
    while True:
        try:
            return _dispatch(backend, kind, chunk, size, reuse), size
        except Exception as exc:
            if size <= 1 or not is_out_of_memory(exc):
                raise
            # Leaving the except block drops the traceback, and with it the failed batch's tensors.
        smaller = size // 2
        log.info(
            "%s%s: out of memory at batch size %d; retrying at batch size %d",
            f"{description} " if description else "",
            kind.__name__,
            size,
            smaller,
        )
        _release_device_memory()
        size = smaller


def _release_device_memory() -> None:
    """Return the failed batch's memory before the retry (CUDA caches freed blocks otherwise)."""
    gc.collect()
    torch = sys.modules.get("torch")  # only if already imported: a CPU-only run never loads torch here
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def cached_and_missing(
    cache: Cache, model_key: str, requests: Sequence[Request]
) -> tuple[dict[str, Result], list[Request]]:
    """The cache's answers by request key, and the distinct requests it lacks (first occurrences)."""
    known = cache.get_many(model_key, requests)
    missing: dict[str, Request] = {}
    for request in requests:
        key = request.cache_key()
        if key not in known and key not in missing:
            missing[key] = request
    return known, list(missing.values())


def order_for_batching(requests: list[Request]) -> list[Request]:
    """Group by request type; within a type, by family (contexts that begin with the same
    `FAMILY_CHARS` characters), the family holding the longest context first; within a family,
    longest context first, identical contexts adjacent.

    Long-first surfaces an out-of-memory failure at once (the first request is the longest of
    all); a family kept together reaches the backend in one call, so a few-shot prefix its
    contexts share (an MMLU subject's examples) is computed once, not once per chunk it would
    otherwise straddle; the backend sorts each call by length, so mixing lengths in a chunk
    costs no padding; adjacent identical contexts let the backend encode each once.
    """
    rank = {LoglikelihoodRequest: 0, GenerateRequest: 1, RollingRequest: 2}
    longest: dict[tuple[int, str], int] = {}
    for request in requests:
        key = (rank[type(request)], _family(request))
        longest[key] = max(longest.get(key, 0), len(_context(request)))

    def sort_key(request: Request) -> tuple[int, int, str, int, str]:
        family = _family(request)
        kind = rank[type(request)]
        return (kind, -longest[(kind, family)], family, -len(_context(request)), _context(request))

    return sorted(requests, key=sort_key)


def _chunks(requests: list[Request]) -> list[tuple[type, list[Request]]]:
    """Split into same-type chunks of about CHUNK_SIZE: at a family boundary once CHUNK_SIZE is
    reached, inside a family (never inside a shared context) once it is twice that."""
    chunks: list[tuple[type, list[Request]]] = []
    current: list[Request] = []
    for request in requests:
        boundary = current and (
            type(request) is not type(current[-1])
            or (len(current) >= CHUNK_SIZE and _family(request) != _family(current[-1]))
            or (len(current) >= 2 * CHUNK_SIZE and _context(request) != _context(current[-1]))
        )
        if boundary:
            chunks.append((type(current[0]), current))
            current = []
        current.append(request)
    if current:
        chunks.append((type(current[0]), current))
    return chunks


def _family(request: Request) -> str:
    return _context(request)[:FAMILY_CHARS]


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


def progress_bar(total: int, description: str, enabled: bool) -> _Progress:
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
