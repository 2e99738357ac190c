"""Greedy, batched generation with per-row stop strings and token limits.

Rows are left-padded so every row's next token sits in the last column. A stopping
criterion marks a row finished when its text contains a stop string or it reaches its own
`max_tokens`; `generate` stops as soon as every row is finished or has produced EOS.
Recurrent models carry padding into their state, so for them only rows of equal length
share a batch. Inputs are made on the model's device.
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

    prompts: list[list[int]] = []
    for request in requests:
        ids = encoder.encode_for_generation(request.context)
        room = max_length - request.max_tokens  # HFLM: max_ctx_len = max_length - max_gen_toks
        prompts.append(ids[-room:] if room > 0 else ids[-1:])
    order = sorted(range(len(requests)), key=lambda i: -len(prompts[i]))
    results: dict[int, GenerateResult] = {}
    with torch.inference_mode():
        for batch in _batches(order, prompts, max(1, batch_size), pad_free=pad_free):
            batch_results = _generate_batch(
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


def _generate_batch(
    model: PreTrainedModel,
    encoder: HFLMEncoder,
    prompts: list[list[int]],
    requests: list[GenerateRequest],
) -> list[GenerateResult]:
    import torch
    from transformers import StoppingCriteriaList

    tokenizer = encoder.tokenizer
    eos_ids = _eos_ids(model, encoder)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos_ids or [0])[0]
    width = max(len(p) for p in prompts)
    padding = [width - len(prompt) for prompt in prompts]
    input_ids = torch.tensor(
        [[int(pad_id)] * pad + prompt for pad, prompt in zip(padding, prompts, strict=True)],
        dtype=torch.long,
        device=model.device,
    )
    attention_mask = torch.tensor(
        [[0] * pad + [1] * len(prompt) for pad, prompt in zip(padding, prompts, strict=True)],
        dtype=torch.long,
        device=model.device,
    )
    stopper = _StopCriterion(encoder, width, requests)
    config = copy.deepcopy(model.generation_config)
    config.do_sample, config.num_beams = False, 1
    config.temperature = config.top_p = config.top_k = None
    config.max_new_tokens = max(r.max_tokens for r in requests)
    config.max_length = None
    config.pad_token_id, config.eos_token_id = int(pad_id), eos_ids or None
    output = model.generate(  # type: ignore[operator]
        input_ids=input_ids,
        attention_mask=attention_mask,
        generation_config=config,
        stopping_criteria=StoppingCriteriaList([stopper]),
    )
    results = []
    for row, request in enumerate(requests):
        produced: list[int] = output[row, width:].tolist()
        n = min(len(produced), request.max_tokens, stopper.finished_at[row] or len(produced))
        for position, token in enumerate(produced[:n]):
            if token in eos_ids:
                n = position + 1
                break
        kept = [t for t in produced[:n] if t not in eos_ids]
        text = str(tokenizer.decode(kept, skip_special_tokens=True))
        cut = min((text.index(s) for s in request.stop if s and s in text), default=len(text))
        results.append(GenerateResult(text=text[:cut], num_tokens=n))
    return results


class _StopCriterion:
    """Per-row 'done' flags: a stop string appeared in the new text, or max_tokens was reached."""

    def __init__(self, encoder: HFLMEncoder, prompt_width: int, requests: list[GenerateRequest]) -> None:
        self.tokenizer = encoder.tokenizer
        self.prompt_width = prompt_width
        self.requests = requests
        self.finished_at: list[int | None] = [None] * len(requests)
        longest = max((len(s) for r in requests for s in r.stop), default=0)
        # A stop string of k characters spans at most k tokens (plus a partial one on each side).
        self._tail_tokens = longest + 2

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        import torch

        produced = input_ids.shape[1] - self.prompt_width
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for row, request in enumerate(self.requests):
            if self.finished_at[row] is not None:
                done[row] = True
                continue
            hit = produced >= request.max_tokens
            if not hit and request.stop:
                start = max(self.prompt_width, input_ids.shape[1] - self._tail_tokens)
                tail = self.tokenizer.decode(input_ids[row, start:].tolist(), skip_special_tokens=True)
                hit = any(s and s in tail for s in request.stop)
            if hit:
                self.finished_at[row] = produced
                done[row] = True
        return done
