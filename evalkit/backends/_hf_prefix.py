"""Serving requests whose prompts share prefixes, computing each shared prefix once.

The requests' token sequences go into a compressed trie (sorted sequences, longest common
prefixes between neighbours). A depth-first walk keeps one live cache: descending an edge is a
chunked prefill from the parent's state; going back to a node is a restore:

* full-attention layers (`DynamicLayer`) are cropped back to the node's length;
* sliding-window layers cannot be cropped once the window has filled (their evicted keys are
  gone), so the node's key/value tensors are kept by reference (updates build new tensors);
* recurrent layers (mamba conv and SSM states, updated in place) are cloned at branch points.

The last item below a node continues from its state in place, so a chain costs nothing extra.
A generate request decodes greedily at its node (the same stopping rules as `_hf_generate`); a
loglikelihood request reads log-softmax rows at its continuation positions, which are computed
(and only those, through `logits_to_keep`) while the edges holding them are prefilled.
Prompts are never truncated. The walk runs on the model's device: inputs are made there, the
cache and its checkpoints stay there, and only the read log-probabilities come back to the CPU.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalkit.backends._hf_tokens import HFLMEncoder
from evalkit.errors import DataError
from evalkit.requests import (
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RequestBatchStats,
)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

__all__ = [
    "DEFAULT_PREFILL_CHUNK",
    "SHARE_MIN_REQUESTS",
    "SHARE_MIN_TOKENS",
    "PrefixEngine",
    "PrefixGroup",
    "build_trie",
    "distinct_tokens",
    "expand_cache",
    "prefill_prefix",
    "shared_prefix_groups",
]

DEFAULT_PREFILL_CHUNK = 1024

# The plain path (`TransformersBackend.loglikelihood` / `generate`) computes a prefix once when at
# least this many requests of one call share at least this many leading tokens (gsm8k's 8-shot
# exemplars, ~800 tokens; an MMLU subject's instruction and 5 dev examples, ~400-700). Below that the
# extra forward and the cache copies cost about what they save.
SHARE_MIN_TOKENS = 128
SHARE_MIN_REQUESTS = 2

# Generation-config settings that change greedy choices; with any of them set, requests are
# generated from scratch (model.generate applies them) instead of decoded here.
_GREEDY_ALTERING = (
    "repetition_penalty",
    "encoder_repetition_penalty",
    "no_repeat_ngram_size",
    "bad_words_ids",
    "min_length",
    "min_new_tokens",
    "suppress_tokens",
    "begin_suppress_tokens",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "sequence_bias",
    "exponential_decay_length_penalty",
)
_NEUTRAL_VALUES: tuple[object, ...] = (None, 0, 1.0, [], ())


@dataclass
class TrieNode:
    """A node of the compressed trie: the edge is `tokens[start:depth]` of any sequence below it."""

    start: int
    depth: int
    tokens: tuple[int, ...]
    children: dict[int, TrieNode] = field(default_factory=dict)  # first edge token -> child
    ends: list[int] = field(default_factory=list)  # generate requests whose prompt ends here
    reads: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # position -> (request, target)


def build_trie(sequences: Sequence[Sequence[int]]) -> tuple[TrieNode, dict[tuple[int, ...], TrieNode]]:
    """The compressed trie of `sequences` and the node where each distinct sequence ends."""
    root = TrieNode(start=0, depth=0, tokens=())
    ending: dict[tuple[int, ...], TrieNode] = {}
    stack = [root]
    previous: tuple[int, ...] = ()
    for seq in sorted({tuple(s) for s in sequences}):
        lcp = _common_prefix(previous, seq)
        while stack[-1].depth > lcp:
            popped = stack.pop()
            parent = stack[-1]
            if parent.depth < lcp:  # split popped's edge at lcp
                middle = TrieNode(start=parent.depth, depth=lcp, tokens=popped.tokens)
                parent.children[popped.tokens[parent.depth]] = middle
                popped.start = lcp
                middle.children[popped.tokens[lcp]] = popped
                stack.append(middle)
        parent = stack[-1]
        if len(seq) == parent.depth:  # only the empty sequence at the root: sorted, distinct
            ending[seq] = parent
        else:
            node = TrieNode(start=parent.depth, depth=len(seq), tokens=seq)
            parent.children[seq[parent.depth]] = node
            stack.append(node)
            ending[seq] = node
        previous = seq
    return root, ending


def distinct_tokens(root: TrieNode) -> int:
    """Tokens on all edges: what a walk prefills, each shared prefix counted once."""
    total, pending = 0, [root]
    while pending:
        node = pending.pop()
        total += node.depth - node.start
        pending.extend(node.children.values())
    return total


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _path(root: TrieNode, seq: Sequence[int]) -> list[TrieNode]:
    """Nodes from the root's child down to the node where `seq` (in the trie) ends."""
    path, node = [], root
    while node.depth < len(seq):
        node = node.children[seq[node.depth]]
        path.append(node)
    return path


