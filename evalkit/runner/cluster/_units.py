"""A task's uncached requests as units of work: deterministic, interleaved shards.

The requests arrive in the order `execute` sends them (by type, longest context first, identical
contexts adjacent). Requests that share a context form one group (one document's choices, one
long-context cell's probes), so a worker still encodes each context once; group i goes to shard
i mod N. Every shard thus holds long and short requests alike, and shards cost about the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from evalkit.requests import Request
from evalkit.runner.execute import _context


def context_groups(ordered: Sequence[Request]) -> list[list[Request]]:
    """Runs of adjacent requests of one type with one context."""
    groups: list[list[Request]] = []
    for request in ordered:
        if groups and _same_context(groups[-1][-1], request):
            groups[-1].append(request)
        else:
            groups.append([request])
    return groups


def shard_requests(ordered: Sequence[Request], shards: int) -> list[list[Request]]:
    """At most `shards` non-empty units; group i of `context_groups(ordered)` goes to unit i mod N."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, not {shards}")
    units: list[list[Request]] = [[] for _ in range(shards)]
    for index, group in enumerate(context_groups(ordered)):
        units[index % shards].extend(group)
    return [unit for unit in units if unit]


def _same_context(a: Request, b: Request) -> bool:
    return type(a) is type(b) and _context(a) == _context(b)
