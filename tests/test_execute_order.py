"""How the executor orders and chunks requests: few-shot families stay in one backend call.

A backend computes a shared few-shot prefix once per call (`_hf_score`'s prefix groups), so an MMLU
subject whose documents straddle two chunks pays for its prefix twice. These tests use the fake
backend with a small CHUNK_SIZE and record which contexts each call received.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from evalkit.backends.fake import FakeBackend
from evalkit.requests import LoglikelihoodRequest, LoglikelihoodResult, Request
from evalkit.runner.cache import NullCache
from evalkit.runner.execute import FAMILY_CHARS, execute, order_for_batching


class Recording(FakeBackend):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], batch_size: int = 16
    ) -> list[LoglikelihoodResult]:
        self.batches.append([r.context for r in requests])
        return super().loglikelihood(requests, batch_size)


def subject(name: str, questions: int, length_step: int) -> list[LoglikelihoodRequest]:
    """`questions` documents of one subject: a long shared header, then questions of varied length."""
    header = f"Questions about {name}.\n\n" + "example " * (FAMILY_CHARS // 4)
    requests = []
    for q in range(questions):
        context = header + f"Q{q}: " + "word " * (1 + q * length_step) + "\nAnswer:"
        requests += [LoglikelihoodRequest(context, f" {letter}") for letter in "ABCD"]
    return requests


def interleaved() -> list[LoglikelihoodRequest]:
    """Three subjects whose question lengths interleave, in round-robin document order."""
    subjects = [subject("algebra", 3, 7), subject("anatomy", 3, 5), subject("astronomy", 3, 6)]
    docs = [s[i : i + 4] for i in range(0, 12, 4) for s in subjects]
    return [r for doc in docs for r in doc]


def family(context: str) -> str:
    return context.split(".", 1)[0]


def test_a_family_reaches_the_backend_in_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("evalkit.runner.execute.CHUNK_SIZE", 8)
    backend = Recording()
    requests = interleaved()
    results = execute(backend, requests, cache=NullCache(), batch_size=4, show_progress=False)

    assert results == FakeBackend().loglikelihood(requests)  # answers in the callers' order
    calls_of: dict[str, set[int]] = {}
    for index, batch in enumerate(backend.batches):
        for context in batch:
            calls_of.setdefault(family(context), set()).add(index)
    assert len(backend.batches) == 3 and all(len(calls) == 1 for calls in calls_of.values())


def test_the_longest_request_still_comes_first() -> None:
    requests = interleaved()
    ordered = [r for r in order_for_batching(list[Request](requests)) if isinstance(r, LoglikelihoodRequest)]
    assert len(ordered) == len(requests)
    assert len(ordered[0].context) == max(len(r.context) for r in requests)
    # within a family, longest first; identical contexts adjacent
    for name in ("algebra", "anatomy", "astronomy"):
        lengths = [len(r.context) for r in ordered if family(r.context).endswith(name)]
        assert lengths == sorted(lengths, reverse=True)
    contexts = [r.context for r in ordered]
    for context in set(contexts):
        at = [i for i, c in enumerate(contexts) if c == context]
        assert at == list(range(at[0], at[0] + len(at)))


def test_one_large_family_is_still_chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    """gsm8k's 1319 questions share one exemplar prefix: chunks stay bounded (twice CHUNK_SIZE) and
    never split one context's requests."""
    monkeypatch.setattr("evalkit.runner.execute.CHUNK_SIZE", 4)
    backend = Recording()
    requests = subject("arithmetic", 10, 1)
    execute(backend, requests, cache=NullCache(), batch_size=4, show_progress=False)
    assert len(backend.batches) > 1
    assert all(len(batch) <= 8 for batch in backend.batches)
    for batch in backend.batches:
        for context in set(batch):
            assert sum(c == context for b in backend.batches for c in b) == batch.count(context)
