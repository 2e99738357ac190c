"""The chat options every backend shares, and the conversation its chat template renders.

`chat_template=true` renders prompts with the model's own template; `fewshot_multiturn=true` gives
few-shot examples as user/assistant turns (lm-eval's `--fewshot_as_multiturn`); `system_prompt=TEXT`
opens every conversation with a system turn (lm-eval's `--system_instruction`). The last two only
mean something with a chat template, so they are refused without one. All three change the prompt
text, hence the request keys and cached responses, and are recorded in the model facts.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from evalkit.errors import SpecError
from evalkit.requests import ChatMessage

__all__ = ["ChatOptions", "check_chat_options", "conversation_dicts"]


class ChatOptions(BaseModel):
    """The chat-related KEY=VALUE options, shared by every backend's options model."""

    chat_template: bool = False  # render prompts with the model's chat template
    fewshot_multiturn: bool = False  # few-shot examples as user/assistant turns (needs chat_template)
    system_prompt: str | None = Field(default=None, min_length=1)  # a system turn first (needs chat_template)


def check_chat_options(options: ChatOptions, shown: str) -> None:
    """Refuse the options that only mean something with a chat template when there is none."""
    if options.chat_template:
        return
    for name in ("fewshot_multiturn", "system_prompt"):
        if getattr(options, name):
            raise SpecError(f"--model {shown!r}: option {name} needs chat_template=true")


def conversation_dicts(
    conversation: str | Sequence[ChatMessage], system_prompt: str | None
) -> list[dict[str, str]]:
    """The messages a template renders: a string is one user turn, after the model's system prompt
    (if it has one); a list of messages is taken as it is (its builder placed the system turn)."""
    if isinstance(conversation, str):
        messages = [ChatMessage("user", conversation)]
        if system_prompt is not None:
            messages.insert(0, ChatMessage("system", system_prompt))
    else:
        messages = list(conversation)
    return [{"role": m.role, "content": m.content} for m in messages]
