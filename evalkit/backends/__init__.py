"""Backends: one protocol, several implementations, loaded lazily by name.

Public API:
    load_model(spec)      -> Backend
    parse_model_spec(str) -> ModelSpec
    list_aliases()        -> the built-in model aliases
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from evalkit.backends.base import Backend, ModelFacts, Tokenizer
from evalkit.backends.spec import ModelSpec, parse_model_spec
from evalkit.errors import SpecError, UnknownNameError, did_you_mean

if TYPE_CHECKING:
    from evalkit.backends.aliases import Alias

__all__ = [
    "Backend",
    "ModelFacts",
    "ModelSpec",
    "Tokenizer",
    "list_aliases",
    "load_model",
    "parse_model_spec",
    "resolve_alias",
]


def list_aliases() -> list[Alias]:
    from evalkit.backends.aliases import ALIASES

    return list(ALIASES.values())


def resolve_alias(spec: ModelSpec) -> ModelSpec:
    """Expand an alias into the concrete backend spec it stands for."""
    if spec.backend != "alias":
        return spec
    from evalkit.backends.aliases import ALIASES

    alias = ALIASES.get(spec.target)
    if alias is None:
        raise UnknownNameError("model", spec.target, [*ALIASES, "fake", "hf:<path>", "gguf:<file>"])
    return alias.resolve(spec)


def load_model(spec: str | ModelSpec) -> Backend:
    parsed = parse_model_spec(spec) if isinstance(spec, str) else spec
    concrete = resolve_alias(parsed)
    loader = _LOADERS[concrete.backend]
    return loader(concrete, parsed.text)


def parse_options(model_cls: type[BaseModel], spec: ModelSpec, shown: str) -> BaseModel:
    """Validate KEY=VALUE options against a backend's Options model (typos fail loudly)."""
    known = list(model_cls.model_fields)
    for key in spec.options:
        if key not in known:
            hint = did_you_mean(key, known)
            suggestion = f"; did you mean {hint}?" if hint else f"; known options: {', '.join(known)}"
            raise SpecError(f"--model {shown!r}: unknown option {key!r}{suggestion}")
    try:
        return model_cls.model_validate(spec.options)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpecError(f"--model {shown!r}: option {where}: {first['msg']}") from None


def _load_fake(spec: ModelSpec, shown: str) -> Backend:
    from evalkit.backends.fake import FakeBackend, FakeOptions

    options = parse_options(FakeOptions, spec, shown)
    assert isinstance(options, FakeOptions)
    return FakeBackend(name=shown, options=options)


def _load_transformers(spec: ModelSpec, shown: str) -> Backend:
    from evalkit.backends.hf import load_transformers

    return load_transformers(spec, shown)


def _load_gguf(spec: ModelSpec, shown: str) -> Backend:
    from evalkit.backends.hf import load_gguf_file

    return load_gguf_file(spec, shown)


def _load_llamacpp(spec: ModelSpec, shown: str) -> Backend:
    from evalkit.backends.llamacpp import load_llamacpp

    return load_llamacpp(spec, shown)


_LOADERS: dict[str, Callable[[ModelSpec, str], Backend]] = {
    "fake": _load_fake,
    "transformers": _load_transformers,
    "gguf": _load_gguf,
    "llamacpp": _load_llamacpp,
}
