"""`EvalkitLM`: any evalkit backend, seen by lm-eval as one of its own models.

This module imports lm-eval at the top, so nothing imports it until an lm-eval run
(or a user) asks for the class; `evalkit.interop.lmeval` reaches it lazily.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.model import LM

from evalkit.backends.base import Backend
from evalkit.errors import SpecError
from evalkit.requests import GenerateRequest, LoglikelihoodRequest, RollingRequest

# lm-eval's own default for `max_gen_toks` (HFLM), so a task without one behaves as under lm-eval.
DEFAULT_MAX_GEN_TOKS = 256

# Keys that may appear in a task's generation_kwargs and that greedy decoding can honour
# (sampling knobs are accepted only when they leave the greedy output unchanged).
_GENERATION_KEYS = frozenset(
    {
        "until",
        "max_gen_toks",
        "max_new_tokens",
        "do_sample",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "num_beams",
        "repetition_penalty",
    }
)


class EvalkitLM(LM):
    """An lm-eval `LM` that answers every request with an evalkit `Backend`.

    lm-eval tasks then run unchanged on any evalkit model (transformers, GGUF, fake, ...),
    and both harnesses see the same numbers for the same request. Requests are
    de-duplicated before they reach the backend: multiple-choice tasks often repeat
    a (context, continuation) pair, and a small CPU model should score it once.
    """

    def __init__(
        self, backend: Backend, *, batch_size: int = 16, max_gen_toks: int = DEFAULT_MAX_GEN_TOKS
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise SpecError(f"batch_size must be at least 1, got {batch_size}")
        self.backend = backend
        self.batch_size = batch_size
        self.max_gen_toks = max_gen_toks

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        typed = [
            LoglikelihoodRequest(str(context), str(continuation)) for context, continuation in _args(requests)
        ]
        unique = list(dict.fromkeys(typed))
        scored = dict(
            zip(unique, self.backend.loglikelihood(unique, batch_size=self.batch_size), strict=True)
        )
        answers = []
        for instance, request in zip(requests, typed, strict=True):
            answer = (scored[request].logprob, scored[request].is_greedy)
            self.cache_hook.add_partial("loglikelihood", instance.args, answer)
            answers.append(answer)
        return answers

    def loglikelihood_rolling(self, requests: list[Instance]) -> list[float]:
        typed = [RollingRequest(str(args[0])) for args in _args(requests)]
        unique = list(dict.fromkeys(typed))
        rolled = self.backend.loglikelihood_rolling(unique, batch_size=self.batch_size)
        scored = dict(zip(unique, rolled, strict=True))
        answers = []
        for instance, request in zip(requests, typed, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", instance.args, scored[request].logprob)
            answers.append(scored[request].logprob)
        return answers

    def generate_until(self, requests: list[Instance]) -> list[str]:
        typed = [
            greedy_request(str(context), gen_kwargs, default_max_tokens=self.max_gen_toks)
            for context, gen_kwargs in _args(requests)
        ]
        unique = list(dict.fromkeys(typed))
        generated = dict(zip(unique, self.backend.generate(unique, batch_size=self.batch_size), strict=True))
        texts = []
        for instance, request in zip(requests, typed, strict=True):
            self.cache_hook.add_partial("generate_until", instance.args, generated[request].text)
            texts.append(generated[request].text)
        return texts

    @property
    def tokenizer_name(self) -> str:
        # lm-eval keys its request cache on this; the model fingerprint identifies the tokenizer too.
        return self.backend.describe().fingerprint


def greedy_request(
    context: str, gen_kwargs: Mapping[str, Any], *, default_max_tokens: int
) -> GenerateRequest:
    """Translate lm-eval generation kwargs into a greedy `GenerateRequest`.

    evalkit backends decode greedily only, so a task that asks for sampling or beam search
    fails loudly here rather than being scored on output it did not ask for.
    """
    unknown = sorted(set(gen_kwargs) - _GENERATION_KEYS)
    if unknown:
        raise SpecError(
            f"lm-eval generation argument(s) {', '.join(unknown)} are not supported by evalkit's greedy "
            f"adapter; supported: {', '.join(sorted(_GENERATION_KEYS))}"
        )
    do_sample = gen_kwargs.get("do_sample")
    temperature = float(gen_kwargs.get("temperature") or 0.0)
    if do_sample is True or (temperature > 0 and do_sample is not False):
        raise SpecError(
            f"the lm-eval task asks for sampling (do_sample={do_sample}, temperature={temperature}); "
            "evalkit backends generate greedily only: set do_sample: false or temperature: 0 in the task"
        )
    if int(gen_kwargs.get("num_beams") or 1) != 1:
        raise SpecError(
            "the lm-eval task asks for beam search (num_beams > 1); evalkit generates greedily only"
        )
    if not math.isclose(float(gen_kwargs.get("repetition_penalty") or 1.0), 1.0):
        raise SpecError(
            "the lm-eval task sets repetition_penalty; evalkit's greedy decoding does not apply one"
        )
    until = gen_kwargs.get("until")
    stop: tuple[str, ...]
    if until is None:
        stop = ()
    elif isinstance(until, str):
        stop = (until,)
    elif isinstance(until, Sequence):
        stop = tuple(str(s) for s in until)
    else:
        raise SpecError(f"lm-eval 'until' must be a string or a list of strings, got {until!r}")
    max_tokens = gen_kwargs.get("max_gen_toks", gen_kwargs.get("max_new_tokens", default_max_tokens))
    return GenerateRequest(context=context, stop=stop, max_tokens=int(max_tokens))


def _args(requests: Sequence[Instance]) -> list[tuple[Any, ...]]:
    return [tuple(instance.args) for instance in requests]
