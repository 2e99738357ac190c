"""Backends: one protocol, several implementations, loaded lazily by name.

Public API:
    load_model(spec)      -> Backend
    parse_model_spec(str) -> ModelSpec
    list_aliases()        -> the registered model aliases
    BACKENDS              the backend loaders (entry-point group evalkit.backends): name -> loader
    ALIASES               the model aliases (entry-point group evalkit.aliases): name -> Alias
    parse_options(Options, spec, shown)   KEY=VALUE options checked against a backend's Options model

A backend is registered as a loader `(ModelSpec, shown_name) -> Backend`; its name is the spec's
prefix (`mybackend:TARGET,key=value`). evalkit's own (fake, transformers, gguf, llamacpp) are
entry points in its pyproject.toml, as an outside package's would be (docs/plugins.md).
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ValidationError

from evalkit.backends.aliases import Alias
from evalkit.backends.base import Backend, Family, ModelFacts, Tokenizer
from evalkit.backends.spec import ModelSpec, parse_model_spec
from evalkit.errors import SpecError, UnknownNameError, did_you_mean
from evalkit.registry import Registry

__all__ = [
    "ALIASES",
    "BACKENDS",
    "Alias",
    "Backend",
    "BackendLoader",
    "Family",
    "ModelFacts",
    "ModelSpec",
    "Tokenizer",
    "list_aliases",
    "load_model",
    "parse_model_spec",
    "parse_options",
    "resolve_alias",
]

BackendLoader = Callable[[ModelSpec, str], Backend]

BACKENDS: Registry[BackendLoader] = Registry("backend", "backends", check=callable)
ALIASES: Registry[Alias] = Registry("model alias", "aliases", check=lambda entry: isinstance(entry, Alias))


def list_aliases() -> list[Alias]:
    return [ALIASES.get(name) for name in ALIASES.names()]


def resolve_alias(spec: ModelSpec) -> ModelSpec:
    """Expand an alias into the concrete backend spec it stands for."""
    if spec.backend != "alias":
        return spec
    if spec.target not in ALIASES:
        shown = [*ALIASES.names(), "fake", *(f"{name}:<target>" for name in BACKENDS.names())]
        raise UnknownNameError("model", spec.target, shown)
    return ALIASES.get(spec.target).resolve(spec)


def load_model(spec: str | ModelSpec) -> Backend:
    parsed = parse_model_spec(spec) if isinstance(spec, str) else spec
    concrete = resolve_alias(parsed)
    try:
        loader = BACKENDS.get(concrete.backend)
    except UnknownNameError as exc:
        raise SpecError(f"--model {parsed.text!r}: {exc}") from None
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
