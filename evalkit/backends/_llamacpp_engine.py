"""Forward passes through one `llama_cpp.Llama` (or `_llamacpp_sync.SyncLlama`, the same members over
the prebuilt binding): scoring with KV-cache reuse, greedy decoding, timing.

llama.cpp keeps one sequence in its KV cache. `Llama.eval` appends tokens after `n_tokens`
(dropping cache entries beyond it), and with `logits_all=True` it stores every position's logits
in `Llama.scores`. So evaluating a request costs only the tokens after the prefix it shares with
the previous request: `_evaluate` rewinds `n_tokens` to the common prefix and evaluates the rest.
The scorer sorts requests by their token sequences, which puts the choices of one question (same
context, different continuations) next to each other — the context is then evaluated once. Greedy
generation goes through the same door: after a generation the cache holds prompt + generated
tokens, and the next prompt that shares a prefix with it (gsm8k's eight fixed exemplars, ~750
tokens) evaluates only what follows the prefix. `tokens_evaluated` and `tokens_reused` count the
prompt (and scored) positions evaluated and taken from the cache, so a test can prove the saving.

Rewinding is skipped where it is not safe: recurrent state cannot be rewound, and a sliding-window
cache may already have dropped positions the rewound sequence needs; those models re-evaluate from
the start unless the new sequence extends the evaluated one. numpy float64 does the log-softmax.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["LlamaEngine"]

Pair = tuple[tuple[int, ...], tuple[int, ...]]


class LlamaEngine:
    """Scores (context, continuation) token pairs and decodes greedily on one llama.cpp context."""

    def __init__(self, llama: Any, *, rewindable: bool) -> None:
        self.llama = llama
        self.n_ctx = int(llama.n_ctx())
        self.rewindable = rewindable
        self.tokens_evaluated = 0  # prompt and scored positions evaluated (decode steps not counted)
        self.tokens_reused = 0  # prompt and scored positions found in the cache instead

    def _evaluate(self, tokens: Sequence[int]) -> None:
        """Make the context hold exactly `tokens`, evaluating as few of them as possible.

        At least the last token is re-evaluated, so `scores[len(tokens) - 1]` is always fresh;
        earlier rows of `scores` belong to the shared prefix and are still valid (a position's
        logits depend only on the tokens up to it).
        """
        llama = self.llama
        held = int(llama.n_tokens)
        common = 0
        if held:
            previous = llama.input_ids[:held]
            limit = min(held, len(tokens) - 1)
            candidate = np.asarray(tokens[:limit], dtype=previous.dtype)
            mismatch = np.nonzero(previous[:limit] != candidate)[0]
            common = int(mismatch[0]) if mismatch.size else limit
        if common < held and not self.rewindable:
            common = 0
        if common == 0:
            llama.reset()
        else:
            llama.n_tokens = common  # Llama.eval drops the cache beyond n_tokens
        rest = list(tokens[common:])
        llama.eval(rest)
        self.tokens_evaluated += len(rest)
        self.tokens_reused += common

    def _log_probs(self, start: int, stop: int) -> np.ndarray:
        """log-softmax (float64) of the logits rows start..stop-1 of the evaluated sequence."""
        rows = np.asarray(self.llama.scores[start:stop], dtype=np.float64)
        peak = rows.max(axis=1, keepdims=True)
        log_norm = peak + np.log(np.exp(rows - peak).sum(axis=1, keepdims=True))
        log_probs: np.ndarray = rows - log_norm
        return log_probs

    def score(self, pairs: Sequence[Pair]) -> list[tuple[float, bool]]:
        """(sum of continuation log-probabilities, every continuation token is the argmax) per pair.

        Truncation is HFLM's: the input is (context + continuation)[-(n_ctx + 1):][:-1].
        """
        inputs = []
        for context, continuation in pairs:
            if not continuation:
                raise ValueError("a loglikelihood continuation must have at least one token")
            if len(continuation) > self.n_ctx:
                raise ValueError(f"continuation of {len(continuation)} tokens exceeds n_ctx={self.n_ctx}")
            inputs.append((context + continuation)[-(self.n_ctx + 1) :][:-1])
        results: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
        for index in sorted(range(len(pairs)), key=lambda i: inputs[i]):
            tokens = inputs[index]
            continuation = pairs[index][1]
            self._evaluate(tokens)
            start = len(tokens) - len(continuation)
            log_probs = self._log_probs(start, len(tokens))
            targets = np.asarray(continuation)
            picked = log_probs[np.arange(len(targets)), targets]
            greedy = bool(np.all(log_probs.argmax(axis=1) == targets))
            results[index] = (float(picked.sum()), greedy)
        return results

    def greedy_tokens(
        self, prompt: Sequence[int], max_tokens: int, is_done: Any, end_ids: frozenset[int]
    ) -> list[int]:
        """Greedy continuation of `prompt`: up to `max_tokens` tokens, stopping after an end-of-
        generation token, when `is_done(produced)` says a stop string appeared, or at n_ctx."""
        self._evaluate(prompt)
        produced: list[int] = []
        while len(produced) < max_tokens:
            position = int(self.llama.n_tokens) - 1
            token = int(np.argmax(self.llama.scores[position]))
            produced.append(token)
            if token in end_ids or is_done(produced) or self.llama.n_tokens >= self.n_ctx:
                break
            self.llama.eval([token])
        return produced

    def time_prefill(self, token_ids: Sequence[int]) -> float:
        """Wall time of one pass over `token_ids` from an empty cache (includes copying the logits
        of every position into `scores`, which `logits_all=True` makes part of every pass)."""
        self.llama.reset()
        start = time.perf_counter()
        self.llama.eval(list(token_ids))
        return time.perf_counter() - start

    def time_decode(self, context_ids: Sequence[int], new_tokens: int) -> list[float]:
        """[time to first token, then one wall time per further greedy step], len new_tokens + 1."""
        llama = self.llama
        llama.reset()
        times: list[float] = []
        start = time.perf_counter()
        llama.eval(list(context_ids))
        token = int(np.argmax(llama.scores[llama.n_tokens - 1]))
        times.append(time.perf_counter() - start)
        for _ in range(new_tokens):
            if llama.n_tokens >= self.n_ctx:
                raise ValueError(f"context {len(context_ids)} + {new_tokens} new tokens exceeds n_ctx")
            start = time.perf_counter()
            llama.eval([token])
            token = int(np.argmax(llama.scores[llama.n_tokens - 1]))
            times.append(time.perf_counter() - start)
        return times
