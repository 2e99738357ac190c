"""The RequestServer of a Ray run: the cache on the driver, the misses on the workers.

It answers an executor's requests as `execute` does — same cache, same model key, each distinct
request computed once, results in the asked order — but sends the requests the cache lacks to the
workers as units (`_units.shard_requests`), and writes each unit's answers to the cache the moment
it returns: a driver killed mid-task loses only the units in flight, and the rerun sends only what
the cache still lacks.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

from evalkit.backends import ModelFacts
from evalkit.requests import Request, Result
from evalkit.runner.cache import cache_model_key
from evalkit.runner.cluster._actor import UnitAnswer
from evalkit.runner.cluster._pool import WorkerPool
from evalkit.runner.cluster._units import shard_requests
from evalkit.runner.execute import BatchSize, Cache, cached_and_missing, order_for_batching, progress_bar

log = logging.getLogger("evalkit.cluster")


class DistributedServer:
    def __init__(
        self,
        pool: WorkerPool,
        cache: Cache,
        *,
        facts: ModelFacts,
        capabilities: frozenset[str],
        batch_size: BatchSize,
        shards: int,
        show_progress: bool,
    ) -> None:
        self.pool, self.cache, self.facts, self.capabilities = pool, cache, facts, capabilities
        self.batch_size, self.shards, self.show_progress = batch_size, shards, show_progress
        self._used: set[int] = set()

    def serve(
        self,
        requests: Sequence[Request],
        *,
        description: str = "",
        prefix_reuse: bool = False,
        batch_size: BatchSize | None = None,
    ) -> list[Result]:
        reuse = prefix_reuse and "prefix_reuse" in self.capabilities
        model = cache_model_key(self.facts, untruncated=reuse)
        known, missing = cached_and_missing(self.cache, model, requests)
        units = shard_requests(order_for_batching(missing), self.shards) if missing else []
        sent = sum(len(unit) for unit in units)
        log.debug(
            "%s: %d of %d distinct requests answered by the cache; %d sent in %d unit(s)",
            description or "requests",
            len({r.cache_key() for r in requests}) - len(missing),
            len({r.cache_key() for r in requests}),
            sent,
            len(units),
        )
        size = self.batch_size if batch_size is None else batch_size
        progress = progress_bar(sent, description, self.show_progress)

        def done(index: int, answer: UnitAnswer) -> None:
            unit = units[index]
            if len(answer.results) != len(unit):
                got = len(answer.results)
                raise RuntimeError(f"a worker answered {len(unit)} requests with {got} results")
            self.cache.put_many(model, list(zip(unit, answer.results, strict=True)))
            for request, result in zip(unit, answer.results, strict=True):
                known[request.cache_key()] = result
            self._used.update(answer.batch_sizes)
            progress.update(len(unit))

        try:
            submits = [functools.partial(_send, unit, size, reuse) for unit in units]
            self.pool.run(submits, done, description or "requests")
        finally:
            progress.close()
        return [known[r.cache_key()] for r in requests]

    def batch_sizes(self) -> tuple[int, ...]:
        return tuple(sorted(self._used))


def _send(unit: list[Request], batch_size: BatchSize, prefix_reuse: bool, handle: Any) -> Any:
    return handle.serve.remote(unit, batch_size, prefix_reuse)
