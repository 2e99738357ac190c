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
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from evalkit.backends._hf_tokens import HFLMEncoder
from evalkit.requests import GenerateRequest, GenerateResult

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
) -> list[GenerateResult]:
    """One GenerateResult per request, in request order."""
    import torch

    from evalkit.backends._hf_prefix import _greedy_altering

    prompts: list[list[int]] = []
    for request in requests:
        ids = encoder.encode_for_generation(request.context)
        room = max_length - request.max_tokens  # HFLM: max_ctx_len = max_length - max_gen_toks
        prompts.append(ids[-room:] if room > 0 else ids[-1:])
    order = sorted(range(len(requests)), key=lambda i: -len(prompts[i]))
    # The hand-written loop applies no logits processors; recurrent states cannot skip padding.
    own_loop = not pad_free and not _greedy_altering(model)
    generate_batch = _decode_batch if own_loop else _generate_batch
    results: dict[int, GenerateResult] = {}
    with torch.inference_mode():
        for batch in _batches(order, prompts, max(1, batch_size), pad_free=pad_free):
            batch_results = generate_batch(
                model, encoder, [prompts[i] for i in batch], [requests[i] for i in batch]
            )
            results.update(zip(batch, batch_results, strict=True))
    return [results[i] for i in range(len(requests))]


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
) -> list[GenerateResult]:
    """Prefill the padded batch once, then decode one token per forward, dropping finished rows."""
    import torch

    eos_ids = _eos_ids(model, encoder)
    eos = set(eos_ids)
    produced: list[list[int]] = [[] for _ in requests]
    live = [row for row, request in enumerate(requests) if request.max_tokens > 0]
    if live:
        stopper = _RowStopper(encoder, requests, eos)
        input_ids, mask = _left_padded(model, [prompts[row] for row in live], _pad_id(encoder, eos_ids))
        # As `generate` numbers them: positions count real tokens only, padding sits at 0.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        output = model(
            input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1
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
) -> list[GenerateResult]:
    """The same answers through `model.generate` (recurrent models, greedy-altering configs)."""
    from transformers import StoppingCriteriaList

    eos_ids = _eos_ids(model, encoder)
    pad_id = _pad_id(encoder, eos_ids)
    input_ids, attention_mask = _left_padded(model, prompts, pad_id)
    width = input_ids.shape[1]
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
