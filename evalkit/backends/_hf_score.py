"""Scoring token-level (context, continuation) pairs fast, with the same numbers as a plain forward.

Two optimisations, each verified on the loaded model before it is trusted:

* **shared-prefix packing** - multiple-choice tasks ask for several continuations of one
  context. One row holds the context once and every continuation after it; a 4D additive
  attention mask lets each continuation see the context and itself only, and explicit
  position ids restart each continuation at len(context). ARC-style requests shrink from
  4 x (ctx + cont) tokens to ctx + 4 x cont.
* **logits only where needed** - the base model's hidden states are gathered at the
  positions that predict continuation tokens and only those go through the output
  embedding. With Gemma-3's 262k vocabulary the full logits tensor would dominate the cost.

Truncation follows HFLM: input = (context + continuation)[-(max_length + 1):][:-1]. A group
whose longest member would need truncation is scored plainly, one row per request.

A third, also verified at load: **few-shot prefixes computed once**. Requests of one call whose
contexts share a long token prefix (gsm8k's exemplars, an MMLU subject's instruction and dev
examples: `_hf_prefix.shared_prefix_groups`, at least `SHARE_MIN_TOKENS` tokens and
`SHARE_MIN_REQUESTS` requests) have that prefix run once; its cache, expanded to each batch
(`_hf_prefix.expand_cache`: full-attention and recurrent layers only), is continued by the rows of
the requests' remaining tokens (packed as above, positions offset by the prefix). Only requests
that need no truncation take part, so left truncation stays exactly HFLM's.

Every tensor is built on the model's device; the picked log-probabilities come back to the CPU
before they are summed in float64 (MPS has no float64), so the sums are the same on every device.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalkit.backends._hf_prefix import (
    SHARE_MIN_REQUESTS,
    SHARE_MIN_TOKENS,
    expand_cache,
    prefill_prefix,
    shared_prefix_groups,
)
from evalkit.backends._hf_tokens import text_config
from evalkit.errors import DataError
from evalkit.requests import RequestBatchStats

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

log = logging.getLogger("evalkit.backends.hf")

TokenPair = tuple[tuple[int, ...], tuple[int, ...]]
# Upper bounds that keep one packed row and one batch's 4D mask modest: attention cost grows with
# the square of the row, so a context with very many or very long continuations spans several rows.
_MAX_CONTINUATIONS_PER_ROW = 32
_MAX_ROW_BODY_TOKENS = 1024
_MAX_MASK_BYTES = 256 << 20
# The probe: two contexts of different lengths (so rows are padded), each with a 2- and a 3-token
# continuation: both have body tokens in the packed row, so a leak between them would show.
# Kept small: each reference forward computes full logits (0.2 s with Gemma's 262k vocabulary).
_PROBE_TEXT = (
    "The committee met on a cold morning to decide which of the four bridges should be "
    "repaired first, and after a long debate they chose the oldest one near the river."
)


@dataclass
class _Row:
    """One sequence of a batch and what to read from it."""

    tokens: list[int]
    # Packed rows: segment 0 is the context, k >= 1 the k-th continuation; None for plain rows.
    segments: list[int] | None = None
    positions: list[int] | None = None
    # (pair index, row offsets whose hidden state predicts each target, target tokens)
    reads: list[tuple[int, list[int], list[int]]] = field(default_factory=list)


class PairScorer:
    """Log-probabilities of continuation tokens for a causal LM, packed when that is exact."""

    def __init__(self, model: PreTrainedModel, max_length: int, family: str) -> None:
        self.model = model
        self.max_length = max_length
        self.family = family
        config = text_config(model.config)
        self._softcap = getattr(config, "final_logit_softcapping", None)
        self._logit_scale = getattr(config, "logit_scale", None)  # Cohere multiplies
        self._logits_scaling = getattr(config, "logits_scaling", None)  # Granite divides
        self._layout = attention_layout(config)
        # Decided by calibrate(); the safe path until then.
        self.packing = False
        self.gathered_logits = False
        self.prefix_sharing = False
        self.path_notes: list[str] = []
        # When a shared prefix is worth computing once (tests lower them for tiny models).
        self.share_min_tokens = SHARE_MIN_TOKENS
        self.share_min_requests = SHARE_MIN_REQUESTS
        # Work done by the last `score` call: forward_passes, tokens_processed (every token fed,
        # prefixes included) and extra: shared_prefixes (prefixes computed), prefix_tokens,
        # shared_pairs (pairs scored on a computed prefix).
        self.stats = RequestBatchStats()

    @property
    def device(self) -> torch.device:
        """Where the model's weights are: every input tensor is made there."""
        device: torch.device = self.model.device
        return device

    @property
    def path(self) -> str:
        """'packed' or 'plain', plus how logits are computed (for logs and run records)."""
        rows = "packed" if self.packing else "plain"
        return f"{rows}+{'gathered' if self.gathered_logits else 'full'}-logits"

    # --- choosing the path --------------------------------------------------------------------

    def calibrate(self, probe_tokens: Sequence[int], tolerance: float = 1e-4) -> None:
        """Switch on each optimisation that reproduces a plain full forward on a probe.

        The check runs in float32 even for a bfloat16 model: bfloat16 logits are too coarse
        (one ulp is ~0.06 at logit 16) to tell a wrong mask from rounding, while the question
        asked - is the packed computation the same function? - does not depend on the dtype.
        bfloat16 -> float32 -> bfloat16 is exact, so the weights come back bit-identical.
        """
        pairs = _probe_pairs(probe_tokens)
        with _in_float32(self.model):
            reference = [self._reference(pair) for pair in pairs]
            self.gathered_logits = self._try("gathered logits", pairs, reference, tolerance, gathered=True)
            if self.family in ("ssm", "hybrid"):
                self.path_notes.append("packing off: recurrent layers cannot share a prefix through a mask")
            elif self._layout is None:
                self.path_notes.append("packing off: attention layer types this scorer does not model")
            else:
                self.packing = self._try("packing", pairs, reference, tolerance, packing=True)
            self.prefix_sharing = self._try_sharing(probe_tokens, tolerance)
        shared = "on" if self.prefix_sharing else "off"
        notes = "; ".join(self.path_notes) or "verified"
        log.info("transformers scoring path: %s, prefix sharing %s (%s)", self.path, shared, notes)

    def _try_sharing(self, probe_tokens: Sequence[int], tolerance: float) -> bool:
        """Whether scoring on a computed prefix's cache reproduces plain forwards on the probe."""
        import torch

        if self._layout is not None and any(w is not None for w in self._layout.values()):
            self.path_notes.append("prefix sharing off: sliding-window attention evicts the prefix")
            return False
        pairs = _probe_shared_pairs(probe_tokens)
        try:
            with torch.inference_mode():
                shareable = expand_cache(prefill_prefix(self.model, pairs[0][0][:4]), 2) is not None
        except Exception as exc:
            self.path_notes.append(
                f"prefix sharing off: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            )
            return False
        if not shareable:
            self.path_notes.append("prefix sharing off: cache layers that cannot be shared")
            return False
        reference = [self._reference(pair) for pair in pairs]
        saved = (self.share_min_tokens, self.share_min_requests)
        self.share_min_tokens, self.share_min_requests = 4, 2
        try:
            shared = self._try("prefix sharing", pairs, reference, tolerance, sharing=True)
            return shared and self.stats.extra.get("shared_prefixes", 0) > 0
        finally:
            self.share_min_tokens, self.share_min_requests = saved

    def _try(
        self,
        what: str,
        pairs: list[TokenPair],
        reference: list[float],
        tolerance: float,
        *,
        gathered: bool | None = None,
        packing: bool | None = None,
        sharing: bool | None = None,
    ) -> bool:
        saved = (self.gathered_logits, self.packing, self.prefix_sharing)
        if gathered is not None:
            self.gathered_logits = gathered
        if packing is not None:
            self.packing = packing
        if sharing is not None:
            self.prefix_sharing = sharing
        try:
            got = [logprob for logprob, _ in self.score(pairs, batch_size=len(pairs))]
        except Exception as exc:  # an architecture that rejects 4D masks, position ids or a cache
            self.path_notes.append(f"{what} off: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
            return False
        finally:
            self.gathered_logits, self.packing, self.prefix_sharing = saved
        worst = max(abs(a - b) for a, b in zip(got, reference, strict=True))
        if not math.isfinite(worst) or worst > tolerance:
            self.path_notes.append(f"{what} off: differs from a plain forward by {worst:.2e}")
            return False
        return True

    def _reference(self, pair: TokenPair) -> float:
        """A plain, unbatched full-logits forward: the definition the optimisations must match."""
        import torch

        context, continuation = pair
        window = (list(context) + list(continuation))[-(self.max_length + 1) :][:-1]
        device = self.device
        with torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([window], device=device)).logits[0].float()
        logprobs = torch.log_softmax(logits[-len(continuation) :], dim=-1)
        picked = logprobs.gather(1, torch.tensor(continuation, device=device).unsqueeze(1))
        return float(picked.sum())

    # --- scoring ------------------------------------------------------------------------------

    def score(self, pairs: Sequence[TokenPair], batch_size: int) -> list[tuple[float, bool]]:
        """(sum of log-probabilities, every token greedy) for each (context, continuation)."""
        import torch

        self.stats = RequestBatchStats()
        results: list[tuple[float, bool] | None] = [None] * len(pairs)
        unique: dict[TokenPair, int] = {}
        for index, pair in enumerate(pairs):
            if not pair[1]:
                results[index] = (0.0, True)  # log P(empty) = 0; HFLM would crash on it
            else:
                unique.setdefault(pair, index)
        groups, rest = self._prefix_groups(list(unique.items()))
        rows = self._build_rows(rest)
        rows.sort(key=lambda row: len(row.tokens), reverse=True)  # as HFLM: long first, little padding
        by_pair: dict[int, tuple[float, bool]] = {}
        with torch.inference_mode():
            for prefix, members in groups:
                by_pair.update(self._score_on_prefix(prefix, members, max(1, batch_size)))
            for batch in _batches(rows, max(1, batch_size), packed=self.packing):
                by_pair.update(self._score_batch(batch))
        for index, pair in enumerate(pairs):
            if results[index] is None:
                results[index] = by_pair[unique[pair]]
        return [r for r in results if r is not None]

    def _prefix_groups(
        self, items: list[tuple[TokenPair, int]]
    ) -> tuple[list[tuple[tuple[int, ...], list[tuple[TokenPair, int]]]], list[tuple[TokenPair, int]]]:
        """(shared prefix, its pairs) groups, and the pairs scored as before.

        Only pairs that need no truncation take part, and each keeps at least its last context
        token out of the prefix (the logits there predict the continuation's first token).
        """
        if not self.prefix_sharing:
            return [], items
        fits = [
            item
            for item in items
            if len(item[0][0]) >= 2 and len(item[0][0]) + len(item[0][1]) - 1 <= self.max_length
        ]
        if len(fits) < max(2, self.share_min_requests):
            return [], items
        contexts = [pair[0] for pair, _ in fits]
        found, _ = shared_prefix_groups(
            contexts, [len(c) - 1 for c in contexts], self.share_min_tokens, self.share_min_requests
        )
        groups = []
        shared: set[int] = set()
        for group in found:
            members = [fits[m] for m in group.members]
            shared.update(index for _, index in members)
            groups.append((contexts[group.members[0]][: group.length], members))
        return groups, [item for item in items if item[1] not in shared]

    def _score_on_prefix(
        self, prefix: tuple[int, ...], members: list[tuple[TokenPair, int]], batch_size: int
    ) -> dict[int, tuple[float, bool]]:
        """Run `prefix` once, then score each pair's remaining tokens on its cache."""
        cache = prefill_prefix(self.model, prefix)
        n = len(prefix)
        self.stats.forward_passes += 1
        self.stats.tokens_processed += n
        extra = self.stats.extra
        extra["shared_prefixes"] = extra.get("shared_prefixes", 0) + 1
        extra["prefix_tokens"] = extra.get("prefix_tokens", 0) + n
        extra["shared_pairs"] = extra.get("shared_pairs", 0) + len(members)
        rows = self._build_rows([((context[n:], continuation), i) for (context, continuation), i in members])
        rows.sort(key=lambda row: len(row.tokens), reverse=True)
        scored: dict[int, tuple[float, bool]] = {}
        for batch in _batches(rows, batch_size, packed=self.packing, past=n):
            scored.update(self._score_batch(batch, past=(cache, n)))
        return scored

    def _build_rows(self, items: list[tuple[TokenPair, int]]) -> list[_Row]:
        rows: list[_Row] = []
        groups: dict[tuple[int, ...], list[tuple[tuple[int, ...], int]]] = {}
        for (context, continuation), index in items:
            fits = len(context) + len(continuation) - 1 <= self.max_length
            if self.packing and fits and context:
                groups.setdefault(context, []).append((continuation, index))
            else:
                rows.append(self._plain_row(context, continuation, index))
        for context, members in groups.items():
            chunk: list[tuple[tuple[int, ...], int]] = []
            body = 0
            for member in members:
                extra = len(member[0]) - 1
                if chunk and (
                    len(chunk) >= _MAX_CONTINUATIONS_PER_ROW or body + extra > _MAX_ROW_BODY_TOKENS
                ):
                    rows.append(_packed_row(context, chunk))
                    chunk, body = [], 0
                chunk.append(member)
                body += extra
            rows.append(_packed_row(context, chunk))
        return rows

    def _plain_row(self, context: tuple[int, ...], continuation: tuple[int, ...], index: int) -> _Row:
        n = len(continuation)
        if n > self.max_length:
            raise DataError(
                f"a continuation of {n} tokens does not fit the model's {self.max_length}-token window"
            )
        window = (list(context) + list(continuation))[-(self.max_length + 1) :][:-1]
        return _Row(
            tokens=window, reads=[(index, list(range(len(window) - n, len(window))), list(continuation))]
        )

    def _score_batch(
        self, batch: list[_Row], past: tuple[Any, int] | None = None
    ) -> dict[int, tuple[float, bool]]:
        """Score a batch of rows; `past`: (a prefix's cache, its length) the rows continue."""
        import torch

        device = self.device
        width = max(len(row.tokens) for row in batch)
        # Right padding with each row's last token: never read.
        padded = [row.tokens + [row.tokens[-1]] * (width - len(row.tokens)) for row in batch]
        input_ids = torch.tensor(padded, dtype=torch.long, device=device)
        self.stats.forward_passes += 1
        self.stats.tokens_processed += sum(len(row.tokens) for row in batch)
        kwargs: dict[str, Any] = {}
        offset = 0 if past is None else past[1]
        if self.packing and any(row.segments is not None for row in batch):
            kwargs = (
                self._packed_inputs(batch, width, past=offset)
                if offset
                else self._packed_inputs(batch, width)
            )
        if past is not None:
            cache = expand_cache(past[0], len(batch))
            if cache is None:  # verified shareable at load; a layer type seen only now
                raise RuntimeError("a shared prefix's cache holds layers that cannot be shared")
            # Plain rows need no positions: the model numbers them on from the cache's length.
            kwargs["cache"], kwargs["use_cache"] = cache, True
        row_index: list[int] = []
        offsets: list[int] = []
        targets: list[int] = []
        spans: list[tuple[int, int, int]] = []  # (pair index, start, end) into the gathered rows
        for b, row in enumerate(batch):
            for pair_index, reads, tokens in row.reads:
                spans.append((pair_index, len(targets), len(targets) + len(tokens)))
                row_index.extend([b] * len(reads))
                offsets.extend(reads)
                targets.extend(tokens)
        logits = self._logits_at(
            input_ids, kwargs, torch.tensor(row_index, device=device), torch.tensor(offsets, device=device)
        )
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        target_tensor = torch.tensor(targets, device=device)
        picked = logprobs.gather(1, target_tensor.unsqueeze(1)).squeeze(1).cpu().double()
        greedy = (logprobs.argmax(dim=-1) == target_tensor).cpu()
        return {
            pair_index: (float(picked[start:end].sum()), bool(greedy[start:end].all()))
            for pair_index, start, end in spans
        }

    def _logits_at(
        self, input_ids: torch.Tensor, kwargs: dict[str, Any], rows: torch.Tensor, offsets: torch.Tensor
    ) -> torch.Tensor:
        import torch

        if not self.gathered_logits:
            gathered: torch.Tensor = self.model(input_ids=input_ids, **kwargs).logits[rows, offsets]
            return gathered
        base = self.model.base_model
        hidden = base(input_ids=input_ids, **kwargs).last_hidden_state[rows, offsets]
        head = self.model.get_output_embeddings()
        if head is None:
            raise TypeError(f"{type(self.model).__name__} has no output embedding")
        logits: torch.Tensor = head(hidden)
        if self._logit_scale is not None:
            logits = logits * self._logit_scale
        if self._logits_scaling is not None:
            logits = logits / self._logits_scaling
        if self._softcap is not None:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        return logits

    def _packed_inputs(self, batch: list[_Row], width: int, past: int = 0) -> dict[str, Any]:
        """The 4D additive mask(s) and position ids for a batch of packed rows; `past`: the rows
        continue a cached prefix of that many tokens, which every position sees (full attention)."""
        import torch

        segments = torch.full((len(batch), width), -1, dtype=torch.long)
        positions = torch.zeros((len(batch), width), dtype=torch.long)
        for b, row in enumerate(batch):
            n = len(row.tokens)
            segments[b, :n] = torch.tensor(row.segments if row.segments is not None else [0] * n)
            positions[b, :n] = torch.tensor(row.positions if row.positions is not None else range(n))
            positions[b, n:] = torch.arange(width - n)
        device = self.device
        segments, positions = segments.to(device), positions.to(device)
        index = torch.arange(width, device=device)
        causal = index[None, :, None] >= index[None, None, :]
        query_segment, key_segment = segments[:, :, None], segments[:, None, :]
        visible = causal & (query_segment >= 0) & ((key_segment == 0) | (key_segment == query_segment))
        # A padded query sees only itself, so its softmax is never over an empty set (no NaN).
        visible |= (query_segment < 0) & torch.eye(width, dtype=torch.bool, device=device)[None]
        distance = positions[:, :, None] - positions[:, None, :]
        dtype = self.model.dtype
        layout = self._layout or {"full_attention": None}
        masks = {}
        for layer_type, window in layout.items():
            allowed = visible if window is None else visible & (distance < window)
            mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
            mask = mask.masked_fill(~allowed, torch.finfo(dtype).min)
            if past:
                mask = torch.cat([mask.new_zeros((len(batch), width, past)), mask], dim=-1)
            masks[layer_type] = mask[:, None]
        mask_arg: Any = masks if len(masks) > 1 else next(iter(masks.values()))
        return {"attention_mask": mask_arg, "position_ids": positions + past}


@contextmanager
def _in_float32(model: PreTrainedModel) -> Iterator[None]:
    """Temporarily hold every bfloat16/float16 parameter and buffer in float32, then restore."""
    import torch

    tensors = [
        t for t in (*model.parameters(), *model.buffers()) if t.dtype in (torch.bfloat16, torch.float16)
    ]
    dtypes = [t.dtype for t in tensors]
    for tensor in tensors:
        tensor.data = tensor.data.float()
    try:
        yield
    finally:
        for tensor, dtype in zip(tensors, dtypes, strict=True):
            tensor.data = tensor.data.to(dtype)


def attention_layout(config: Any) -> dict[str, int | None] | None:
    """Attention layer type -> sliding window (None = full), or None if not maskable by us.

    A user-supplied 4D mask is used as-is by transformers' masking utilities, so a sliding
    window must be built into it; models that mix full and sliding layers take a dict keyed
    by layer type (as `Gemma3TextModel` builds internally).
    """
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        kinds = set(layer_types)
        if kinds - {"full_attention", "sliding_attention"}:
            return None
        return {kind: (window if kind == "sliding_attention" else None) for kind in sorted(kinds)}
    if window is not None and getattr(config, "use_sliding_window", True):
        return {"full_attention": int(window)}
    return {"full_attention": None}


def _packed_row(context: tuple[int, ...], members: list[tuple[tuple[int, ...], int]]) -> _Row:
    n_context = len(context)
    row = _Row(tokens=list(context), segments=[0] * n_context, positions=list(range(n_context)))
    for segment, (continuation, index) in enumerate(members, start=1):
        start = len(row.tokens)
        body = list(continuation[:-1])  # the last token is predicted, never fed
        row.tokens.extend(body)
        row.segments = (row.segments or []) + [segment] * len(body)
        row.positions = (row.positions or []) + list(range(n_context, n_context + len(body)))
        reads = [n_context - 1, *list(range(start, start + len(body)))]
        row.reads.append((index, reads, list(continuation)))
    return row


def _batches(rows: list[_Row], batch_size: int, *, packed: bool, past: int = 0) -> list[list[_Row]]:
    """Consecutive rows (already sorted by length), capped so the 4D mask stays modest."""
    batches: list[list[_Row]] = []
    current: list[_Row] = []
    for row in rows:
        width = len(current[0].tokens) if current else len(row.tokens)
        too_big = packed and (len(current) + 1) * width * (past + width) * 4 > _MAX_MASK_BYTES
        if current and (len(current) >= batch_size or too_big):
            batches.append(current)
            current = []
        current.append(row)
    if current:
        batches.append(current)
    return batches


def _probe_pairs(tokens: Sequence[int]) -> list[TokenPair]:
    ids = list(tokens) or [0]
    while len(ids) < 24:
        ids = ids + ids
    short, long_ = tuple(ids[:5]), tuple(ids[3:14])
    tails = [tuple(ids[14:16]), tuple(ids[16:19])]
    return [(context, tail) for context in (short, long_) for tail in tails]


def _probe_shared_pairs(tokens: Sequence[int]) -> list[TokenPair]:
    """Contexts sharing 8-10 leading tokens, with continuations of 2 and 3 tokens (one context twice,
    so a packed row continues the prefix too)."""
    ids = list(tokens) or [0]
    while len(ids) < 24:
        ids = ids + ids
    contexts = [tuple(ids[:10]), tuple(ids[:13]), tuple(ids[:9] + ids[20:22])]
    tails = [tuple(ids[14:16]), tuple(ids[16:19])]
    return [
        (contexts[0], tails[0]),
        (contexts[0], tails[1]),
        (contexts[1], tails[0]),
        (contexts[2], tails[1]),
    ]


def probe_tokens(tokenizer: Any) -> list[int]:
    """Token ids of a fixed English sentence, used to verify the fast paths at load time."""
    return list(tokenizer.encode(_PROBE_TEXT, add_special_tokens=False))