class _Live:
    """The walk's one cache and the logits at its last position (when they were needed)."""

    def __init__(self) -> None:
        self.cache: Any = None
        self.logits: torch.Tensor | None = None


class _Checkpoint:
    """What restoring the live cache to one node needs, taken as cheaply as each layer allows."""

    def __init__(self, live: _Live, stats: RequestBatchStats) -> None:
        from transformers.cache_utils import (
            DynamicLayer,
            DynamicSlidingWindowLayer,
            LinearAttentionCacheLayerMixin,
        )

        self.cache = live.cache
        self.logits = live.logits
        self.saved: list[dict[str, Any]] = []
        cloned = False
        for layer in self.cache.layers if self.cache is not None else []:
            saved: dict[str, Any] = {}
            if isinstance(layer, LinearAttentionCacheLayerMixin):
                saved["conv"] = {i: _clone(t) for i, t in layer.conv_states.items()}
                saved["recurrent"] = {i: _clone(t) for i, t in layer.recurrent_states.items()}
                saved["previous"] = dict(layer.has_previous_state)
                cloned = True
            if isinstance(layer, DynamicSlidingWindowLayer):
                saved["kv"] = (layer.keys, layer.values, layer.cumulative_length, layer.is_initialized)
            elif isinstance(layer, DynamicLayer):
                saved["length"] = _kv_length(layer)
            elif not isinstance(layer, LinearAttentionCacheLayerMixin):
                saved["layer"] = copy.deepcopy(layer)
                cloned = True
            self.saved.append(saved)
        if cloned:
            stats.extra["snapshots"] = stats.extra.get("snapshots", 0) + 1

    def restore(self, live: _Live, *, final: bool) -> None:
        """Put the live cache back; `final`: this checkpoint is not used again (no copy kept)."""
        from transformers.cache_utils import DynamicLayer

        live.cache, live.logits = self.cache, self.logits
        if self.cache is None:
            return
        for index, saved in enumerate(self.saved):
            layer = self.cache.layers[index]
            if "conv" in saved:
                _put_states(layer.conv_states, saved["conv"], final)
                _put_states(layer.recurrent_states, saved["recurrent"], final)
                layer.has_previous_state.update(saved["previous"])
            if "kv" in saved:
                layer.keys, layer.values, layer.cumulative_length, layer.is_initialized = saved["kv"]
            elif "length" in saved:
                extra = _kv_length(layer) - saved["length"]
                if extra > 0:
                    DynamicLayer.crop(layer, -extra)
            elif "layer" in saved:
                self.cache.layers[index] = saved["layer"] if final else copy.deepcopy(saved["layer"])


def _kv_length(layer: Any) -> int:
    """Tokens held by a full-attention layer (its keys' sequence axis)."""
    keys = layer.keys if layer.is_initialized else None
    return 0 if keys is None else int(keys.shape[-2])


