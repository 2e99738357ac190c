"""Greedy, batched generation with a KV cache, per-row stop strings, EOS and token limits.

Requests are sorted by prompt length (longest first) and cut into batches of `batch_size`.
A batch is left-padded, with an attention mask and position ids counted from each row's first
real token, so a row sees exactly what it would see alone. For transformer models the batch is
decoded here (`_decode_batch`): one prefill of the padded prompts, then one forward per new
token over the model's own `past_key_values` cache. A row that produces EOS, reaches its own
`max_tokens` or shows one of its stop strings leaves the batch at once (its cache rows are
dropped), so finished rows cost nothing while the others go on. Its text is cut at the first
stop string. Recurrent (ssm, hybrid) models carry padding into their state, so for them only
rows of equal length share a batch, and they (like models whose generation config alters greedy
choices) go through `model.generate` with a per-row stopping criterion (`_generate_batch`).
Inputs are made on the model's device.

Few-shot prefixes are computed once (`share_min_tokens`): prompts of one call that need no
truncation and share at least that many leading tokens (gsm8k's 8 exemplars, ~800 tokens) form a
group (`_hf_prefix.shared_prefix_groups`). The group's prefix runs once; each batch of its members
continues that cache (expanded to the batch, `_hf_prefix.expand_cache`) with the members' remaining
tokens left-padded after it: attention mask [prefix 1s | padding 0s | suffix 1s], positions from
the mask's cumulative sum, so every row sees what it would see alone. Then decoding goes on as
above. Recurrent models cannot pad, so their groups go through `_hf_prefix.PrefixEngine`
instead: the prefix's state is computed once and each prompt continues (and decodes from) a copy
of it, one row at a time, as rows of unequal length already did here. Caches that cannot be shared
(sliding-window layers) and greedy-altering configs (`model.generate` applies them) do not share.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from evalkit.backends._hf_prefix import SHARE_MIN_REQUESTS, expand_cache, prefill_prefix, shared_prefix_groups
from evalkit.backends._hf_tokens import HFLMEncoder
from evalkit.requests import GenerateRequest, GenerateResult, RequestBatchStats

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel


def greedy_generate(
    model: PreTrainedModel,
    encoder: HFLMEncoder,
    requests: Sequence[GenerateRequest],
    batch_size: int,
    max_length: int,
    *,
    pad_free: bool,
    share_min_tokens: int | None = None,
    share_min_requests: int = SHARE_MIN_REQUESTS,
    stats: RequestBatchStats | None = None,
) -> list[GenerateResult]:
    """One GenerateResult per request, in request order.

    `share_min_tokens`: compute prefixes shared by at least `share_min_requests` prompts over at
    least this many tokens once (None: never). `stats` counts the work: forward_passes,
    tokens_processed (prompt tokens prefilled, prefixes included) and extra: shared_prefixes,
    prefix_tokens, shared_requests, decode_tokens.
    """
    import torch

    from evalkit.backends._hf_prefix import _greedy_altering

    stats = stats if stats is not None else RequestBatchStats()
    prompts: list[list[int]] = []
    whole: list[bool] = []  # the prompt was not truncated
    for request in requests:
        ids = encoder.encode_for_generation(request.context)
        room = max_length - request.max_tokens  # HFLM: max_ctx_len = max_length - max_gen_toks
        prompts.append(ids[-room:] if room > 0 else ids[-1:])
        whole.append(len(prompts[-1]) == len(ids))
    # The hand-written loop applies no logits processors; recurrent states cannot skip padding.
    altering = bool(_greedy_altering(model))
    own_loop = not pad_free and not altering
    generate_batch = _decode_batch if own_loop else _generate_batch
    results: dict[int, GenerateResult] = {}
    size = max(1, batch_size)
    groups = []
    if share_min_tokens is not None and not altering:
        groups = _prefix_groups(prompts, whole, requests, share_min_tokens, share_min_requests)
    grouped: set[int] = set()
    if pad_free and groups:
        for prefix, members in groups:
            results.update(_recurrent_group(model, encoder, prefix, members, requests, stats))
            grouped.update(members)
    with torch.inference_mode():
        if own_loop:
            for prefix, members in groups:
                cache = prefill_prefix(model, prefix)
                stats.forward_passes += 1
                stats.tokens_processed += len(prefix)
                if expand_cache(cache, 1) is None:
                    break  # e.g. sliding-window layers: this model shares nothing
                _count(stats, shared_prefixes=1, prefix_tokens=len(prefix), shared_requests=len(members))
                n = len(prefix)
                ordered = sorted(members, key=lambda i: -len(prompts[i]))
                for batch in _batches(ordered, prompts, size, pad_free=False):
                    batch_results = _decode_batch(
                        model,
                        encoder,
                        [prompts[i][n:] for i in batch],
                        [requests[i] for i in batch],
                        past=(cache, n),
                        stats=stats,
                    )
                    results.update(zip(batch, batch_results, strict=True))
                grouped.update(members)
        order = sorted((i for i in range(len(requests)) if i not in grouped), key=lambda i: -len(prompts[i]))
        for batch in _batches(order, prompts, size, pad_free=pad_free):
            batch_results = generate_batch(
                model, encoder, [prompts[i] for i in batch], [requests[i] for i in batch], stats=stats
            )
            results.update(zip(batch, batch_results, strict=True))
    return [results[i] for i in range(len(requests))]


def _recurrent_group(
    model: PreTrainedModel,
    encoder: HFLMEncoder,
    prefix: list[int],
    members: list[int],
    requests: Sequence[GenerateRequest],
    stats: RequestBatchStats,
) -> dict[int, GenerateResult]:
    """A recurrent model's group through the trie walk: the prefix state once, then each prompt."""
    from evalkit.backends._hf_prefix import PrefixEngine

    engine = PrefixEngine(model, encoder, "ssm")
    answers = engine.generate([requests[i] for i in members])
    walked = engine.stats
    stats.forward_passes += walked.forward_passes
    stats.tokens_processed += int(walked.extra.get("prefill_tokens", 0))
    _count(
        stats,
        shared_prefixes=1,
        prefix_tokens=len(prefix),
        shared_requests=len(members),
        decode_tokens=int(walked.extra.get("decode_tokens", 0)),
    )
    return dict(zip(members, answers, strict=True))


