"""The one protocol every backend implements, and the facts it reports about its model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from evalkit.requests import (
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingRequest,
    RollingResult,
)

Family = Literal["transformer", "ssm", "hybrid", "unknown"]


class ModelFacts(BaseModel):
    """What a run record says about the model that produced it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # the spec the user typed, normalised (e.g. "smollm2-135m")
    backend: str  # "transformers", "fake", ...
    source: str  # path or hub id actually loaded
    architecture: str  # e.g. "LlamaForCausalLM"
    family: Family
    parameters: int
    dtype: str
    quantization: str | None  # e.g. "gguf:Q4_1 (dequantized)", None for full precision
    bytes_on_disk: int
    fingerprint: str  # sha256 over weights + output-changing load options
    context_window: int | None
    revision: str | None = None
    chat_template: bool = False


@runtime_checkable
class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def count(self, text: str) -> int: ...


@runtime_checkable
class Backend(Protocol):
    """A loaded model that answers typed requests.

    Results come back in the order of the requests. `batch_size` is a hint: a backend
    must return the same numbers (|Δ| ≤ 1e-4 in log-probability) whatever it is.
    """

    @property
    def tokenizer(self) -> Tokenizer: ...

    def describe(self) -> ModelFacts: ...

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], batch_size: int = 16
    ) -> list[LoglikelihoodResult]: ...

    def generate(self, requests: Sequence[GenerateRequest], batch_size: int = 16) -> list[GenerateResult]: ...

    def loglikelihood_rolling(
        self, requests: Sequence[RollingRequest], batch_size: int = 16
    ) -> list[RollingResult]: ...

    def apply_chat_template(self, user_message: str) -> str:
        """Wrap a prompt as a single user turn (used only when the model spec asks)."""
        ...
