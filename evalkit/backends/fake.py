"""A deterministic fake language model that ships inside the package.

It is a byte-level bigram model whose table is drawn from a seeded generator: a real
probability distribution (so loglikelihoods, greedy checks, rolling scores and
generation are mutually consistent) that needs no weights, no torch and no network.
Tests use it everywhere; users can use it to try the CLI.

It really batches: each call works through its requests `batch_size` at a time, and the option
`oom_above=N` makes any batch of more than N requests fail as a GPU out of memory does (`oom_above=0`:
even a batch of one), so the runner's out-of-memory halving can be tested without a GPU. Its
answers never depend on the batch size.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from typing import TypeVar

from pydantic import ConfigDict, Field

from evalkit.backends._chat import ChatOptions, check_chat_options, conversation_dicts
from evalkit.backends.base import ModelFacts
from evalkit.backends.spec import ModelSpec
from evalkit.requests import (
    ChatMessage,
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingRequest,
    RollingResult,
)

VOCAB = 256
BOS = 0  # byte 0 never appears in text we score, so it is a safe start symbol

T = TypeVar("T")


class FakeOptions(ChatOptions):
    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    context_window: int = 4096
    # Simulate running out of memory on any batch of more than this many requests (None: never).
    oom_above: int | None = Field(default=None, ge=0)
    # Fault tests of distributed runs: each batch takes `delay_s` seconds (a worker can be killed
    # mid-unit), and a request whose text contains `exit_on` ends the process at once, as a kill does.
    # Neither changes an answer, so neither enters the fingerprint.
    delay_s: float = Field(default=0.0, ge=0)
    exit_on: str | None = Field(default=None, min_length=1)


class SimulatedOutOfMemoryError(RuntimeError):
    """What the fake raises for a batch above `oom_above`: a RuntimeError saying "out of memory",
    as torch's CUDA allocator does."""


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
            fewshot_multiturn=self.options.fewshot_multiturn,
            system_prompt=self.options.system_prompt,
        )

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], batch_size: int = 16
    ) -> list[LoglikelihoodResult]:
        self.calls["loglikelihood"] += len(requests)
        return [
            self._score(r.context, r.continuation)
            for batch in self._batches(requests, batch_size)
            for r in batch
        ]

    def loglikelihood_rolling(
        self, requests: Sequence[RollingRequest], batch_size: int = 16
    ) -> list[RollingResult]:
        self.calls["loglikelihood_rolling"] += len(requests)
        out = []
        for batch in self._batches(requests, batch_size):
            for request in batch:
                scored = self._score("", request.text)
                out.append(RollingResult(scored.logprob, scored.num_tokens))
        return out

    def generate(self, requests: Sequence[GenerateRequest], batch_size: int = 16) -> list[GenerateResult]:
        self.calls["generate"] += len(requests)
        return [self._generate_one(r) for batch in self._batches(requests, batch_size) for r in batch]

    def _generate_one(self, request: GenerateRequest) -> GenerateResult:
        self._exit_if_asked(request.context)
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
        return GenerateResult(text[:cut], len(produced))

    def _score(self, context_text: str, continuation_text: str) -> LoglikelihoodResult:
        self._exit_if_asked(context_text + continuation_text)
        context = self._tokenizer.encode(context_text)
        continuation = self._tokenizer.encode(continuation_text)
        previous = context[-1] if context else BOS
        total, greedy = 0.0, True
        for token in continuation:
            total += self._table[previous][token]
            greedy = greedy and self._argmax[previous] == token
            previous = token
        return LoglikelihoodResult(total, greedy, len(continuation))

    def _batches(self, requests: Sequence[T], batch_size: int) -> Iterator[Sequence[T]]:
        """`requests` in batches of `batch_size`; a batch above `oom_above` fails like a full GPU."""
        size = max(1, batch_size)
        limit = self.options.oom_above
        for start in range(0, len(requests), size):
            batch = requests[start : start + size]
            if limit is not None and len(batch) > limit:
                raise SimulatedOutOfMemoryError(
                    f"out of memory (simulated): a batch of {len(batch)} requests, above oom_above={limit}"
                )
            if self.options.delay_s:
                time.sleep(self.options.delay_s)
            yield batch

    def _exit_if_asked(self, text: str) -> None:
        if self.options.exit_on is not None and self.options.exit_on in text:
            os._exit(70)  # no cleanup, no exception: what a killed or crashed worker looks like

    def apply_chat_template(self, conversation: str | Sequence[ChatMessage]) -> str:
        """A simple deterministic template: each turn as `<|role|>` and its text, then the
        assistant's header (one user turn reads `<|user|>\\nTEXT\\n<|assistant|>\\n`)."""
        turns = conversation_dicts(conversation, self.options.system_prompt)
        return "".join(f"<|{t['role']}|>\n{t['content']}\n" for t in turns) + "<|assistant|>\n"

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
    check_chat_options(options, shown)
    return FakeBackend(name=shown, options=options)