def _prefix_groups(
    prompts: list[list[int]],
    whole: list[bool],
    requests: Sequence[GenerateRequest],
    min_tokens: int,
    min_requests: int,
) -> list[tuple[list[int], list[int]]]:
    """(shared prefix, member request indices) for untruncated prompts that decode at least one token.

    Each prompt keeps its last token out of the prefix: its logits start the decode.
    """
    candidates = [i for i, r in enumerate(requests) if whole[i] and r.max_tokens > 0 and len(prompts[i]) >= 2]
    found, _ = shared_prefix_groups(
        [prompts[i] for i in candidates], [len(prompts[i]) - 1 for i in candidates], min_tokens, min_requests
    )
    groups = []
    for group in found:
        members = [candidates[m] for m in group.members]
        groups.append((prompts[members[0]][: group.length], members))
    return groups


def _count(stats: RequestBatchStats, **amounts: int) -> None:
    for key, amount in amounts.items():
        stats.extra[key] = stats.extra.get(key, 0) + amount


def _batches(order: list[int], prompts: list[list[int]], size: int, *, pad_free: bool) -> list[list[int]]:
    batches: list[list[int]] = []
    for index in order:
        last = batches[-1] if batches else None
        fits = last is not None and len(last) < size
        if fits and pad_free and last is not None:
            fits = len(prompts[last[0]]) == len(prompts[index])
        if fits and last is not None:
            last.append(index)
        else:
            batches.append([index])
    return batches


def _eos_ids(model: PreTrainedModel, encoder: HFLMEncoder) -> list[int]:
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    if encoder.tokenizer.eos_token_id is not None:
        ids.add(int(encoder.tokenizer.eos_token_id))
    return sorted(ids)


