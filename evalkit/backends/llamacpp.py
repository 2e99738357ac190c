"""The native llama.cpp backend: a GGUF file run by llama.cpp with its own quantized kernels.

    llamacpp:smollm2-135m                 an alias that names a GGUF file (its `locate()`)
    llamacpp:/models/tiny.Q4_0.gguf       a GGUF file
    llamacpp:smollm2-135m,n_ctx=2048,n_threads=2,n_batch=512,chat_template=true

Why a second GGUF path: `gguf:` dequantizes the weights into float32 transformers modules, which
measures the model, not the deployment. Here llama.cpp computes with the quantized weights
themselves (and, on CPU, with activations quantized to 8 bits for the Q4 matmuls), which is what a
user of the file actually runs.

Tokenisation follows the transformers backend exactly (`HFLMEncoder` over llama.cpp's tokenizer,
see `_llamacpp_tokens`); on SmolLM2 the token ids equal `HFTokenizer`'s on every string tested in
`tests/test_backend_llamacpp.py`. The numbers differ only by arithmetic.
Two Python bindings of llama.cpp can run it: the compiled llama-cpp-python, or the prebuilt
llama-cpp-py-sync wheel through `_llamacpp_sync.SyncLlama`. `EVALKIT_LLAMACPP_BINDING=auto|python|sync`
chooses (auto, the default: llama-cpp-python when installed, else llama-cpp-py-sync). Records say which ran:
its distribution is in `libraries`, and its name and version are in the fingerprint, since the two
bundle different llama.cpp commits whose kernels round differently.
Measured on SmolLM2-135M-Instruct Q4_1, 60 ARC-Easy questions (240 requests), llama-cpp-python
0.3.36, 2 CPU threads (`benchmarks/bench_llamacpp_agreement.py --limit 60`):
    |Δ loglikelihood| per request:  max 0.95 nats, mean 0.198 nats (0.043 nats per token)
    argmax choice agreement:        59/60 questions (0.983); accuracy equal (0.517 both)
    wall time on those requests:    llama.cpp 11.0 s, transformers 5.5 s
Prompt scoring is prefill-bound, and on this CPU llama.cpp's quantized prefill (~290 tokens/s) is
slower than PyTorch's float32 GEMMs; greedy decoding is where llama.cpp is fast (~10 ms/token).
The real-tier test asserts these with margin for either binding (see benchmarks/README.md for the
llama-cpp-py-sync figures). A binding is imported only when a model loads.
Generation runs one prompt at a time, prompts ordered by their token ids, and each evaluates only
what follows the prefix it shares with the sequence left in the KV cache: gsm8k's ~750 tokens of
fixed exemplars are evaluated once per run, not once per question, with the same generated text
(`tests/test_backend_llamacpp.py`; figures in benchmarks/README.md, `bench_llamacpp_generate.py`).
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field

from evalkit.backends._chat import ChatOptions, check_chat_options, conversation_dicts
from evalkit.backends._hf_files import combined_fingerprint, gguf_quant_type, read_gguf_header, sha256_file
from evalkit.backends._hf_tokens import HFLMEncoder, score_loglikelihood, score_rolling
from evalkit.backends._llamacpp_engine import LlamaEngine
from evalkit.backends._llamacpp_tokens import LlamaCppTokenizer, LlamaTokenizerView, render_chat_template
from evalkit.backends.base import Family, ModelFacts
from evalkit.backends.spec import ModelSpec
from evalkit.errors import BackendUnavailableError, SpecError
from evalkit.paths import portable_locator
from evalkit.requests import (
    ChatMessage,
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingRequest,
    RollingResult,
)

__all__ = [
    "BINDING_ENV",
    "LLAMACPP_PIP",
    "LLAMACPP_SYNC_PIP",
    "LlamaBinding",
    "LlamaCppBackend",
    "LlamaCppOptions",
    "import_llama_cpp",
    "load_llamacpp",
]

log = logging.getLogger("evalkit.backends.llamacpp")

LLAMACPP_PIP = "pip install llama-cpp-python==0.3.36  (a source build: cmake + C++ compiler, ~15 min)"
LLAMACPP_SYNC_PIP = "pip install --no-deps llama-cpp-py-sync==0.11739 cffi pycparser  (prebuilt, seconds)"
BINDING_ENV = "EVALKIT_LLAMACPP_BINDING"
_BINDING_CHOICES = ("auto", "python", "sync")
# The default window: the model's trained context, capped so that the logits of every position
# (`logits_all`, n_ctx × vocab float32: 0.8 GB for SmolLM2's 49k vocabulary) stay affordable.
DEFAULT_CONTEXT_CAP = 4096
# Options that choose a precision or a quantization: llama.cpp can only run the file as stored.
_QUANTIZATION_OPTIONS = frozenset(
    {"quantize", "quantization", "dtype", "load_in_4bit", "load_in_8bit", "bits", "torch_dtype"}
)
_SSM_ARCHS = frozenset({"mamba", "mamba2", "rwkv6", "rwkv7", "rwkv6qwen2", "rwkv7qwen2"})
_HYBRID_ARCHS = frozenset({"jamba", "falcon-h1", "granitehybrid", "nemotron_h", "plamo2", "lfm2"})


class LlamaCppOptions(ChatOptions):
    """KEY=VALUE options of `llamacpp:` specs (a typo fails with a suggestion)."""

    model_config = ConfigDict(extra="forbid")

    n_ctx: int | None = Field(default=None, ge=16)  # default: trained context, capped at 4096
    n_threads: int | None = Field(default=None, ge=1)  # default: the CPUs this process may use
    n_batch: int = Field(default=512, ge=1)  # tokens per llama_decode call


def load_llamacpp(spec: ModelSpec, shown: str) -> LlamaCppBackend:
    """`llamacpp:ALIAS` or `llamacpp:FILE.gguf`, validated before llama_cpp is imported."""
    from evalkit.backends import parse_options

    for key in spec.options:
        if key in _QUANTIZATION_OPTIONS:
            raise SpecError(
                f"--model {shown!r}: {key}={spec.options[key]} is not possible with llama.cpp, which runs "
                "the GGUF file's own quantization; use a GGUF file quantized that way, or the "
                "transformers backend (gguf:FILE) for dtype or quantization options"
            )
    options = parse_options(LlamaCppOptions, spec, shown)
    assert isinstance(options, LlamaCppOptions)
    check_chat_options(options, shown)
    path = gguf_path(spec.target, shown)
    return LlamaCppBackend(shown, path, options, import_llama_cpp())


def gguf_path(target: str, shown: str) -> Path:
    """An alias's GGUF file (located without importing its package), or a path to a .gguf file."""
    from evalkit.backends import ALIASES, list_aliases

    if target in ALIASES:
        alias = ALIASES.get(target)
        if alias.backend != "gguf":
            raise SpecError(f"--model {shown!r}: alias {target!r} is not a GGUF model")
        return Path(alias.locate())
    path = Path(target).expanduser()
    if not path.is_file():
        gguf_aliases = sorted(a.name for a in list_aliases() if a.backend == "gguf")
        raise SpecError(
            f"--model {shown!r}: {target!r} is neither a GGUF alias ({', '.join(gguf_aliases)}) "
            "nor an existing file"
        )
    return path