def _clone(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.clone()


def _put_states(
    states: dict[int, torch.Tensor | None], saved: dict[int, torch.Tensor | None], final: bool
) -> None:
    for i, value in saved.items():
        current = states.get(i)
        if value is not None and not final and current is not None and current.shape == value.shape:
            current.copy_(value)  # in place: the layer updates these tensors in place too
        else:
            states[i] = value if (final or value is None) else value.clone()


@dataclass
class _Decode:
    """Generate requests at one node that decode identically (same stop strings and limit)."""

    requests: list[int]
    stop: tuple[str, ...]
    max_tokens: int


class PrefixEngine:
    """Runs request batches over one model with shared-prefix state reuse; see the module doc."""

    def __init__(
        self,
        model: PreTrainedModel,
        encoder: HFLMEncoder,
        family: str,
        prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
    ) -> None:
        self.model = model
        self.encoder = encoder
        self.family = family
        self.prefill_chunk = prefill_chunk
        self.stats = RequestBatchStats()
        self._totals: list[float] = []  # per loglikelihood request, during a call
        self._greedy: list[bool] = []

    # --- public entry points ------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        """Greedy generation for each request, in request order (prompts not truncated)."""
        import torch

        self._reset_stats()
        prompts = [self.encoder.encode_for_generation(r.context) for r in requests]
        for prompt, request in zip(prompts, requests, strict=True):
            if not prompt:
                raise DataError(f"generate: the context {request.context!r} encodes to no tokens")
        self.stats.extra["from_scratch_tokens"] = float(sum(len(p) for p in prompts))
        altering = _greedy_altering(self.model)
        if altering:
            return self._generate_from_scratch(requests, prompts, altering)
        root, ending = build_trie(prompts)
        groups: dict[tuple[int, tuple[str, ...], int], _Decode] = {}
        for index, (prompt, request) in enumerate(zip(prompts, requests, strict=True)):
            node = ending[tuple(prompt)]
            key = (id(node), tuple(request.stop), request.max_tokens)
            if key not in groups:
                groups[key] = _Decode([], tuple(request.stop), request.max_tokens)
                node.ends.append(len(groups) - 1)
            groups[key].requests.append(index)
        decodes = list(groups.values())
        results: list[GenerateResult | None] = [None] * len(requests)
        with torch.inference_mode():
            for decode, live in self._walk(root):
                result = self._decode(live, decodes[decode])
                for index in decodes[decode].requests:
                    results[index] = result
        return [r for r in results if r is not None]

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """log P(continuation | context) per request, tokenised as `HFLMEncoder.encode_pair`."""
        import torch

        self._reset_stats()
        pairs = [self.encoder.encode_pair(r.context, r.continuation) for r in requests]
        scored = [i for i, (_, continuation) in enumerate(pairs) if continuation]
        sequences = {i: pairs[i][0] + pairs[i][1][:-1] for i in scored}
        self.stats.extra["from_scratch_tokens"] = float(sum(len(s) for s in sequences.values()))
        root, _ = build_trie(list(sequences.values()))
        for index in scored:
            context, continuation = pairs[index]
            path = _path(root, sequences[index])
            for offset, target in enumerate(continuation):
                position = len(context) - 1 + offset
                node = next(n for n in path if n.start <= position < n.depth)
                node.reads.setdefault(position, []).append((index, target))
        self._totals = [0.0] * len(requests)
        self._greedy = [True] * len(requests)
        with torch.inference_mode():
            for _ in self._walk(root):
                pass
        return [
            LoglikelihoodResult(
                logprob=self._totals[i], is_greedy=self._greedy[i], num_tokens=len(pairs[i][1])
            )
            for i in range(len(requests))
        ]

    def prefill_only(self, sequences: Sequence[Sequence[int]]) -> None:
        """Walk the trie of `sequences` prefilling every edge once, reading and decoding nothing."""
        import torch

        self._reset_stats()
        self.stats.extra["from_scratch_tokens"] = float(sum(len(s) for s in sequences))
        root, _ = build_trie(sequences)
        with torch.inference_mode():
            for _ in self._walk(root):
                pass

    # --- the walk -----------------------------------------------------------------------------

    def _walk(self, root: TrieNode) -> Iterator[tuple[int, _Live]]:
        """Depth-first over the trie; yields (decode index, live state at its node) for each end."""
        live = _Live()
        # Tasks: ("node", node) visit; ("decode", index); ("restore", checkpoint, final).
        tasks: list[tuple[Any, ...]] = [("node", root)]
        while tasks:
            task = tasks.pop()
            if task[0] == "restore":
                task[1].restore(live, final=task[2])
                self.stats.extra["restores"] = self.stats.extra.get("restores", 0) + 1
            elif task[0] == "decode":
                yield task[1], live
            else:
                node: TrieNode = task[1]
                if node.depth > node.start:
                    self._prefill(live, node)
                items: list[tuple[Any, ...]] = [("decode", d) for d in node.ends]
                items += [("node", child) for child in node.children.values()]
                checkpoint = _Checkpoint(live, self.stats) if len(items) > 1 else None
                for position in range(len(items) - 1, -1, -1):
                    tasks.append(items[position])
                    if position > 0:
                        tasks.append(("restore", checkpoint, position == len(items) - 1))
        self.stats.extra["tokens_saved"] = self.stats.extra["from_scratch_tokens"] - self.stats.extra.get(
            "prefill_tokens", 0
        )

    def _prefill(self, live: _Live, node: TrieNode) -> None:
        """Advance the live cache along the node's edge in chunks, reading the positions needed."""
        import torch

        needed = set(node.reads)
        if node.ends:
            needed.add(node.depth - 1)
        live.logits = None
        device = self.model.device
        for start in range(node.start, node.depth, max(1, self.prefill_chunk)):
            end = min(start + max(1, self.prefill_chunk), node.depth)
            positions = sorted(p for p in needed if start <= p < end)
            keep: Any = torch.tensor([p - start for p in positions], device=device) if positions else 1
            logits = self._forward(live, node.tokens[start:end], keep)
            self.stats.extra["prefill_tokens"] = self.stats.extra.get("prefill_tokens", 0) + end - start
            if not positions:
                continue
            rows = logits[0].float()
            logprobs = torch.log_softmax(rows, dim=-1)
            best: list[int] = logprobs.argmax(dim=-1).tolist()
            reads = [
                (row, request, target)
                for row, position in enumerate(positions)
                for request, target in node.reads.get(position, [])
            ]
            if reads:  # one gather and one transfer, not one device sync per read
                at_rows = torch.tensor([row for row, _, _ in reads], device=device)
                at_targets = torch.tensor([target for _, _, target in reads], device=device)
                values: list[float] = logprobs[at_rows, at_targets].tolist()
                for (row, request, target), value in zip(reads, values, strict=True):
                    self._totals[request] += value
                    self._greedy[request] &= best[row] == target
            if positions[-1] == node.depth - 1:
                live.logits = rows[len(positions) - 1]

    def _forward(self, live: _Live, tokens: Sequence[int], keep: Any) -> torch.Tensor:
        import torch

        ids = torch.tensor([list(tokens)], device=self.model.device)
        output = self.model(input_ids=ids, cache=live.cache, use_cache=True, logits_to_keep=keep)
        live.cache = output.cache
        self.stats.forward_passes += 1
        self.stats.tokens_processed += len(tokens)
        logits: torch.Tensor = output.logits
        return logits

    def _decode(self, live: _Live, decode: _Decode) -> GenerateResult:
        """Greedy tokens from the live state until EOS, `max_tokens` or a stop string (as `_hf_generate`)."""
        from evalkit.backends._hf_generate import _eos_ids

        tokenizer = self.encoder.tokenizer
        eos_ids = set(_eos_ids(self.model, self.encoder))
        tail = max((len(s) for s in decode.stop), default=0) + 2
        produced: list[int] = []
        logits = live.logits
        while decode.max_tokens > 0:
            assert logits is not None
            token = int(logits.argmax())
            produced.append(token)
            if token in eos_ids or len(produced) >= decode.max_tokens:
                break
            if decode.stop:
                text = tokenizer.decode(produced[-tail:], skip_special_tokens=True)
                if any(s and s in text for s in decode.stop):
                    break
            logits = self._forward(live, [token], 1)[0, -1].float()
            self.stats.extra["decode_tokens"] = self.stats.extra.get("decode_tokens", 0) + 1
        kept = [t for t in produced if t not in eos_ids]
        text = str(tokenizer.decode(kept, skip_special_tokens=True))
        cut = min((text.index(s) for s in decode.stop if s and s in text), default=len(text))
        return GenerateResult(text=text[:cut], num_tokens=len(produced))

    def _generate_from_scratch(
        self, requests: Sequence[GenerateRequest], prompts: list[list[int]], altering: list[str]
    ) -> list[GenerateResult]:
        from evalkit.backends._hf_generate import greedy_generate

        self.stats.extra["from_scratch_fallback"] = 1.0
        longest = max((len(p) + r.max_tokens for p, r in zip(prompts, requests, strict=True)), default=1)
        return greedy_generate(
            self.model, self.encoder, requests, 1, longest + 1, pad_free=self.family != "transformer"
        )

    def _reset_stats(self) -> None:
        self.stats = RequestBatchStats()
        self._totals, self._greedy = [], []


def _greedy_altering(model: PreTrainedModel) -> list[str]:
    """Generation-config settings present that `model.generate` would apply to greedy choices."""
    config = getattr(model, "generation_config", None)
    found = []
    for name in _GREEDY_ALTERING:
        value = getattr(config, name, None)
        if not any(value is neutral or value == neutral for neutral in _NEUTRAL_VALUES):
            found.append(name)
    return found


# --- few-shot prefixes in the plain path ---------------------------------------------------------


@dataclass(frozen=True)
class PrefixGroup:
    """Requests (indices into the call's list) whose first `length` tokens are the same."""

    length: int
    members: list[int]


def shared_prefix_groups(
    sequences: Sequence[Sequence[int]],
    limits: Sequence[int],
    min_tokens: int = SHARE_MIN_TOKENS,
    min_requests: int = SHARE_MIN_REQUESTS,
) -> tuple[list[PrefixGroup], list[int]]:
    """Groups of sequences sharing a prefix of at least `min_tokens`, and the indices in no group.

    Sequences are sorted (so a shared prefix makes them neighbours, whatever order they came in,
    e.g. MMLU's interleaved subjects) and cut where two neighbours share fewer than `min_tokens`
    tokens; a group's prefix is the shortest link inside it. `limits[i]` caps how much of sequence i
    may be shared (a loglikelihood request must keep its last context token, whose logits it reads;
    a prompt its last token, whose logits start the decode). Runs of fewer than `min_requests`
    are left out.
    """
    order = sorted(range(len(sequences)), key=lambda i: tuple(sequences[i]))
    groups: list[PrefixGroup] = []
    rest: list[int] = []

    def close(run: list[int], length: int | None) -> None:
        if length is not None and len(run) >= max(2, min_requests):
            groups.append(PrefixGroup(length, sorted(run)))
        else:
            rest.extend(run)

    run: list[int] = []
    length: int | None = None
    for index in order:
        if run:
            previous = run[-1]
            link = min(_common_prefix(sequences[previous], sequences[index]), limits[previous], limits[index])
            if link >= max(1, min_tokens):
                run.append(index)
                length = link if length is None else min(length, link)
                continue
            close(run, length)
        run, length = [index], None
    if run:
        close(run, length)
    return groups, sorted(rest)


def prefill_prefix(model: PreTrainedModel, tokens: Sequence[int]) -> Any:
    """The model's cache after `tokens` (one row, logits of the last position only)."""
    import torch

    ids = torch.tensor([list(tokens)], dtype=torch.long, device=model.device)
    return model(input_ids=ids, use_cache=True, logits_to_keep=1).cache


def expand_cache(cache: Any, rows: int) -> Any | None:
    """A cache continuing `cache` (one row) in `rows` independent rows; the original is untouched.

    Only layers whose state can be shared exactly are handled: full-attention key/value layers
    (`DynamicLayer`, grown by concatenation, so an expanded view is never written to) and recurrent
    conv/SSM states (updated in place, so each batch gets its own copy). Anything else (sliding
    windows, which evict; quantized, static or offloaded caches) returns None: the caller computes
    without sharing.
    """
    from transformers.cache_utils import (
        DummyLayer,
        DynamicLayer,
        LinearAttentionAndFullAttentionLayer,
        LinearAttentionLayer,
    )

    if cache is None or getattr(cache, "offloading", False):
        return None
    shareable = (DynamicLayer, LinearAttentionLayer, LinearAttentionAndFullAttentionLayer, DummyLayer)
    expanded = copy.copy(cache)
    expanded.layers = []
    for layer in cache.layers:
        if type(layer) not in shareable:
            return None
        clone = copy.copy(layer)
        for name, value in vars(layer).items():
            if isinstance(value, dict):
                setattr(clone, name, dict(value))
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if (
            isinstance(layer, DynamicLayer)
            and layer.is_initialized
            and keys is not None
            and values is not None
        ):
            clone.keys = keys.expand(rows, *keys.shape[1:])
            clone.values = values.expand(rows, *values.shape[1:])
        if isinstance(layer, LinearAttentionLayer):
            for states in (clone.conv_states, clone.recurrent_states):
                for i, tensor in states.items():
                    if tensor is not None:
                        states[i] = tensor.repeat(rows, *([1] * (tensor.dim() - 1)))
        expanded.layers.append(clone)
    return expanded
