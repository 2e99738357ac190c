"""Getting a transformers model and tokenizer into memory: local folder, hub id or GGUF file.

Three rules shape this module:
* Offline is the normal case. A hub id is looked up in the local Hugging Face cache first;
  only when it is missing do we touch the network, with one short probe that turns a dead
  connection into a one-line `BackendUnavailableError` instead of a minute of retries.
* GGUF files are dequantized by transformers, which costs ~20 s (50 s for Gemma-3). The
  result is saved once under `$EVALKIT_CACHE_DIR/converted/<sha256>-<dtype>/` and reused.
* Everything a fingerprint needs (file hashes, resolved revision) is collected here, where
  the files are known.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.backends._hf_files import gguf_quant_type, sha256_file
from evalkit.errors import BackendUnavailableError, SpecError
from evalkit.paths import cache_dir, portable_locator

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger("evalkit.backends.hf")

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_HUB_PROBE_TIMEOUT_S = 5.0
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


@dataclass
class LoadedModel:
    """A model in memory plus the facts about where it came from."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str  # what was loaded: the hub id, or a portable locator (never this machine's path)
    identity: list[str] = field(default_factory=list)  # fingerprint parts: file hashes or hub@commit
    bytes_on_disk: int = 0
    quantization: str | None = None
    revision: str | None = None
    parameters: int | None = None  # set when quantization changes what `parameters()` counts
    batch_invariant: bool = True  # False when rows sharing a forward affect each other (int8-dynamic)
    adapter: str | None = None  # the fine-tuning adapter applied on load (`_hf_adapter`), as recorded


def torch_dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def load_local_dir(path: Path, dtype: str) -> LoadedModel:
    """A folder written by `save_pretrained` (config.json + weights + tokenizer files)."""
    if not (path / "config.json").is_file():
        raise BackendUnavailableError(f"{path} has no config.json; it is not a transformers model folder")
    model, tokenizer = _from_pretrained(str(path), dtype)
    weights = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    identity = [f"{p.name}:{sha256_file(p)}" for p in [path / "config.json", *weights]]
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        source=portable_locator(path),  # the weights' hashes are in `identity`
        identity=identity,
        bytes_on_disk=sum(p.stat().st_size for p in weights),
        quantization=_declared_quantization(model),
    )


def load_hub(repo_id: str, revision: str | None, dtype: str) -> LoadedModel:
    """A hub id: the local HF cache if it holds the snapshot, else a download (online only)."""
    snapshot = _hub_snapshot(repo_id, revision)
    loaded = load_local_dir(snapshot, dtype)
    commit = snapshot.name  # snapshot folders are named by the commit they hold
    loaded.source = repo_id
    loaded.revision = commit
    loaded.identity = [f"hub:{repo_id}@{commit}"]
    return loaded