@dataclass(frozen=True)
class LlamaBinding:
    """The Python binding of llama.cpp that runs a model, and the little that differs between them."""

    distribution: str  # "llama-cpp-python" or "llama-cpp-py-sync"
    version: str
    open: Callable[..., Any]  # llama_cpp.Llama's constructor (model_path=..., n_ctx=..., ...)
    n_params: Callable[[Any], int]
    is_eog: Callable[[Any, int], bool]  # end-of-generation token?

    @property
    def fingerprint_option(self) -> str:
        """'llama_cpp=0.3.36' for llama-cpp-python, as before the second binding existed (so stored
        records keep their fingerprints); 'llama_cpp_py_sync=0.11739' for the other."""
        key = "llama_cpp" if self.distribution == "llama-cpp-python" else "llama_cpp_py_sync"
        return f"{key}={self.version}"


def import_llama_cpp() -> LlamaBinding:
    """The binding `EVALKIT_LLAMACPP_BINDING` asks for (auto: llama-cpp-python when installed, else
    llama-cpp-py-sync), or a one-line error with the pip command (both are optional extras)."""
    choice = os.environ.get(BINDING_ENV, "auto").strip().lower() or "auto"
    if choice not in _BINDING_CHOICES:
        raise SpecError(f"{BINDING_ENV}={choice!r}: expected one of {', '.join(_BINDING_CHOICES)}")
    if choice in ("auto", "python"):
        try:
            return _python_binding(importlib.import_module("llama_cpp"))
        except ImportError:
            if choice == "python":
                raise BackendUnavailableError(
                    f"{BINDING_ENV}=python, but llama-cpp-python is not installed: {LLAMACPP_PIP}"
                ) from None
    try:
        return _sync_binding()
    except ImportError:
        if choice == "sync":
            message = f"{BINDING_ENV}=sync, but llama-cpp-py-sync is not installed: {LLAMACPP_SYNC_PIP}"
        else:
            message = f"the llamacpp backend needs {LLAMACPP_SYNC_PIP}, or {LLAMACPP_PIP}"
        raise BackendUnavailableError(message) from None
    except RuntimeError as exc:  # its native library does not load here
        raise BackendUnavailableError(
            f"llama-cpp-py-sync cannot load its prebuilt libllama.so ({_load_failure(str(exc))}); "
            f"use the compiled binding: {LLAMACPP_PIP}"
        ) from None


