"""Model spec strings: how a user names a model on the command line.

    SPEC    := [BACKEND ":"] TARGET ("," KEY "=" VALUE)*
    smollm2-135m                         a built-in alias
    smollm2-135m,dtype=bfloat16          an alias with a load option
    hf:HuggingFaceTB/SmolLM2-135M,revision=main
    hf:/models/my-model                  a local transformers directory
    gguf:/models/tiny.Q4_0.gguf          a GGUF file, dequantized by transformers
    llamacpp:smollm2-135m                a GGUF alias or file, run natively by llama.cpp
    fake,seed=3                          the deterministic fake backend

Commas separate options so a spec never needs shell quoting.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from evalkit.errors import SpecError

# Spellings of a registered backend's name; every registered backend name is its own prefix too.
PREFIX_SYNONYMS = {"hf": "transformers"}


def backend_for_prefix(prefix: str) -> str | None:
    """The registered backend a spec prefix names (`hf:` → transformers), or None."""
    from evalkit.registry import names_in

    name = PREFIX_SYNONYMS.get(prefix, prefix)
    return name if name in names_in("backends") else None


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str  # exactly what the user wrote
    backend: str  # resolved backend name; "alias" until aliases are expanded
    target: str  # alias name, path or hub id
    options: dict[str, str]

    @property
    def display_name(self) -> str:
        return self.text


def parse_model_spec(text: str) -> ModelSpec:
    raw = text.strip()
    if not raw:
        raise SpecError("--model: empty model spec")
    _check_printable(raw)
    head, *option_parts = raw.split(",")
    options: dict[str, str] = {}
    for part in option_parts:
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--model {raw!r}: option {part!r} is not KEY=VALUE")
        if key.strip() in options:
            raise SpecError(f"--model {raw!r}: option {key.strip()!r} given twice")
        options[key.strip()] = value.strip()
    prefix, sep, rest = head.partition(":")
    backend = backend_for_prefix(prefix) if sep and not _looks_like_windows_drive(prefix) else None
    if backend is not None:
        if not rest and prefix != "fake":
            raise SpecError(f"--model {raw!r}: nothing after {prefix + ':'!r}")
        return ModelSpec(text=raw, backend=backend, target=rest, options=options)
    if head == "fake":
        return ModelSpec(text=raw, backend="fake", target="", options=options)
    return ModelSpec(text=raw, backend="alias", target=head, options=options)


def _looks_like_windows_drive(prefix: str) -> bool:
    return len(prefix) == 1 and prefix.isalpha()


def _check_printable(raw: str) -> None:
    """A spec becomes the model's name in records, terminals and pages: it must be valid UTF-8
    (the shell passes other bytes as surrogates, which no file can store) and free of control
    characters (a newline or an ANSI escape would forge output lines or recolour a terminal)."""
    for index, char in enumerate(raw):
        if "\ud800" <= char <= "\udfff":
            raise SpecError(f"--model: the spec is not valid UTF-8 (undecodable byte at character {index})")
        if char < " " or "\x7f" <= char <= "\x9f":
            shown = raw.encode("unicode_escape").decode("ascii")
            raise SpecError(f"--model {shown!r}: control character {char!r} at position {index}")