def hub_file(repo_id: str, filename: str, revision: str | None) -> Path:
    """One file of a hub repo (a GGUF), from the cache first."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, local_files_only=True))
    except Exception:
        pass  # not cached: try the network below
    _probe_hub(repo_id, revision)
    return Path(_hub_call(repo_id, lambda: hf_hub_download(repo_id, filename, revision=revision)))


def load_gguf(path: Path, dtype: str) -> LoadedModel:
    """A GGUF file, dequantized by transformers; the conversion is cached on disk."""
    if not path.is_file():
        raise BackendUnavailableError(f"GGUF file not found: {path}")
    digest = sha256_file(path)
    quant = gguf_quant_type(path)
    converted = cache_dir() / "converted" / f"{digest}-{dtype}"
    if (converted / "config.json").is_file():
        log.info("GGUF conversion cache hit: %s", converted)
        model, tokenizer = _from_pretrained(str(converted), dtype)
    else:
        model, tokenizer = _convert_gguf(path, dtype)
        _save_conversion(model, tokenizer, converted)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        source=portable_locator(path, sha256=digest),
        identity=[f"gguf:{digest}"],
        bytes_on_disk=path.stat().st_size,
        quantization=f"gguf:{quant or 'unknown'} (dequantized to {dtype})",
    )


def looks_like_hub_id(target: str) -> bool:
    return bool(_HUB_ID.match(target)) and not target.startswith((".", "~"))


# --- internals ------------------------------------------------------------------------------


def _from_pretrained(
    location: str, dtype: str, **extra: str
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **extra)
    except (OSError, ValueError) as exc:
        raise BackendUnavailableError(
            f"cannot load a tokenizer from {location}: {_first_line(exc)}"
        ) from None
    try:
        model = AutoModelForCausalLM.from_pretrained(location, dtype=torch_dtype(dtype), **extra)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"loading {location} needs a missing package: {_first_line(exc)}"
        ) from None
    except (OSError, ValueError, KeyError) as exc:
        raise BackendUnavailableError(
            f"cannot load a causal LM from {location}: {_first_line(exc)}"
        ) from None
    model.eval()
    return model, tokenizer


def _convert_gguf(path: Path, dtype: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise BackendUnavailableError("reading GGUF files needs the gguf package: pip install gguf")
    log.info("converting %s to %s with transformers (once; cached afterwards)", path.name, dtype)
    model, tokenizer = _from_pretrained(str(path.parent), dtype, gguf_file=path.name)
    # The weights are plain tensors now; forget the GGUF quantizer so save_pretrained accepts them.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def _save_conversion(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Path) -> None:
    """Write to a temporary sibling folder, then rename: readers never see half a model."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        log.warning("cannot cache the GGUF conversion under %s: %s", target.parent, exc)
        return
    try:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        scratch.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        os.rename(scratch, target)
        log.info("cached the GGUF conversion in %s", target)
    except OSError as exc:
        # Another process may have renamed its copy first; either way ours is not needed.
        if not (target / "config.json").is_file():
            log.warning("cannot cache the GGUF conversion in %s: %s", target, exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _declared_quantization(model: PreTrainedModel) -> str | None:
    config = getattr(model.config, "quantization_config", None)
    if config is None:
        return None
    method = config.get("quant_method") if isinstance(config, dict) else getattr(config, "quant_method", None)
    return str(getattr(method, "value", method) or "quantized")


def _hub_snapshot(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception:
        pass  # not in the local cache
    _probe_hub(repo_id, revision)
    return Path(
        _hub_call(
            repo_id,
            lambda: snapshot_download(repo_id, revision=revision, allow_patterns=_HUB_PATTERNS),
        )
    )


def _probe_hub(repo_id: str, revision: str | None) -> None:
    """One short request, so that a dead network fails in seconds rather than after retries."""
    from huggingface_hub import HfApi

    _hub_call(repo_id, lambda: HfApi().repo_info(repo_id, revision=revision, timeout=_HUB_PROBE_TIMEOUT_S))


def _hub_call(repo_id: str, call: Any) -> Any:
    from huggingface_hub import errors

    try:
        return call()
    except errors.HFValidationError as exc:
        raise SpecError(f"{repo_id!r} is not a valid hub id: {_first_line(exc)}") from None
    except errors.LocalEntryNotFoundError:
        pass  # huggingface_hub's way of saying "offline": same message as below
    except errors.RevisionNotFoundError:
        raise SpecError(f"the hub repo {repo_id!r} has no such revision") from None
    except (errors.RepositoryNotFoundError, errors.GatedRepoError):
        raise BackendUnavailableError(
            f"the Hugging Face hub has no accessible model {repo_id!r}; pass a local directory or a GGUF file"
        ) from None
    except errors.EntryNotFoundError as exc:
        raise BackendUnavailableError(f"{repo_id!r}: {_first_line(exc)}") from None
    except Exception:  # connection refused, DNS failure, timeout, HF_HUB_OFFLINE=1, ...
        pass
    raise BackendUnavailableError(
        f"cannot fetch {repo_id!r} from the Hugging Face hub (offline?); "
        "pass a local directory or a GGUF file"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
