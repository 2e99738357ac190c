"""llama.cpp through the prebuilt `llama-cpp-py-sync` wheel, as the slice of `llama_cpp.Llama` evalkit uses.

llama-cpp-python (`llama_cpp`) is source-only on PyPI: installing it compiles llama.cpp (5-15 minutes
on 2 cores). `llama-cpp-py-sync` ships a prebuilt `libllama.so` with CFFI (ABI mode) declarations of
llama.cpp's C API. Its own high-level `Llama` asks for the last position's logits only, and the
scorer needs every position's, so `SyncLlama` is written on the C API and copies llama-cpp-python's
behaviour wherever it decides a number or a token:

- `eval` drops the cache beyond `n_tokens` (`llama_memory_seq_rm`), decodes in `n_batch` chunks
  with logits requested for every position, and copies them into `scores[n_past:]`;
- context parameters: flash attention off and `n_ubatch = min(n_batch, 512)`, as llama-cpp-python
  sets them (llama.cpp's own default is flash attention "auto", which changes the arithmetic);
- `tokenize`/`detokenize` call the same C functions with the same flags, including the dropped
  leading space after BOS.
The engine (`_llamacpp_engine`) and tokenizer view (`_llamacpp_tokens`) use it unchanged.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["SyncLlama", "load_sync_library"]

# llama-cpp-python's defaults for what evalkit does not set (Llama.__init__, 0.3.36).
_UBATCH_CAP = 512
_FLASH_ATTENTION_DISABLED = 0
_GGML_LOG_LEVEL_ERROR = 4
_init_lock = threading.Lock()
_state: dict[str, Any] = {}  # the (ffi, lib) pair and the log callback, kept alive for the process


def load_sync_library() -> tuple[Any, Any]:
    """(ffi, lib) of llama-cpp-py-sync, its backend initialised once and its logging quietened.

    Raises ImportError when the package (or cffi) is missing, RuntimeError when its native library
    cannot be loaded (the message names the missing symbol version, e.g. GLIBC_2.38).
    """
    with _init_lock:
        if "lib" not in _state:
            from llama_cpp_py_sync import _cffi_bindings

            ffi, lib = _cffi_bindings.ffi, _cffi_bindings.get_lib()

            # verbose=False in llama-cpp-python silences llama.cpp's load chatter; errors still show.
            def log_errors(level: int, text: Any, _user: Any) -> None:
                if level == _GGML_LOG_LEVEL_ERROR:
                    message = ffi.string(text).decode("utf-8", "replace").rstrip()
                    logging.getLogger("evalkit.backends.llamacpp").error("llama.cpp: %s", message)

            _log = ffi.callback("void(enum ggml_log_level, const char *, void *)", log_errors)
            lib.llama_log_set(_log, ffi.NULL)
            lib.llama_backend_init()
            _state.update(ffi=ffi, lib=lib, log=_log)
        return _state["ffi"], _state["lib"]


class SyncLlama:
    """One model and one single-sequence context; the `llama_cpp.Llama` members evalkit reads."""

    def __init__(
        self,
        model_path: str,
        *,
        n_ctx: int,
        n_batch: int,
        n_threads: int,
        n_threads_batch: int,
        logits_all: bool = True,
        verbose: bool = False,
    ) -> None:
        if not logits_all:
            raise ValueError("SyncLlama always keeps every position's logits (logits_all=True)")
        del verbose  # logging is set once per process in load_sync_library
        self._ffi, self._lib = ffi, lib = load_sync_library()
        model_params = lib.llama_model_default_params()
        model_params.n_gpu_layers = 0  # the CPU build; evalkit's llama.cpp runs are CPU runs
        self._model = lib.llama_model_load_from_file(model_path.encode(), model_params)
        if self._model == ffi.NULL:
            raise ValueError(f"Failed to load model from file: {model_path}")
        n_batch = min(n_batch, n_ctx)
        params = lib.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = min(n_batch, _UBATCH_CAP)
        params.n_threads = n_threads
        params.n_threads_batch = n_threads_batch
        params.flash_attn_type = _FLASH_ATTENTION_DISABLED
        self._ctx = lib.llama_init_from_model(self._model, params)
        if self._ctx == ffi.NULL:
            lib.llama_model_free(self._model)
            raise ValueError(f"Failed to create a llama.cpp context for {model_path}")
        self._vocab = lib.llama_model_get_vocab(self._model)
        self._memory = lib.llama_get_memory(self._ctx)
        self.n_batch = n_batch
        self._batch = lib.llama_batch_init(n_batch, 0, 1)
        for i in range(n_batch):  # one sequence (id 0) throughout: set once, not per chunk
            self._batch.n_seq_id[i] = 1
            self._batch.seq_id[i][0] = 0
        # The native objects are freed with this object (or at exit), in dependency order.
        self._finalizer = weakref.finalize(self, _free, lib, self._batch, self._ctx, self._model)
        n_ctx_actual, n_vocab = int(lib.llama_n_ctx(self._ctx)), self.n_vocab()
        self.input_ids: np.ndarray = np.zeros(n_ctx_actual, dtype=np.intc)
        self.scores: np.ndarray = np.zeros((n_ctx_actual, n_vocab), dtype=np.single)
        self.n_tokens = 0
        self.metadata: dict[str, str] = self._read_metadata()

    def close(self) -> None:
        self._finalizer()

    # --- sizes and special tokens -------------------------------------------------------------

    def n_ctx(self) -> int:
        return int(self._lib.llama_n_ctx(self._ctx))

    def n_vocab(self) -> int:
        return int(self._lib.llama_vocab_n_tokens(self._vocab))

    def n_embd(self) -> int:
        return int(self._lib.llama_model_n_embd(self._model))

    def n_params(self) -> int:
        return int(self._lib.llama_model_n_params(self._model))

    def token_bos(self) -> int:
        return int(self._lib.llama_vocab_bos(self._vocab))

    def token_eos(self) -> int:
        return int(self._lib.llama_vocab_eos(self._vocab))

    def is_eog(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    # --- evaluation -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the evaluated sequence. Clearing the memory (not only `n_tokens = 0`) also resets
        recurrent state, which `llama_memory_seq_rm` cannot rewind partially."""
        self.n_tokens = 0
        self._lib.llama_memory_clear(self._memory, True)

    def eval(self, tokens: Sequence[int]) -> None:
        """Append `tokens` after position `n_tokens`, keeping every position's logits in `scores`."""
        ffi, lib, batch = self._ffi, self._lib, self._batch
        # Refused only for a partial removal from recurrent state; the engine never asks for one, and
        # going on would score against stale cache entries.
        if not lib.llama_memory_seq_rm(self._memory, -1, self.n_tokens, -1):
            raise RuntimeError(f"llama.cpp cannot rewind this model's memory to {self.n_tokens} tokens")
        n_vocab = self.scores.shape[1]
        for start in range(0, len(tokens), self.n_batch):
            chunk = np.asarray(tokens[start : start + self.n_batch], dtype=np.int32)
            n, n_past = len(chunk), self.n_tokens
            if n_past + n > len(self.input_ids):
                raise ValueError(f"{n_past + n} tokens exceed the context of {len(self.input_ids)}")
            batch.n_tokens = n
            # numpy views of the batch arrays: one copy per chunk, not n cffi item assignments
            np.frombuffer(ffi.buffer(batch.token, 4 * n), dtype=np.int32)[:] = chunk
            np.frombuffer(ffi.buffer(batch.pos, 4 * n), dtype=np.int32)[:] = np.arange(n_past, n_past + n)
            np.frombuffer(ffi.buffer(batch.logits, n), dtype=np.int8)[:] = 1
            status = lib.llama_decode(self._ctx, batch)
            if status != 0:
                raise RuntimeError(f"llama_decode returned {status}")
            logits = np.frombuffer(ffi.buffer(lib.llama_get_logits(self._ctx), 4 * n * n_vocab), np.single)
            self.scores[n_past : n_past + n] = logits.reshape(n, n_vocab)
            self.input_ids[n_past : n_past + n] = chunk
            self.n_tokens += n

    # --- text -----------------------------------------------------------------------------------

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        capacity = len(text) + 2  # a token covers at least one byte, plus BOS and EOS
        buffer = self._ffi.new("llama_token[]", capacity)
        n = self._lib.llama_tokenize(self._vocab, text, len(text), buffer, capacity, add_bos, special)
        if n < 0:  # too small: -n is the size needed
            buffer = self._ffi.new("llama_token[]", -n)
            n = self._lib.llama_tokenize(self._vocab, text, len(text), buffer, -n, add_bos, special)
            if n < 0:
                raise RuntimeError(f"llama_tokenize failed on {text!r}")
        return list(buffer[0:n])

    def detokenize(self, tokens: Sequence[int], special: bool = False) -> bytes:
        """Piece by piece like llama-cpp-python, which drops the space some vocabularies put after BOS."""
        pieces = [self._piece(int(token), special) for token in tokens]
        output = b"".join(pieces)
        if tokens and int(tokens[0]) == self.token_bos() and output[:1] == b" ":
            return output[1:]
        return output

    def _piece(self, token: int, special: bool) -> bytes:
        size = 32
        while True:
            buffer = self._ffi.new("char[]", size)
            n = self._lib.llama_token_to_piece(self._vocab, token, buffer, size, 0, special)
            if n >= 0:
                return bytes(self._ffi.buffer(buffer, n))
            size = -n

    def _read_metadata(self) -> dict[str, str]:
        """GGUF key/value pairs as llama.cpp renders them (`llama_model_meta_*_by_index`)."""
        ffi, lib, model = self._ffi, self._lib, self._model
        result: dict[str, str] = {}
        for index in range(int(lib.llama_model_meta_count(model))):
            texts = []
            for read in (lib.llama_model_meta_key_by_index, lib.llama_model_meta_val_str_by_index):
                size = int(read(model, index, ffi.NULL, 0))  # snprintf-style: the length needed
                buffer = ffi.new("char[]", size + 1)
                read(model, index, buffer, size + 1)
                texts.append(ffi.string(buffer).decode("utf-8", "replace"))
            result[texts[0]] = texts[1]
        return result


def _free(lib: Any, batch: Any, ctx: Any, model: Any) -> None:
    lib.llama_batch_free(batch)
    lib.llama_free(ctx)
    lib.llama_model_free(model)
