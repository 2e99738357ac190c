"""A deterministic fake language model that ships inside the package.

It is a byte-level bigram model whose table is drawn from a seeded generator: a real
probability distribution (so loglikelihoods, greedy checks, rolling scores and
generation are mutually consistent) that needs no weights, no torch and no network.
Tests use it everywhere; users can use it to try the CLI.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from evalkit.backends.base import ModelFacts
from evalkit.backends.spec import ModelSpec
from evalkit.requests import (
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingRequest,
    RollingResult,
)

VOCAB = 256
BOS = 0  # byte 0 never appears in text we score, so it is a safe start symbol


class FakeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    context_window: int = 4096
    chat_template: bool = False


class ByteTokenizer:
    """UTF-8 bytes as tokens."""

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")

    def count(self, text: str) -> int:
        return len(text.encode("utf-8"))


class FakeBackend:
    def __init__(self, name: str = "fake", options: FakeOptions | None = None) -> None:
        self.options = options or FakeOptions()
        self.name = name
        self._tokenizer = ByteTokenizer()
        self._table = _bigram_log_probs(self.options.seed)
        self._argmax = [max(range(VOCAB), key=row.__getitem__) for row in self._table]
        self.calls: dict[str, int] = {"loglikelihood": 0, "generate": 0, "loglikelihood_rolling": 0}

    @property
    def tokenizer(self) -> ByteTokenizer:
        return self._tokenizer

    def describe(self) -> ModelFacts:
        return ModelFacts(
            name=self.name,
            backend="fake",
            source="evalkit.backends.fake",
            architecture="ByteBigram",
            family="unknown",
            parameters=VOCAB * VOCAB,
            dtype="float64",
            quantization=None,
            bytes_on_disk=0,
            fingerprint=hashlib.sha256(f"fake-bigram:{self.options.seed}".encode()).hexdigest(),
            context_window=self.options.context_window,
            chat_template=self.options.chat_template,
        )

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], batch_size: int = 16
    ) -> list[LoglikelihoodResult]:
        self.calls["loglikelihood"] += len(requests)
        results = []
        for request in requests:
            context = self._tokenizer.encode(request.context)
            continuation = self._tokenizer.encode(request.continuation)
            previous = context[-1] if context else BOS
            total, greedy = 0.0, True
            for token in continuation:
                total += self._table[previous][token]
                greedy = greedy and self._argmax[previous] == token
                previous = token
            results.append(LoglikelihoodResult(total, greedy, len(continuation)))
        return results

    def loglikelihood_rolling(
        self, requests: Sequence[RollingRequest], batch_size: int = 16
    ) -> list[RollingResult]:
        self.calls["loglikelihood_rolling"] += len(requests)
        out = []
        for request in requests:
            scored = self.loglikelihood([LoglikelihoodRequest("", request.text)])[0]
            out.append(RollingResult(scored.logprob, scored.num_tokens))
        self.calls["loglikelihood"] -= len(requests)
        return out

    def generate(self, requests: Sequence[GenerateRequest], batch_size: int = 16) -> list[GenerateResult]:
        self.calls["generate"] += len(requests)
        results = []
        for request in requests:
            context = self._tokenizer.encode(request.context)
            previous = context[-1] if context else BOS
            produced: list[int] = []
            text = ""
            for _ in range(request.max_tokens):
                previous = self._argmax[previous]
                produced.append(previous)
                text = self._tokenizer.decode(produced)
                if any(stop in text for stop in request.stop):
                    break
            cut = min([text.index(s) for s in request.stop if s in text], default=len(text))
            results.append(GenerateResult(text[:cut], len(produced)))
        return results

    def apply_chat_template(self, user_message: str) -> str:
        return f"<|user|>\n{user_message}\n<|assistant|>\n"

    # --- PromptTokens: the fake reads the context's bytes as they are (no special tokens) ---------

    def prompt_token_ids(self, context: str) -> list[int]:
        return self._tokenizer.encode(context)

    def tokenizer_identity(self) -> str:
        return "ByteTokenizer:utf-8"

    def prompt_limit(self) -> int | None:
        return None  # the fake reads any length

    # --- TimingProbe: real (tiny) work, timed with the wall clock --------------------------------
    # Prefill reads one table row per token; each decode step also reads one value per context
    # token, like attention over a KV cache, so the fake's cost grows with context as a
    # transformer's does. Times are real and therefore noisy; tests assert shapes, not values.

    @property
    def vocab_size(self) -> int:
        return VOCAB

    def timing_prefill(self, token_ids: Sequence[int]) -> float:
        started = time.perf_counter()
        self._prefill_work(token_ids)
        return time.perf_counter() - started

    def timing_decode(self, context_ids: Sequence[int], new_tokens: int) -> list[float]:
        started = time.perf_counter()
        context = list(context_ids)
        self._prefill_work(context)
        times: list[float] = []
        for _ in range(new_tokens + 1):
            previous = context[-1] if context else BOS
            _ = sum(self._table[token][previous] for token in context)  # the "attention" read
            context.append(self._argmax[previous])
            now = time.perf_counter()
            times.append(now - started)
            started = now
        return times

    def timing_state_bytes(self, token_ids: Sequence[int]) -> int:
        """A float64 key and value per context token (the fake's 'KV cache')."""
        return 2 * 8 * len(token_ids)

    def weight_bytes(self) -> int:
        """One table row per step (the fake's honest memory traffic, so MBU stays below 1)."""
        return VOCAB * 8

    def flops_per_token(self, context_length: int) -> float:
        """One row sum per token plus one add per context token: what the work above does."""
        return float(VOCAB + context_length)

    def _prefill_work(self, token_ids: Sequence[int]) -> float:
        return sum(sum(self._table[token]) for token in token_ids)


def _bigram_log_probs(seed: int) -> list[list[float]]:
    """A VOCAB x VOCAB table of log-probabilities, identical on every machine."""
    table = []
    for previous in range(VOCAB):
        digest = hashlib.sha256(f"{seed}:{previous}".encode()).digest()
        # Expand the digest into VOCAB pseudo-random logits with a tiny LCG seeded from it.
        state = int.from_bytes(digest[:8], "little")
        logits = []
        for _ in range(VOCAB):
            state = (6364136223846793005 * state + 1442695040888963407) % (1 << 64)
            logits.append(4.0 * (state >> 11) / float(1 << 53))
        top = max(logits)
        norm = top + math.log(sum(math.exp(v - top) for v in logits))
        table.append([v - norm for v in logits])
    return table


def load_fake(spec: ModelSpec, shown: str) -> FakeBackend:
    """The `fake` backend's loader (entry point `fake` of group evalkit.backends)."""
    from evalkit.backends import parse_options

    options = parse_options(FakeOptions, spec, shown)
    assert isinstance(options, FakeOptions)
    return FakeBackend(name=shown, options=options)
