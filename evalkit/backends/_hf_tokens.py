"""Tokenisation rules copied from lm-eval 0.4.13's `HFLM`, so scores are comparable with it.

Every rule here mirrors a line of `lm_eval/models/huggingface.py` or `lm_eval/api/model.py`
(named in the docstrings); the anchor test compares per-sample loglikelihoods with HFLM on
the same model object, so a "nicer" tokenisation would be a bug, not an improvement.
No torch import: these functions work on token lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from evalkit.backends.base import Family
from evalkit.requests import LoglikelihoodRequest, LoglikelihoodResult, RollingRequest, RollingResult

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

# lm_eval.models.utils.DEFAULT_MAX_LENGTH: HFLM's window when neither config nor tokenizer has one.
HFLM_DEFAULT_MAX_LENGTH = 2048
# A recurrent model has no positional limit; windowing still needs a number.
UNBOUNDED_CONTEXT = 1 << 20
# transformers' "no limit" sentinel for tokenizer.model_max_length (lm_eval's TOKENIZER_INFINITY).
_TOKENIZER_INFINITY = 1000000000000000019884624838656

_SSM_TYPES = frozenset({"mamba", "mamba2", "falcon_mamba"})
_HYBRID_TYPES = frozenset(
    {"jamba", "zamba", "zamba2", "bamba", "falcon_h1", "nemotron_h", "granitemoehybrid"}
)
_SEQLEN_ATTRS = ("n_positions", "max_position_embeddings", "n_ctx")


def model_family(config: PretrainedConfig) -> Family:
    """transformer / ssm / hybrid from `model_type` (the top-level or the text sub-config)."""
    types = {getattr(config, "model_type", None), getattr(text_config(config), "model_type", None)}
    if types & _SSM_TYPES:
        return "ssm"
    if types & _HYBRID_TYPES:
        return "hybrid"
    return "transformer"


def text_config(config: PretrainedConfig) -> Any:
    """The sub-config that describes the language model (composite models nest it)."""
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def config_context_window(config: PretrainedConfig) -> int | None:
    """The positional limit the config declares (lm_eval.models.utils.resolve_max_length order)."""
    for source in (getattr(config, "text_config", None), config):
        if source is None:
            continue
        for attr in _SEQLEN_ATTRS:
            value = getattr(source, attr, None)
            if value is not None:
                return int(value)
    return None


def scoring_window(
    config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase, override: int | None, family: Family
) -> int:
    """The token window used for truncation and rolling windows.

    HFLM's order (explicit max_length, config, tokenizer.model_max_length, 2048), except that
    a recurrent model without a declared limit gets an effectively unbounded window instead of
    HFLM's arbitrary 2048: there is nothing to truncate for.
    """
    if override:
        return override
    declared = config_context_window(config)
    if declared is not None:
        return declared
    if family in ("ssm", "hybrid"):
        return UNBOUNDED_CONTEXT
    model_max_length = getattr(tokenizer, "model_max_length", None)
    if model_max_length is not None and model_max_length != _TOKENIZER_INFINITY:
        return int(model_max_length)
    return HFLM_DEFAULT_MAX_LENGTH


class HFLMEncoder:
    """`HFLM.tok_encode` / `_encode_pair` / empty-context handling, with HFLM's defaults.

    HFLM 0.4.13 is built with `add_bos_token=None`, so it passes no `add_special_tokens` and the
    tokenizer's own default decides whether BOS is added (Gemma's tokenizer adds it, SmolLM2's
    does not). The only override is `has_bos_prefix`: text that already starts with the prefix
    token's string (a rendered chat template) is encoded without special tokens. (0.4.13 no
    longer forces BOS for Gemma in HFLM; only its sglang backend does.)
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        # HFLM.prefix_token_id: BOS if the tokenizer has one, else EOS.
        bos = tokenizer.bos_token_id
        prefix = bos if bos is not None else tokenizer.eos_token_id
        if prefix is None:
            raise ValueError("the tokenizer has neither a BOS nor an EOS token to condition on")
        self.prefix_token_id: int = int(prefix)
        self._prefix_text: str = str(tokenizer.decode(self.prefix_token_id))

    def encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]:
        """HFLM.tok_encode."""
        kwargs: dict[str, bool] = {}
        if add_special_tokens is not None:
            kwargs["add_special_tokens"] = add_special_tokens
        elif self._prefix_text and text.startswith(self._prefix_text):
            kwargs["add_special_tokens"] = False
        return list(self.tokenizer.encode(text, **kwargs))

    def encode_for_generation(self, text: str) -> list[int]:
        """HFLM.tok_batch_encode's rule: it checks the tokenizer's bos_token string, not the prefix."""
        bos_text = getattr(self.tokenizer, "bos_token", None)
        if bos_text and text.startswith(bos_text):
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        return list(self.tokenizer.encode(text))

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """LM.loglikelihood + LM._encode_pair for a causal model.

        Trailing whitespace of the context moves onto the continuation; the continuation's
        tokens are the tail of encode(context + continuation) after len(encode(context)).
        An empty context is replaced by the prefix token, unless the continuation itself
        starts with that token.
        """
        if context == "":
            continuation_enc = self.encode(continuation, add_special_tokens=False)
            if continuation_enc and continuation_enc[0] == self.prefix_token_id:
                return continuation_enc[:1], continuation_enc[1:]
            return [self.prefix_token_id], continuation_enc
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces > 0:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole_enc = self.encode(context + continuation)
        context_enc = self.encode(context)
        return context_enc, whole_enc[len(context_enc) :]


