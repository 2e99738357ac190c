"""An outside package's additions to evalkit: a preprocessor and a backend.

Nothing here is imported by evalkit until a task names `preprocess: shout` or a model spec
starts with `uniform:` — entry points are loaded by name, on first use.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from evalkit.backends import ModelFacts, ModelSpec, parse_options
from evalkit.backends.fake import ByteTokenizer
from evalkit.requests import (
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingRequest,
    RollingResult,
)


def shout(doc: dict[str, Any]) -> dict[str, Any]:
    """Upper-case the question (a document preprocessor: one raw row in, one document out)."""
    return {**doc, "question": str(doc["question"]).upper()}


class UniformOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")  # `uniform:bytes,vocab=...`; a typo fails loudly

    vocab: int = 256


class UniformBackend:
    """Every byte equally likely: the chance-level baseline of a byte-level model."""

    def __init__(self, name: str, options: UniformOptions) -> None:
        self.name, self.options = name, options
        self._tokenizer = ByteTokenizer()  # evalkit's own UTF-8 byte tokenizer
        self._logp = -math.log(options.vocab)

    @property
    def tokenizer(self) -> ByteTokenizer:
        return self._tokenizer

    def describe(self) -> ModelFacts:
        return ModelFacts(
            name=self.name,
            backend="uniform",
            source="evalkit_plugin_example",
            architecture="Uniform",
            family="unknown",
            parameters=0,
            dtype="float64",
            quantization=None,
            bytes_on_disk=0,
            fingerprint=hashlib.sha256(f"uniform:{self.options.vocab}".encode()).hexdigest(),
            context_window=None,
        )

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], batch_size: int = 16
    ) -> list[LoglikelihoodResult]:
        out = []
        for request in requests:
            n = self._tokenizer.count(request.continuation)
            out.append(LoglikelihoodResult(n * self._logp, False, n))
        return out

    def loglikelihood_rolling(
        self, requests: Sequence[RollingRequest], batch_size: int = 16
    ) -> list[RollingResult]:
        return [
            RollingResult(self._tokenizer.count(r.text) * self._logp, self._tokenizer.count(r.text))
            for r in requests
        ]

    def generate(self, requests: Sequence[GenerateRequest], batch_size: int = 16) -> list[GenerateResult]:
        return [GenerateResult("", 0) for _ in requests]  # no byte is more likely than another

    def apply_chat_template(self, user_message: str) -> str:
        return user_message


def load_uniform(spec: ModelSpec, shown: str) -> UniformBackend:
    """The loader evalkit calls for `uniform:TARGET,key=value` (TARGET is not used)."""
    options = parse_options(UniformOptions, spec, shown)
    assert isinstance(options, UniformOptions)
    return UniformBackend(shown, options)
