"""The one protocol every backend implements, and the facts it reports about its model.

`ModelFacts` (and `Family`) belong to the record schema, which owns what a record means; they are
re-exported here because every backend builds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from evalkit.requests import (
    ChatMessage,
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingRequest,
    RollingResult,
)
from evalkit.results import Family, ModelFacts

__all__ = ["Backend", "Family", "ModelFacts", "Tokenizer"]


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

    def apply_chat_template(self, conversation: str | Sequence[ChatMessage]) -> str:
        """Render a conversation with the model's chat template, ending where the assistant's answer
        starts (used only when the model spec asks). A string is one user turn, after the model's
        `system_prompt` if it has one; a list of messages is rendered as it is."""
        ...
