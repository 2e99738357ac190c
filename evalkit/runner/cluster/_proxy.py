"""The driver's stand-in for a model that is loaded only on the workers.

Executors that run on the driver (the document kinds, long context) ask their backend for facts
and tokens while they build requests: `describe()`, the tokenizer, the chat template, exact
prompt tokens. The proxy answers `describe()` from what the workers reported and forwards the
rest to one worker, keeping the answers of pure calls (same text in, same tokens out), so fitting
a long-context prompt costs a round trip per distinct text. It declares exactly the optional
capabilities (PromptTokens, PrefixReuse, TimingProbe, StateSizeProbe) the workers' backend
declares, so executors take the same paths as with the model itself.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol, cast

from evalkit.backends import Backend, ModelFacts
from evalkit.requests import (
    ChatMessage,
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingRequest,
    RollingResult,
)

_PURE_KEPT = 65536  # answers of pure calls kept (tokens of prompts, templates): bounded memory


class Caller(Protocol):
    def call(self, method: str, args: tuple[Any, ...]) -> Any: ...


class _Line:
    """Calls to a worker's backend; pure answers are remembered (least recently used go first)."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller
        self._pure: OrderedDict[tuple[str, tuple[Any, ...]], Any] = OrderedDict()

    def call(self, method: str, *args: Any) -> Any:
        return self.caller.call(method, args)

    def pure(self, method: str, *args: Any) -> Any:
        key = (method, args)
        if key in self._pure:
            self._pure.move_to_end(key)
            return self._pure[key]
        answer = self.caller.call(method, args)
        self._pure[key] = answer
        if len(self._pure) > _PURE_KEPT:
            self._pure.popitem(last=False)
        return answer


class _RemoteTokenizer:
    def __init__(self, line: _Line) -> None:
        self._line = line

    def encode(self, text: str) -> list[int]:
        return list(self._line.pure("tokenizer.encode", text))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._line.pure("tokenizer.decode", tuple(ids)))

    def count(self, text: str) -> int:
        return int(self._line.pure("tokenizer.count", text))


class BackendProxy:
    """The Backend protocol, answered by a worker (see the module's doc)."""

    def __init__(self, caller: Caller, facts: ModelFacts) -> None:
        self._line = _Line(caller)
        self._facts = facts
        self._tokenizer = _RemoteTokenizer(self._line)

    @property
    def tokenizer(self) -> _RemoteTokenizer:
        return self._tokenizer

    def describe(self) -> ModelFacts:
        return self._facts

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], batch_size: int = 16
    ) -> list[LoglikelihoodResult]:
        return list(self._line.call("loglikelihood", list(requests), batch_size))

    def generate(self, requests: Sequence[GenerateRequest], batch_size: int = 16) -> list[GenerateResult]:
        return list(self._line.call("generate", list(requests), batch_size))

    def loglikelihood_rolling(
        self, requests: Sequence[RollingRequest], batch_size: int = 16
    ) -> list[RollingResult]:
        return list(self._line.call("loglikelihood_rolling", list(requests), batch_size))

    def apply_chat_template(self, conversation: str | Sequence[ChatMessage]) -> str:
        key = conversation if isinstance(conversation, str) else tuple(conversation)  # hashable: cached
        return str(self._line.pure("apply_chat_template", key))


class _PromptTokens:
    _line: _Line

    def prompt_token_ids(self, context: str) -> list[int]:
        return list(self._line.pure("prompt_token_ids", context))

    def tokenizer_identity(self) -> str:
        return str(self._line.pure("tokenizer_identity"))

    def prompt_limit(self) -> int | None:
        limit = self._line.pure("prompt_limit")
        return None if limit is None else int(limit)


class _PrefixReuse:
    _line: _Line

    def generate_shared(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        return list(self._line.call("generate_shared", list(requests)))

    def loglikelihood_shared(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        return list(self._line.call("loglikelihood_shared", list(requests)))


class _TimingProbe:
    """Forwarded for completeness: efficiency tasks run whole on a worker, next to the model."""

    _line: _Line

    @property
    def vocab_size(self) -> int:
        return int(self._line.pure("vocab_size"))

    def timing_prefill(self, token_ids: Sequence[int]) -> float:
        return float(self._line.call("timing_prefill", list(token_ids)))

    def timing_decode(self, context_ids: Sequence[int], new_tokens: int) -> list[float]:
        return list(self._line.call("timing_decode", list(context_ids), new_tokens))

    def weight_bytes(self) -> int:
        return int(self._line.pure("weight_bytes"))

    def flops_per_token(self, context_length: int) -> float:
        return float(self._line.pure("flops_per_token", context_length))


class _StateSizeProbe:
    _line: _Line

    def timing_state_bytes(self, token_ids: Sequence[int]) -> int:
        return int(self._line.pure("timing_state_bytes", tuple(token_ids)))


# capability name (see `_actor.capabilities_of`) -> the methods that declare it
_CAPABILITY_MIXINS: dict[str, type] = {
    "prompt_tokens": _PromptTokens,
    "prefix_reuse": _PrefixReuse,
    "timing_probe": _TimingProbe,
    "state_size_probe": _StateSizeProbe,
}
_CLASSES: dict[frozenset[str], type] = {}


def backend_proxy(caller: Caller, facts: ModelFacts, capabilities: frozenset[str]) -> Backend:
    """A proxy declaring exactly `capabilities` (protocol checks look for the methods)."""
    known = capabilities & set(_CAPABILITY_MIXINS)
    if known not in _CLASSES:
        mixins = tuple(_CAPABILITY_MIXINS[name] for name in sorted(known))
        _CLASSES[known] = type("BackendProxy", (*mixins, BackendProxy), {})
    return cast(Backend, _CLASSES[known](caller, facts))