def _python_binding(llama_cpp: Any) -> LlamaBinding:
    def is_eog(llama: Any, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(llama._model.vocab, token))

    return LlamaBinding(
        distribution="llama-cpp-python",
        version=str(getattr(llama_cpp, "__version__", "?")),
        open=llama_cpp.Llama,
        n_params=lambda llama: int(llama._model.n_params()),
        is_eog=is_eog,
    )


def _sync_binding() -> LlamaBinding:
    from importlib import metadata

    from evalkit.backends._llamacpp_sync import SyncLlama, load_sync_library

    load_sync_library()  # fails here, before the model is opened, when the .so cannot load
    return LlamaBinding(
        distribution="llama-cpp-py-sync",
        version=metadata.version("llama-cpp-py-sync"),
        open=SyncLlama,
        n_params=lambda llama: llama.n_params(),
        is_eog=lambda llama, token: llama.is_eog(token),
    )


def _load_failure(message: str) -> str:
    """The cause in a few words: the wheel's libraries are built against glibc 2.38 (Ubuntu 24.04)
    although tagged manylinux2014, so on older systems the loader names the missing version."""
    missing = re.search(r"version `(GLIBC_[0-9.]+)' not found", message)
    if missing:
        return f"it needs {missing.group(1)}, this system has glibc {platform.libc_ver()[1] or '?'}"
    undefined = re.search(r"undefined symbol: (\w+)", message)
    if undefined and sys.modules.get("llama_cpp") is not None:
        # llama-cpp-python's older libggml, loaded first, answers the wheel's ggml symbols
        return f"undefined symbol {undefined.group(1)}: llama-cpp-python is already loaded in this process"
    if undefined:
        return f"undefined symbol {undefined.group(1)}"
    return message.splitlines()[0][:200] if message else "unknown error"


