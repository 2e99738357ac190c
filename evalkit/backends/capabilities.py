"""Optional capabilities a backend may declare beyond the request protocol.

The efficiency task needs raw, timed forward passes that the request protocol hides (it batches,
caches and scores). A backend that can serve them implements `TimingProbe`; the efficiency task
checks `isinstance(backend, TimingProbe)` and says clearly when a backend cannot be measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from evalkit.requests import GenerateRequest, GenerateResult, LoglikelihoodRequest, LoglikelihoodResult


@runtime_checkable
class TimingProbe(Protocol):
    @property
    def vocab_size(self) -> int:
        """Token ids 0..vocab_size-1 are valid inputs (random-token prompts are drawn from them)."""
        ...

    def timing_prefill(self, token_ids: Sequence[int]) -> float:
        """One forward pass over `token_ids` (batch 1, no sampling); returns its wall time in seconds."""
        ...

    def timing_decode(self, context_ids: Sequence[int], new_tokens: int) -> list[float]:
        """Prefill `context_ids`, then decode `new_tokens` greedy steps one token at a time, reusing the
        KV cache (transformers) or recurrent state (SSMs). Returns len == new_tokens + 1 wall times in
        seconds: [prefill through the first new token (time to first token), step 2, step 3, ...]."""
        ...

    def weight_bytes(self) -> int:
        """Bytes of weights read per decode step as stored in memory (for bandwidth utilisation)."""
        ...

    def flops_per_token(self, context_length: int) -> float:
        """Approximate forward FLOPs for one token at this context length (2·params + attention)."""
        ...


@runtime_checkable
class PromptTokens(Protocol):
    """Exact prompt token counts, for tasks whose lengths must be what they say (long context)."""

    def prompt_token_ids(self, context: str) -> list[int]:
        """The ids the model is fed for a generate request with this context: special tokens (BOS)
        included, exactly as `generate` would encode it, before any truncation."""
        ...

    def tokenizer_identity(self) -> str:
        """A short stable name of the tokenizer, e.g. 'GPT2TokenizerFast:3f9a…' (class + vocabulary hash)."""
        ...

    def prompt_limit(self) -> int | None:
        """The most tokens (prompt + generation) this backend runs without truncating the prompt,
        or None when it never truncates (prompts beyond the trained window then run as they are)."""
        ...


@runtime_checkable
class PrefixReuse(Protocol):
    """Serve requests whose contexts share long prefixes by computing each shared prefix once.

    Contexts are never truncated: a prompt longer than the model's window runs as it is (the
    long-context task decides beforehand which cells may exceed the window, and records it).
    Results must equal those of `generate` / `loglikelihood` on prompts within the window
    (greedy outputs identical; log-probabilities within 1e-4 in float32). Long prefills run in
    chunks so memory stays bounded; `stats` counts the work done, for benchmarks.
    """

    def generate_shared(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]: ...

    def loglikelihood_shared(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]: ...
