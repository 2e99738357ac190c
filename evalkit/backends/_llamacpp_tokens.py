"""llama.cpp's own tokenizer (read from the GGUF), presented the way the HFLM rules expect.

The transformers backend tokenises with `HFLMEncoder` (lm-eval's HFLM conventions). Rather than
re-implement those rules, this module gives llama.cpp's tokenizer the small slice of the
transformers tokenizer interface that `HFLMEncoder` uses, so both backends share one copy of the
rules. What differs is only where the vocabulary comes from: here llama.cpp's tokenizer, whose
"add special tokens" follows the GGUF's `tokenizer.ggml.add_bos_token` — the same flag transformers
reads when it converts the GGUF, so BOS is added exactly when HFLM's tokenizer would add it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalkit.errors import SpecError

__all__ = ["LlamaCppTokenizer", "LlamaTokenizerView", "render_chat_template"]


class LlamaTokenizerView:
    """The attributes of a transformers tokenizer that `HFLMEncoder` reads, over a `llama_cpp.Llama`
    or a `SyncLlama`.

    `special=True` when encoding: transformers parses special-token strings in text (a rendered
    chat template's `<|im_start|>` becomes one token), and so must we.
    """

    def __init__(self, llama: Any) -> None:
        self._llama = llama
        bos = int(llama.token_bos())
        eos = int(llama.token_eos())
        self.bos_token_id: int | None = bos if bos >= 0 else None
        self.eos_token_id: int | None = eos if eos >= 0 else None
        self.bos_token: str | None = self.decode([bos]) if self.bos_token_id is not None else None
        self.eos_token: str | None = self.decode([eos]) if self.eos_token_id is not None else None

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = self._llama.tokenize(text.encode("utf-8"), add_bos=add_special_tokens, special=True)
        return [int(i) for i in ids]

    def decode(self, ids: int | Sequence[int], skip_special_tokens: bool = False) -> str:
        """Like transformers, a single id is accepted too (`HFLMEncoder` decodes its prefix token)."""
        tokens = [ids] if isinstance(ids, int) else list(ids)
        data: bytes = self._llama.detokenize(tokens, special=not skip_special_tokens)
        return data.decode("utf-8", errors="replace")


class LlamaCppTokenizer:
    """The evalkit `Tokenizer` protocol: text tokens only, no BOS/EOS (like `HFTokenizer`)."""

    def __init__(self, view: LlamaTokenizerView) -> None:
        self._view = view

    def encode(self, text: str) -> list[int]:
        return self._view.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        return self._view.decode(ids)

    def count(self, text: str) -> int:
        return len(self.encode(text))


def render_chat_template(
    template: str, messages: list[dict[str, str]], view: LlamaTokenizerView, model: str
) -> str:
    """Render a GGUF's `tokenizer.chat_template` as transformers' `apply_chat_template` does.

    Same sandboxed jinja environment settings (trim_blocks, lstrip_blocks, `raise_exception`) and
    the same variables (messages, add_generation_prompt, bos/eos token strings), so a prompt
    rendered here tokenises to the same ids as the transformers backend's.
    """
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals["raise_exception"] = raise_exception
    compiled = environment.from_string(template)
    try:
        return compiled.render(
            messages=messages,
            add_generation_prompt=True,
            bos_token=view.bos_token or "",
            eos_token=view.eos_token or "",
        )
    except TemplateError as exc:  # e.g. a template that refuses a system turn
        raise SpecError(f"--model {model!r}: the chat template refuses this conversation: {exc}") from None
