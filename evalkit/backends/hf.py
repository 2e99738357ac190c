"""The transformers backend: any causal LM transformers can load, scored like lm-eval's HFLM.

Specs it serves (see `evalkit.backends.spec`):

    hf:/models/my-model                      a local save_pretrained folder
    hf:HuggingFaceTB/SmolLM2-135M,revision=main
    hf:/models/dir,gguf_file=tiny.Q4_0.gguf  a GGUF inside a folder (or hub repo)
    gguf:/models/tiny.Q4_0.gguf              a GGUF file (dequantized, conversion cached)
    smollm2-135m,device=cuda                 on a GPU (`_hf_device`: auto, cpu, cuda, cuda:N, mps)

Tokenisation and truncation reproduce HFLM (`_hf_tokens`), so numbers match lm-eval on the
same model; the forward passes are organised differently for speed (`_hf_score`) and that
reorganisation is verified against a plain forward when the model loads. Weights load on the
CPU, then move to the resolved device; every tensor the backend builds is made there.
torch and transformers are imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field

from evalkit.backends._chat import ChatOptions, check_chat_options, conversation_dicts
from evalkit.backends._hf_adapter import check_adapter_option
from evalkit.backends._hf_device import device_kind, place_model, resolve_device
from evalkit.backends._hf_files import combined_fingerprint
from evalkit.backends._hf_quant import check_quantize_option
from evalkit.backends._hf_tokens import (
    HFLMEncoder,
    config_context_window,
    model_family,
    score_loglikelihood,
    score_rolling,
    scoring_window,
)
from evalkit.backends.base import ModelFacts
from evalkit.errors import SpecError
from evalkit.requests import (
    ChatMessage,
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RequestBatchStats,
    RollingRequest,
    RollingResult,
)

if TYPE_CHECKING:
    from evalkit.backends._hf_adapter import AdapterFolder
    from evalkit.backends._hf_load import LoadedModel
    from evalkit.backends._hf_prefix import PrefixEngine
    from evalkit.backends._hf_score import PairScorer
    from evalkit.backends.spec import ModelSpec

__all__ = ["HFTokenizer", "TransformersBackend", "TransformersOptions", "load_gguf_file", "load_transformers"]

log = logging.getLogger("evalkit.backends.hf")

# |Δ log p| a fast path may differ from a plain forward on the load-time probe (run in float32).
_PROBE_TOLERANCE = 1e-4


class TransformersOptions(ChatOptions):
    """KEY=VALUE options of `hf:` and `gguf:` specs (a typo fails with a suggestion)."""

    model_config = ConfigDict(extra="forbid")

    dtype: Literal["float32", "bfloat16"] = "float32"
    revision: str | None = None  # hub ids only: branch, tag or commit
    gguf_file: str | None = None  # a GGUF inside the TARGET folder or hub repo
    max_length: int | None = Field(default=None, gt=1)  # override the context window
    quantize: str | None = None  # int8-dynamic | int8 | int4, applied in memory (see `_hf_quant`)
    adapter: str | None = None  # a PEFT LoRA folder applied on load (see `_hf_adapter`)
    merge: bool = False  # fold the adapter into the weights
    # auto | cpu | cuda | cuda:N | mps (see `_hf_device`). Not in the fingerprint: where a model
    # runs does not change what it is; the record and the response cache key keep the kind.
    device: str = "auto"


class HFTokenizer:
    """The `Tokenizer` protocol over a transformers tokenizer: text tokens, no special tokens."""

    def __init__(self, tokenizer: object) -> None:
        self._tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False))  # type: ignore[attr-defined]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tokenizer.decode(list(ids)))  # type: ignore[attr-defined]

    def count(self, text: str) -> int:
        return len(self.encode(text))


def load_transformers(spec: ModelSpec, shown: str) -> TransformersBackend:
    """`hf:TARGET`: a local folder, a GGUF inside one (`gguf_file=`), or a hub id."""
    from evalkit.backends import _hf_load, parse_options

    options = parse_options(TransformersOptions, spec, shown)
    assert isinstance(options, TransformersOptions)
    check_chat_options(options, shown)
    check_quantize_option(options.quantize, options.dtype, shown)
    adapter = check_adapter_option(options.adapter, options.merge, options.quantize, shown)
    device = resolve_device(options.device, shown, quantize=options.quantize)
    target = Path(spec.target).expanduser()
    local = target.exists()
    if options.revision and local:
        raise SpecError(
            f"--model {shown!r}: revision= applies to hub ids, and {spec.target!r} is a local path"
        )
    if not local and not _hf_load.looks_like_hub_id(spec.target):
        raise SpecError(f"--model {shown!r}: {spec.target!r} is neither an existing path nor a hub id")
    if options.gguf_file:
        if local:
            gguf_path = target / options.gguf_file
        else:
            gguf_path = _hf_load.hub_file(spec.target, options.gguf_file, options.revision)
        loaded = _hf_load.load_gguf(gguf_path, options.dtype)
    elif local and target.is_file() and target.suffix == ".gguf":
        loaded = _hf_load.load_gguf(target, options.dtype)
    elif local:
        loaded = _hf_load.load_local_dir(target, options.dtype)
    else:
        loaded = _hf_load.load_hub(spec.target, options.revision, options.dtype)
    return TransformersBackend(shown, _quantized(loaded, options, shown, adapter), options, device=device)


def load_gguf_file(spec: ModelSpec, shown: str) -> TransformersBackend:
    """`gguf:FILE`: a GGUF file dequantized by transformers (conversion cached on disk)."""
    from evalkit.backends import _hf_load, parse_options

    options = parse_options(TransformersOptions, spec, shown)
    assert isinstance(options, TransformersOptions)
    check_chat_options(options, shown)
    if options.gguf_file or options.revision:
        raise SpecError(f"--model {shown!r}: gguf:FILE takes no gguf_file= or revision= option")
    check_quantize_option(options.quantize, options.dtype, shown)
    adapter = check_adapter_option(options.adapter, options.merge, options.quantize, shown)
    device = resolve_device(options.device, shown, quantize=options.quantize)
    loaded = _hf_load.load_gguf(Path(spec.target).expanduser(), options.dtype)
    return TransformersBackend(shown, _quantized(loaded, options, shown, adapter), options, device=device)


def _quantized(
    loaded: LoadedModel, options: TransformersOptions, shown: str, adapter: AdapterFolder | None = None
) -> LoadedModel:
    """Apply `adapter=` then `quantize=` (if asked) after loading, on the CPU: GGUF conversions stay
    cached as published."""
    if adapter is not None:
        from evalkit.backends._hf_adapter import apply_adapter

        apply_adapter(loaded, adapter, options.merge, shown)
    if options.quantize is not None:
        from evalkit.backends._hf_quant import apply_quantization

        apply_quantization(loaded, options.quantize, shown)
    return loaded


class TransformersBackend:
    """A loaded causal LM answering evalkit requests (see `evalkit.backends.base.Backend`)."""

    def __init__(
        self,
        name: str,
        loaded: LoadedModel,
        options: TransformersOptions | None = None,
        *,
        device: str | None = None,
    ) -> None:
        """`device`: a resolved torch device ('cpu', 'cuda:0'); None resolves `options.device` here."""
        import torch

        from evalkit.backends._hf_score import PairScorer, probe_tokens
        from evalkit.backends._hf_ssm import install_scan_patch, needs_scan_patch

        torch.set_num_threads(_usable_cpus())
        self.name = name
        self.options = options or TransformersOptions()
        self.device = device or resolve_device(self.options.device, name, quantize=self.options.quantize)
        place_model(loaded.model, self.device)
        self.loaded = loaded
        self.model = loaded.model
        self._hf_tokenizer = loaded.tokenizer
        if self.options.chat_template and not getattr(self._hf_tokenizer, "chat_template", None):
            raise SpecError(f"--model {name!r}: chat_template=true, but the tokenizer has no chat template")
        config = self.model.config
        self.family = model_family(config)
        self.context_window = config_context_window(config)
        self.max_length = scoring_window(config, self._hf_tokenizer, self.options.max_length, self.family)
        self.encoder = HFLMEncoder(self._hf_tokenizer)
        self._tokenizer = HFTokenizer(self._hf_tokenizer)
        # Mamba-1 style scans must continue from a cached state (chunked prefill, shared prefixes).
        self.scan_patch = install_scan_patch(self.model) if needs_scan_patch(config) else []
        self._prefix: PrefixEngine | None = None
        self._plain_stats = RequestBatchStats()
        self.scorer: PairScorer = PairScorer(self.model, self.max_length, self.family)
        self.scorer.calibrate(probe_tokens(self._hf_tokenizer), _PROBE_TOLERANCE)
        # int8-dynamic scales activations per forward, so rows sharing a forward change each
        # other's numbers: one row per forward keeps results independent of batching (`_hf_quant`).
        self._row_limit = None if loaded.batch_invariant else 1
        if self._row_limit is not None:
            self.scorer.packing = self.scorer.prefix_sharing = False
            self.scorer.path_notes.append("one row per forward: activation scales span the batch")
        log.info("%s: scoring path %s", name, self.scorer.path)

    @property
    def scoring_path(self) -> str:
        """How loglikelihoods are computed, e.g. 'packed+gathered-logits' (decided at load)."""
        return self.scorer.path

    @property
    def tokenizer(self) -> HFTokenizer:
        return self._tokenizer

    @property
    def hf_tokenizer(self) -> Any:
        """The transformers tokenizer itself (e.g. to build lm-eval's HFLM on the same model)."""
        return self._hf_tokenizer

    def describe(self) -> ModelFacts:
        loaded = self.loaded
        output_options = [f"dtype={self.options.dtype}", f"quantization={loaded.quantization}"]
        return ModelFacts(
            name=self.name,
            backend="transformers",
            source=loaded.source,
            architecture=type(self.model).__name__,
            family=self.family,
            parameters=loaded.parameters or sum(p.numel() for p in self.model.parameters()),
            dtype=self.options.dtype,
            quantization=loaded.quantization,
            bytes_on_disk=loaded.bytes_on_disk,
            fingerprint=combined_fingerprint([*loaded.identity, *output_options]),
            context_window=self.context_window,
            revision=loaded.revision,
            chat_template=self.options.chat_template,
            fewshot_multiturn=self.options.fewshot_multiturn,
            system_prompt=self.options.system_prompt,
            device=device_kind(self.device),
            adapter=loaded.adapter,
        )

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], batch_size: int = 16
    ) -> list[LoglikelihoodResult]:
        """HFLM's loglikelihoods; a few-shot prefix shared by requests is computed once (`_hf_score`)."""
        results = score_loglikelihood(
            self.encoder, requests, lambda pairs: self.scorer.score(pairs, self._rows(batch_size))
        )
        self._plain_stats = self.scorer.stats
        return results

    def loglikelihood_rolling(
        self, requests: Sequence[RollingRequest], batch_size: int = 16
    ) -> list[RollingResult]:
        """HFLM.loglikelihood_rolling: disjoint windows, each scored with maximal left context."""
        return score_rolling(
            self.encoder,
            requests,
            self.max_length,
            lambda pairs: self.scorer.score(pairs, self._rows(batch_size)),
        )

    def generate(self, requests: Sequence[GenerateRequest], batch_size: int = 16) -> list[GenerateResult]:
        """Batched greedy generation; a few-shot prefix shared by prompts is computed once."""
        from evalkit.backends._hf_generate import greedy_generate

        stats = RequestBatchStats()
        results = greedy_generate(
            self.model,
            self.encoder,
            requests,
            self._rows(batch_size),
            self.max_length,
            pad_free=self.family in ("ssm", "hybrid"),
            share_min_tokens=self.scorer.share_min_tokens if self.scorer.prefix_sharing else None,
            share_min_requests=self.scorer.share_min_requests,
            stats=stats,
        )
        self._plain_stats = stats
        return results

    @property
    def plain_stats(self) -> RequestBatchStats:
        """Work done by the last `loglikelihood` or `generate` call: forward_passes, tokens_processed
        (every token fed, each shared prefix once) and extra['shared_prefixes'] / ['prefix_tokens']."""
        return self._plain_stats

    # --- PromptTokens and PrefixReuse (evalkit.backends.capabilities), in _hf_prefix -------------

    def prompt_token_ids(self, context: str) -> list[int]:
        """The ids `generate` feeds for this context (BOS included), before any truncation."""
        return self.encoder.encode_for_generation(context)

    def prompt_limit(self) -> int | None:
        """None: `generate_shared` / `loglikelihood_shared` never truncate."""
        return None

    def tokenizer_identity(self) -> str:
        """'<tokenizer class>:<sha256[:16] of the serialized tokenizer, or of the sorted vocabulary>'."""
        import hashlib
        import json

        backend = getattr(self._hf_tokenizer, "backend_tokenizer", None)
        if backend is not None:
            payload = str(backend.to_str())
        else:
            payload = json.dumps(sorted(self._hf_tokenizer.get_vocab().items()), ensure_ascii=False)
        digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
        return f"{type(self._hf_tokenizer).__name__}:{digest}"

    @property
    def prefix_engine(self) -> PrefixEngine:
        """The shared-prefix engine (created on first use); set `prefill_chunk` on it to tune."""
        if self._prefix is None:
            from evalkit.backends._hf_prefix import PrefixEngine

            self._prefix = PrefixEngine(self.model, self.encoder, self.family)
        return self._prefix

    @property
    def prefix_stats(self) -> RequestBatchStats:
        """Work done by the last `generate_shared` / `loglikelihood_shared` call (see `_hf_prefix`)."""
        return self.prefix_engine.stats

    def generate_shared(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        """`generate` with each shared prompt prefix computed once; prompts are not truncated."""
        return self.prefix_engine.generate(requests)

    def loglikelihood_shared(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """`loglikelihood` with each shared prefix computed once; contexts are not truncated."""
        return self.prefix_engine.loglikelihood(requests)

    # --- TimingProbe (evalkit.backends.capabilities), implemented in _hf_timing --------------------

    @property
    def timing_device(self) -> str:
        """The torch device timed passes run on ('cpu', 'cuda:0'): the efficiency engine measures
        that device's memory and peaks (`evalkit.efficiency.DevicePlacement`)."""
        return self.device

    @property
    def vocab_size(self) -> int:
        from evalkit.backends import _hf_timing

        return _hf_timing.vocab_size(self.model, self._hf_tokenizer)

    @property
    def timing_special_ids(self) -> list[int]:
        """Special-token ids the efficiency task leaves out of its random prompts."""
        from evalkit.backends import _hf_timing

        return _hf_timing.special_ids(self._hf_tokenizer)

    def timing_prefill(self, token_ids: Sequence[int]) -> float:
        from evalkit.backends import _hf_timing

        return _hf_timing.prefill(self.model, token_ids)

    def timing_decode(self, context_ids: Sequence[int], new_tokens: int) -> list[float]:
        from evalkit.backends import _hf_timing

        return _hf_timing.decode(self.model, self._hf_tokenizer, context_ids, new_tokens)

    def timing_state_bytes(self, token_ids: Sequence[int]) -> int:
        from evalkit.backends import _hf_timing

        return _hf_timing.state_bytes(self.model, token_ids)

    def timing_prefill_flops(self, length: int) -> float:
        """FLOPs of one `timing_prefill` of `length` tokens (the head runs on the last position)."""
        from evalkit.backends import _hf_timing

        return _hf_timing.prefill_flops(self.model, self.family, length)

    def weight_bytes(self) -> int:
        from evalkit.backends import _hf_timing

        return _hf_timing.weight_bytes(self.model)

    def flops_per_token(self, context_length: int) -> float:
        from evalkit.backends import _hf_timing

        return _hf_timing.flops_per_token(self.model, self.family, context_length)

    def _rows(self, batch_size: int) -> int:
        return batch_size if self._row_limit is None else min(batch_size, self._row_limit)

    def apply_chat_template(self, conversation: str | Sequence[ChatMessage]) -> str:
        """The tokenizer's own `apply_chat_template`, called as lm-eval's HFLM calls it."""
        from jinja2.exceptions import TemplateError

        template = getattr(self._hf_tokenizer, "chat_template", None)
        if not template:
            raise SpecError(f"{self.name}: the tokenizer has no chat template")
        messages = conversation_dicts(conversation, self.options.system_prompt)
        try:
            rendered = self._hf_tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        except TemplateError as exc:  # e.g. a template that refuses a system turn
            shown = f"--model {self.name!r}"
            raise SpecError(f"{shown}: the chat template refuses this conversation: {exc}") from None
        return str(rendered)


def _usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask, which containers narrow), else cpu_count."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