def rolling_windows(
    tokens: Sequence[int], prefix_token: int, max_seq_len: int
) -> Iterator[tuple[list[int], list[int]]]:
    """lm_eval.utils.get_rolling_token_windows(context_len=1) followed by make_disjoint_window.

    Yields (context, continuation) pairs that predict every token exactly once, each with as
    much left context as fits in `max_seq_len`. Re-implemented (and tested against lm-eval)
    so the backend does not need lm-eval installed.
    """
    token_list = list(tokens)
    if not token_list:
        return
    pred_len = max_seq_len  # max_seq_len - context_len + 1 with context_len = 1
    first_len = min(max_seq_len, len(token_list))
    windows = [([prefix_token, *token_list[: first_len - 1]], token_list[:first_len])]
    predicted = first_len
    while predicted < len(token_list):
        window_pred_len = min(len(token_list) - predicted, pred_len)
        window_end = predicted + window_pred_len
        windows.append(
            (
                token_list[window_end - max_seq_len - 1 : window_end - 1],
                token_list[window_end - window_pred_len : window_end],
            )
        )
        predicted += window_pred_len
    for context, continuation in windows:
        yield context[: len(context) - (len(continuation) - 1)], continuation


TokenPair = tuple[tuple[int, ...], tuple[int, ...]]
PairScorer = Callable[[list[TokenPair]], Sequence[tuple[float, bool]]]


def score_loglikelihood(
    encoder: HFLMEncoder, requests: Sequence[LoglikelihoodRequest], score: PairScorer
) -> list[LoglikelihoodResult]:
    """Encode requests the way HFLM does, score the token pairs, and wrap the results.

    Shared by every backend that scores token pairs (transformers, llama.cpp), so they cannot
    drift apart in how a request becomes tokens.
    """
    pairs: list[TokenPair] = []
    for request in requests:
        context, continuation = encoder.encode_pair(request.context, request.continuation)
        pairs.append((tuple(context), tuple(continuation)))
    return [
        LoglikelihoodResult(logprob=logprob, is_greedy=greedy, num_tokens=len(pair[1]))
        for (logprob, greedy), pair in zip(score(pairs), pairs, strict=True)
    ]


def score_rolling(
    encoder: HFLMEncoder, requests: Sequence[RollingRequest], max_length: int, score: PairScorer
) -> list[RollingResult]:
    """HFLM.loglikelihood_rolling: disjoint windows, each scored with maximal left context."""
    owners: list[int] = []
    pairs: list[TokenPair] = []
    counts = []
    for index, request in enumerate(requests):
        tokens = encoder.encode(request.text)
        counts.append(len(tokens))
        for context, continuation in rolling_windows(tokens, encoder.prefix_token_id, max_length):
            owners.append(index)
            pairs.append((tuple(context), tuple(continuation)))
    totals = [0.0] * len(requests)
    for owner, (logprob, _) in zip(owners, score(pairs), strict=True):
        totals[owner] += logprob
    return [RollingResult(logprob=total, num_tokens=n) for total, n in zip(totals, counts, strict=True)]
