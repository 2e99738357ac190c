"""The typed requests a task kind sends to a backend, and what comes back.

These are the only shapes that cross the kind/backend boundary, so every backend
(fake, transformers, llama.cpp, lm-eval) answers the same questions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """log P(continuation | context), summed over the continuation's tokens."""

    context: str
    continuation: str

    def cache_key(self) -> str:
        return _digest("ll", self.context, self.continuation)


@dataclass(frozen=True)
class LoglikelihoodResult:
    logprob: float
    is_greedy: bool  # every continuation token is the argmax of its distribution
    num_tokens: int  # tokens in the continuation


@dataclass(frozen=True)
class GenerateRequest:
    """Greedy generation from `context` until a stop sequence or `max_tokens`."""

    context: str
    stop: tuple[str, ...] = ()
    max_tokens: int = 128

    def cache_key(self) -> str:
        return _digest("gen", self.context, list(self.stop), self.max_tokens)


@dataclass(frozen=True)
class GenerateResult:
    text: str  # with the stop sequence (and anything after it) removed
    num_tokens: int


@dataclass(frozen=True)
class RollingRequest:
    """Loglikelihood of a whole text, scored in windows that cover every token once."""

    text: str

    def cache_key(self) -> str:
        return _digest("roll", self.text)


@dataclass(frozen=True)
class RollingResult:
    logprob: float
    num_tokens: int


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation that a backend renders with its model's chat template."""

    role: Literal["system", "user", "assistant"]
    content: str


Request = LoglikelihoodRequest | GenerateRequest | RollingRequest
Result = LoglikelihoodResult | GenerateResult | RollingResult


def result_to_json(result: Result) -> dict[str, object]:
    return {"type": type(result).__name__, **asdict(result)}


def result_from_json(data: dict[str, object]) -> Result:
    kinds: dict[str, type[Result]] = {
        "LoglikelihoodResult": LoglikelihoodResult,
        "GenerateResult": GenerateResult,
        "RollingResult": RollingResult,
    }
    fields = dict(data)
    cls = kinds[str(fields.pop("type"))]
    return cls(**fields)  # type: ignore[arg-type]


@dataclass
class RequestBatchStats:
    """Counts a backend may report about how it served a batch (for benchmarks)."""

    forward_passes: int = 0
    tokens_processed: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def _digest(*parts: object) -> str:
    payload = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