def _left_padded(
    model: PreTrainedModel, prompts: list[list[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (rows, longest prompt), padding on the left."""
    import torch

    width = max(len(p) for p in prompts)
    padded = [[pad_id] * (width - len(p)) + p for p in prompts]
    mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
    device = model.device
    return (
        torch.tensor(padded, dtype=torch.long, device=device),
        torch.tensor(mask, dtype=torch.long, device=device),
    )


def _pad_id(encoder: HFLMEncoder, eos_ids: list[int]) -> int:
    pad = encoder.tokenizer.pad_token_id
    return int(pad) if pad is not None else (eos_ids or [0])[0]


def _decode_batch(
    model: PreTrainedModel,
    encoder: HFLMEncoder,
    prompts: list[list[int]],
    requests: list[GenerateRequest],
    *,
    past: tuple[Any, int] | None = None,
    stats: RequestBatchStats | None = None,
) -> list[GenerateResult]:
    """Prefill the padded batch once, then decode one token per forward, dropping finished rows.

    `past`: (a prefix's cache, its length) that every prompt continues (prompts hold the rest).
    """
    import torch

    stats = stats if stats is not None else RequestBatchStats()
    eos_ids = _eos_ids(model, encoder)
    eos = set(eos_ids)
    produced: list[list[int]] = [[] for _ in requests]
    live = [row for row, request in enumerate(requests) if request.max_tokens > 0]
    if live:
        stopper = _RowStopper(encoder, requests, eos)
        input_ids, mask = _left_padded(model, [prompts[row] for row in live], _pad_id(encoder, eos_ids))
        stats.forward_passes += 1
        stats.tokens_processed += sum(len(prompts[row]) for row in live)
        cache: Any = None
        if past is not None:
            cache = expand_cache(past[0], len(live))
            mask = torch.cat([mask.new_ones((len(live), past[1])), mask], dim=1)
        # As `generate` numbers them: positions count real tokens only, padding sits at 0 (or, after
        # a prefix, at the prefix's last position: padding is never attended to, so never read).
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -input_ids.shape[1] :]
        output = model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        next_position = positions[:, -1:] + 1
        while True:
            tokens: list[int] = output.logits[:, -1].argmax(dim=-1).tolist()
            keep = []
            for slot, (row, token) in enumerate(zip(live, tokens, strict=True)):
                produced[row].append(token)
                if not stopper.finished(row, produced[row]):
                    keep.append(slot)
            if not keep:
                break
            cache = output.cache
            if len(keep) < len(live):
                selected = torch.tensor(keep, dtype=torch.long, device=mask.device)
                cache.batch_select_indices(selected)
                mask, next_position = mask[selected], next_position[selected]
                live = [live[slot] for slot in keep]
            step = torch.tensor([[produced[row][-1]] for row in live], dtype=torch.long, device=mask.device)
            mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
            output = model(
                input_ids=step, attention_mask=mask, position_ids=next_position, cache=cache, use_cache=True
            )
            next_position = next_position + 1
            stats.forward_passes += 1
            _count(stats, decode_tokens=len(live))
    return [_result(encoder, request, ids, eos) for request, ids in zip(requests, produced, strict=True)]


def _result(
    encoder: HFLMEncoder, request: GenerateRequest, produced: list[int], eos: set[int]
) -> GenerateResult:
    """The text of `produced` (EOS up to and including the first one counted, never shown), cut at
    the first stop string."""
    n = len(produced)
    for position, token in enumerate(produced):
        if token in eos:
            n = position + 1
            break
    kept = [t for t in produced[:n] if t not in eos]
    text = str(encoder.tokenizer.decode(kept, skip_special_tokens=True))
    cut = min((text.index(s) for s in request.stop if s and s in text), default=len(text))
    return GenerateResult(text=text[:cut], num_tokens=n)


class _RowStopper:
    """Whether a row is done: EOS, its own `max_tokens`, or one of its stop strings in the new text."""

    def __init__(self, encoder: HFLMEncoder, requests: list[GenerateRequest], eos: set[int]) -> None:
        self.tokenizer = encoder.tokenizer
        self.requests = requests
        self.eos = eos
        # A stop string of k characters spans at most k tokens (plus a partial one on each side).
        self.tails = [max((len(s) for s in r.stop), default=0) + 2 for r in requests]

    def finished(self, row: int, produced: list[int]) -> bool:
        request = self.requests[row]
        if produced[-1] in self.eos or len(produced) >= request.max_tokens:
            return True
        if not request.stop:
            return False
        tail = self.tokenizer.decode(produced[-self.tails[row] :], skip_special_tokens=True)
        return any(s and s in tail for s in request.stop)


def _generate_batch(
    model: PreTrainedModel,
    encoder: HFLMEncoder,
    prompts: list[list[int]],
    requests: list[GenerateRequest],
    *,
    stats: RequestBatchStats | None = None,
) -> list[GenerateResult]:
    """The same answers through `model.generate` (recurrent models, greedy-altering configs)."""
    from transformers import StoppingCriteriaList

    eos_ids = _eos_ids(model, encoder)
    pad_id = _pad_id(encoder, eos_ids)
    input_ids, attention_mask = _left_padded(model, prompts, pad_id)
    width = input_ids.shape[1]
    if stats is not None:
        stats.tokens_processed += sum(len(p) for p in prompts)
    stopper = _StopCriterion(encoder, width, requests)
    config = copy.deepcopy(model.generation_config)
    config.do_sample, config.num_beams = False, 1
    config.temperature = config.top_p = config.top_k = None
    config.max_new_tokens = max(r.max_tokens for r in requests)
    config.max_length = None
    config.pad_token_id, config.eos_token_id = pad_id, eos_ids or None
    output = model.generate(  # type: ignore[operator]
        input_ids=input_ids,
        attention_mask=attention_mask,
        generation_config=config,
        stopping_criteria=StoppingCriteriaList([stopper]),
    )
    eos = set(eos_ids)
    results = []
    for row, request in enumerate(requests):
        produced: list[int] = output[row, width:].tolist()
        n = min(len(produced), request.max_tokens, stopper.finished_at[row] or len(produced))
        results.append(_result(encoder, request, produced[:n], eos))
    return results


class _StopCriterion:
    """`model.generate`'s per-row 'done' flags, from `_RowStopper` (EOS is generate's own)."""

    def __init__(self, encoder: HFLMEncoder, prompt_width: int, requests: list[GenerateRequest]) -> None:
        self.prompt_width = prompt_width
        self.rows = _RowStopper(encoder, requests, set())
        self.finished_at: list[int | None] = [None] * len(requests)

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        import torch

        produced = input_ids.shape[1] - self.prompt_width
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for row in range(input_ids.shape[0]):
            if self.finished_at[row] is None and self.rows.finished(
                row, input_ids[row, self.prompt_width :].tolist()
            ):
                self.finished_at[row] = produced
            done[row] = self.finished_at[row] is not None
        return done