class LlamaCppBackend:
    """A GGUF model run by llama.cpp, answering evalkit requests; also a `TimingProbe`."""

    def __init__(self, name: str, path: Path, options: LlamaCppOptions, binding: LlamaBinding) -> None:
        from evalkit.backends.hf import _usable_cpus

        self.name = name
        self.path = path
        self.options = options
        self.binding = binding
        threads = options.n_threads or _usable_cpus()
        self.context_window: int | None = _trained_context(path)
        n_ctx = options.n_ctx or min(self.context_window or DEFAULT_CONTEXT_CAP, DEFAULT_CONTEXT_CAP)
        self.llama = binding.open(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=min(options.n_batch, n_ctx),
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=True,
            verbose=False,
        )
        self.metadata: dict[str, str] = dict(self.llama.metadata)
        self.architecture = self.metadata.get("general.architecture", "unknown")
        self.family = _family(self.architecture)
        sliding = f"{self.architecture}.attention.sliding_window" in self.metadata
        self.engine = LlamaEngine(self.llama, rewindable=self.family == "transformer" and not sliding)
        self.max_length = self.engine.n_ctx
        self._view = LlamaTokenizerView(self.llama)
        self.encoder = HFLMEncoder(self._view)  # type: ignore[arg-type]  # duck-typed tokenizer
        self._tokenizer = LlamaCppTokenizer(self._view)
        n_vocab = int(self.llama.n_vocab())
        end_ids = frozenset(t for t in range(n_vocab) if binding.is_eog(self.llama, t))
        self._end_ids = end_ids or frozenset(t for t in (self._view.eos_token_id,) if t is not None)
        self._template = self.metadata.get("tokenizer.chat_template")
        if options.chat_template and not self._template:
            raise SpecError(f"--model {name!r}: chat_template=true, but the GGUF has no chat template")
        shown_binding = f"{binding.distribution} {binding.version}"
        log.info("%s: llama.cpp via %s, n_ctx %d, %d threads", name, shown_binding, n_ctx, threads)

    @property
    def tokenizer(self) -> LlamaCppTokenizer:
        return self._tokenizer

    def describe(self) -> ModelFacts:
        quant = gguf_quant_type(self.path) or "unknown"
        output_options = [
            "backend=llamacpp",
            self.binding.fingerprint_option,  # kernels change between releases and bindings
            f"n_ctx={self.max_length}",  # the truncation and rolling window
            f"n_batch={self.options.n_batch}",  # how positions are grouped into matmuls
            f"chat_template={self.options.chat_template}",
        ]
        return ModelFacts(
            name=self.name,
            backend="llamacpp",
            source=portable_locator(self.path, sha256=sha256_file(self.path)),  # no machine path
            architecture=self.architecture,
            family=self.family,
            parameters=self.binding.n_params(self.llama),
            dtype="gguf",
            quantization=f"gguf:{quant} (native llama.cpp)",
            bytes_on_disk=self.path.stat().st_size,
            fingerprint=combined_fingerprint([f"sha256={sha256_file(self.path)}", *output_options]),
            context_window=self.context_window,
            chat_template=self.options.chat_template,
            fewshot_multiturn=self.options.fewshot_multiturn,
            system_prompt=self.options.system_prompt,
        )

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], batch_size: int = 16
    ) -> list[LoglikelihoodResult]:
        """HFLM's pairs, scored from prompt logits; `batch_size` is unused (one sequence at a time)."""
        return score_loglikelihood(self.encoder, requests, self.engine.score)

    def loglikelihood_rolling(
        self, requests: Sequence[RollingRequest], batch_size: int = 16
    ) -> list[RollingResult]:
        """HFLM.loglikelihood_rolling with windows of n_ctx tokens."""
        return score_rolling(self.encoder, requests, self.max_length, self.engine.score)

    def generate(self, requests: Sequence[GenerateRequest], batch_size: int = 16) -> list[GenerateResult]:
        """Greedy decoding, one prompt at a time (`batch_size` is unused); the text is cut at the
        first stop string, end-of-generation tokens dropped.

        Prompts run in the order of their token ids, so prompts that share a prefix follow each
        other and each evaluates only what follows the prefix already in the KV cache (the
        engine's `tokens_evaluated`); the results come back in the order of `requests`.
        """
        prompts = [self._generation_prompt(request) for request in requests]
        results: dict[int, GenerateResult] = {}
        for index in sorted(range(len(requests)), key=lambda i: prompts[i]):
            results[index] = self._generate_one(prompts[index], requests[index])
        return [results[index] for index in range(len(requests))]

    def _generation_prompt(self, request: GenerateRequest) -> list[int]:
        """The prompt's ids (BOS included), its last max_length - max_tokens (HFLM's truncation)."""
        ids = self.encoder.encode_for_generation(request.context)
        room = self.max_length - request.max_tokens
        return ids[-room:] if room > 0 else ids[-1:]

    def _generate_one(self, prompt: list[int], request: GenerateRequest) -> GenerateResult:
        stops = [s for s in request.stop if s]

        def is_done(produced: list[int]) -> bool:
            return bool(stops) and any(s in self._decode_text(produced) for s in stops)

        produced = self.engine.greedy_tokens(prompt, request.max_tokens, is_done, self._end_ids)
        text = self._decode_text(produced)
        cut = min((text.index(s) for s in stops if s in text), default=len(text))
        return GenerateResult(text=text[:cut], num_tokens=len(produced))

    # --- PromptTokens (evalkit.backends.capabilities) ---------------------------------------------

    def prompt_token_ids(self, context: str) -> list[int]:
        """The ids `generate` feeds for this context (BOS included), before truncation to n_ctx."""
        return self.encoder.encode_for_generation(context)

    def tokenizer_identity(self) -> str:
        """'llama.cpp:<sha256[:16] of the GGUF's token list>'."""
        import hashlib

        digest = hashlib.sha256()
        for token in range(self.vocab_size):
            digest.update(self.llama.detokenize([token], special=True) + b"\0")
        return "llama.cpp:" + digest.hexdigest()[:16]

    def prompt_limit(self) -> int | None:
        """n_ctx: `generate` keeps the last n_ctx - max_tokens prompt tokens, like lm-eval's HFLM."""
        return int(self.max_length)

    def _decode_text(self, ids: list[int]) -> str:
        return self._view.decode([t for t in ids if t not in self._end_ids], skip_special_tokens=True)

    def apply_chat_template(self, conversation: str | Sequence[ChatMessage]) -> str:
        if not self._template:
            raise SpecError(f"{self.name}: the GGUF has no tokenizer.chat_template")
        messages = conversation_dicts(conversation, self.options.system_prompt)
        return render_chat_template(self._template, messages, self._view, self.name)

    # --- TimingProbe (evalkit.backends.capabilities) ---------------------------------------

    @property
    def vocab_size(self) -> int:
        return int(self.llama.n_vocab())

    def timing_prefill(self, token_ids: Sequence[int]) -> float:
        return self.engine.time_prefill(token_ids)

    def timing_decode(self, context_ids: Sequence[int], new_tokens: int) -> list[float]:
        return self.engine.time_decode(context_ids, new_tokens)

    def weight_bytes(self) -> int:
        """The GGUF file's size: llama.cpp maps the quantized tensors as stored and reads them all."""
        return self.path.stat().st_size

    def flops_per_token(self, context_length: int) -> float:
        """2·params for the matmuls plus 2·2·layers·context·embedding for attention scores and values."""
        params = float(self.binding.n_params(self.llama))
        layers = int(self.metadata.get(f"{self.architecture}.block_count", "0") or 0)
        return 2.0 * params + 4.0 * layers * context_length * int(self.llama.n_embd())


def _family(architecture: str) -> Family:
    if architecture in _SSM_ARCHS:
        return "ssm"
    if architecture in _HYBRID_ARCHS:
        return "hybrid"
    return "transformer" if architecture != "unknown" else "unknown"


def _trained_context(path: Path) -> int | None:
    """`<arch>.context_length` from the GGUF header (read directly: no second model load)."""
    arch = read_gguf_header(path, ["general.architecture"]).get("general.architecture")
    value = read_gguf_header(path, [f"{arch}.context_length"]).get(f"{arch}.context_length")
    return int(value) if isinstance(value, int) else None
