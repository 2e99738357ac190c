"""`TimingProbe` for the transformers backend: raw timed forward passes, no batching or caching.

Decode goes through `model.generate` with a logits processor that timestamps each step, so every
family (KV cache, Mamba state, hybrids) decodes the way transformers itself does it, and the
times are exactly one forward (+ greedy pick) per token. Prefill asks for the last position's
logits only (`logits_to_keep=1` where the model supports it): serving never computes a
2048 × vocab logit matrix, and that matmul would otherwise dominate a small model's prefill.

On CUDA the clock is the GPU's own: CUDA events recorded on the model's stream around the work,
read after a `torch.cuda.synchronize()`, so queued kernels are counted where they run and not where
Python launched them. Decode records one event per step (no synchronisation inside the loop: greedy
`generate` already waits for each token). On CPU (and MPS, which has no events API used here) the
clock is `time.perf_counter`, with a device synchronisation before each reading on MPS.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import time
from collections.abc import Sequence
from typing import Any

_KEEPS_LOGITS: dict[type, bool] = {}


def vocab_size(model: Any, tokenizer: Any) -> int:
    rows = int(model.get_input_embeddings().num_embeddings)
    return min(rows, len(tokenizer)) if len(tokenizer) else rows


def special_ids(tokenizer: Any) -> list[int]:
    return [int(i) for i in getattr(tokenizer, "all_special_ids", []) or []]


def prefill(model: Any, token_ids: Sequence[int]) -> float:
    import torch

    ids = torch.tensor([list(token_ids)], dtype=torch.long, device=model.device)
    extra = {"logits_to_keep": 1} if _keeps_logits(model) else {}
    clock = _Clock(model.device)
    with torch.inference_mode():
        clock.start()
        model(input_ids=ids, use_cache=False, **extra)
        clock.stamp()
    return clock.intervals()[0]


def decode(model: Any, tokenizer: Any, context_ids: Sequence[int], new_tokens: int) -> list[float]:
    """[time to first token, then one time per further token]: new_tokens + 1 forwards in all."""
    import torch
    from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

    clock = _Clock(model.device)

    class _Stamp(LogitsProcessor):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            clock.stamp()
            return scores

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = GenerationConfig(
        max_new_tokens=new_tokens + 1,
        min_new_tokens=new_tokens + 1,
        do_sample=False,
        pad_token_id=pad if pad is not None else 0,
        eos_token_id=tokenizer.eos_token_id,
    )
    ids = torch.tensor([list(context_ids)], dtype=torch.long, device=model.device)
    with torch.inference_mode():
        clock.start()
        model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            generation_config=config,
            logits_processor=LogitsProcessorList([_Stamp()]),
        )
    times = clock.intervals()
    if len(times) != new_tokens + 1:
        raise RuntimeError(f"generate made {len(times)} steps, expected {new_tokens + 1}")
    return times


def weight_bytes(model: Any) -> int:
    """Parameters and buffers as held in memory, tied tensors counted once."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        key = tensor.data_ptr()
        if key in seen:
            continue
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total


def flops_per_token(model: Any, family: str, context_length: int) -> float:
    """2 × matmul parameters (the input embedding is a lookup) + 4 × context × attention width per
    attention layer (QKᵀ and AV). An SSM's scan is linear in the state and counted in its params."""
    config = model.config
    params: int = sum(p.numel() for p in {p.data_ptr(): p for p in model.parameters()}.values())
    embedding, output = model.get_input_embeddings(), model.get_output_embeddings()
    if output is None or output.weight.data_ptr() != embedding.weight.data_ptr():
        params -= embedding.weight.numel()
    if family == "ssm":
        return 2.0 * params
    heads = int(getattr(config, "num_attention_heads", 0) or 0)
    head_dim = int(getattr(config, "head_dim", 0) or (config.hidden_size // heads if heads else 0))
    layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    block_types = getattr(config, "layers_block_type", None)
    if family == "hybrid" and isinstance(block_types, list | tuple):
        layers = sum(1 for kind in block_types if "attention" in str(kind))
    return 2.0 * params + 4.0 * layers * context_length * heads * head_dim


def prefill_flops(model: Any, family: str, length: int) -> float:
    """FLOPs of `prefill`: the output head runs on the last position only when logits_to_keep applies."""
    output = model.get_output_embeddings()
    head = 2.0 * output.weight.numel() if output is not None else 0.0
    body = flops_per_token(model, family, max(1, length // 2)) - head
    return length * body + (head if _keeps_logits(model) else length * head)


def state_bytes(model: Any, token_ids: Sequence[int]) -> int:
    """Bytes of every tensor in the cache object a forward over `token_ids` returns."""
    import torch

    ids = torch.tensor([list(token_ids)], dtype=torch.long, device=model.device)
    extra = {"logits_to_keep": 1} if _keeps_logits(model) else {}
    with torch.inference_mode():
        out = model(input_ids=ids, use_cache=True, **extra)
    cache = None
    for name in ("cache", "past_key_values", "cache_params"):
        cache = getattr(out, name, None) if cache is None else cache
    return _tensor_bytes(cache, set(), depth=0)


def _tensor_bytes(value: Any, seen: set[int], depth: int) -> int:
    import torch

    if value is None or depth > 6 or id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v, seen, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_tensor_bytes(v, seen, depth + 1) for v in value)
    if hasattr(value, "__dict__") and not isinstance(value, type | torch.nn.Module):
        return sum(_tensor_bytes(v, seen, depth + 1) for v in vars(value).values())
    return 0


def _keeps_logits(model: Any) -> bool:
    kind = type(model)
    if kind not in _KEEPS_LOGITS:
        _KEEPS_LOGITS[kind] = "logits_to_keep" in inspect.signature(model.forward).parameters
    return _KEEPS_LOGITS[kind]


class _Clock:
    """Stamps on the device's own clock: `start()`, then `stamp()` after each piece of work, then
    `intervals()` gives the seconds between consecutive stamps (the first from `start`)."""

    def __init__(self, device: Any) -> None:
        import torch

        self._device = device
        self._cuda = device.type == "cuda"
        self._events: list[Any] = []
        self._times: list[float] = []
        if self._cuda:
            self._new_event = functools.partial(torch.cuda.Event, enable_timing=True)
            # The stream the model's kernels are queued on (that of its device, not the current one).
            self._stream = torch.cuda.current_stream(device)

    def start(self) -> None:
        self._events, self._times = [], []
        self._synchronize()  # work queued before the measurement must not be counted in it
        self.stamp()

    def stamp(self) -> None:
        if self._cuda:
            event = self._new_event()
            event.record(self._stream)
            self._events.append(event)
        else:
            self._synchronize()
            self._times.append(time.perf_counter())

    def intervals(self) -> list[float]:
        if self._cuda:
            self._synchronize()
            return [a.elapsed_time(b) / 1000.0 for a, b in itertools.pairwise(self._events)]
        return [b - a for a, b in itertools.pairwise(self._times)]

    def _synchronize(self) -> None:
        import torch

        if self._cuda:
            torch.cuda.synchronize(self._device)
        elif self._device.type == "mps":
            torch.mps.synchronize()
