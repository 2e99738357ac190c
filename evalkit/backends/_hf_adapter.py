"""Fine-tuned variants: a PEFT LoRA adapter folder applied to a transformers model on load.

`adapter=PATH` reads a folder that PEFT's `save_pretrained` wrote (`adapter_config.json` plus
`adapter_model.safetensors` or `.bin`) and injects its LoRA layers into the loaded base; with
`merge=true` the low-rank updates are folded into the base weights (same function, one matmul per
layer instead of three). The adapted model is still the base's transformers class, so every
scoring, prefix-sharing and timing path of the backend runs on it unchanged.

Choices that shape the records:
* The adapter's content hash (config + weights) joins the model's fingerprint; without an adapter
  the base's fingerprint is what it always was. Merged and unmerged runs are fingerprinted apart:
  they differ by float rounding, and caches must never mix numbers.
* `ModelFacts.parameters` stays the base's count (LoRA matrices are not counted), so an adapted
  model lines up with its base in the leaderboard's variants section, as quantized variants do.
* A folder that is not a PEFT LoRA adapter, or whose matrices do not fit the model's layers (an
  adapter trained on another base), fails before any scoring with one line naming the folder.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.errors import BackendUnavailableError, SpecError

if TYPE_CHECKING:
    from evalkit.backends._hf_load import LoadedModel

__all__ = ["PEFT_PIP", "AdapterFolder", "apply_adapter", "check_adapter_option", "read_adapter_folder"]

PEFT_PIP = "pip install peft==0.21.2"
_CONFIG = "adapter_config.json"
_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
# Saved keys look like "base_model.model.<module path>.lora_A.weight" (PEFT drops the adapter name).
_KEY_PREFIX = "base_model.model."
_LORA_PARTS = {".lora_A.weight": "A", ".lora_B.weight": "B"}


@dataclass(frozen=True)
class AdapterFolder:
    """A checked PEFT LoRA folder: where it is, what it claims, and its content hash."""

    path: Path
    weights: Path
    digest: str  # sha256 over adapter_config.json then the weight file
    rank: int
    base: str | None  # base_model_name_or_path as the trainer wrote it (a claim, not a check)

    @property
    def label(self) -> str:
        """What `ModelFacts.adapter` says: "lora r=8 sha256:<12 hex> on <base>"."""
        on = f" on {Path(self.base).name or self.base}" if self.base else ""
        return f"lora r={self.rank} sha256:{self.digest[:12]}{on}"


def check_adapter_option(
    adapter: str | None, merge: bool, quantize: str | None, shown: str
) -> AdapterFolder | None:
    """Check `adapter=` / `merge=` (and the folder) before any weights load."""
    if adapter is None:
        if merge:
            raise SpecError(f"--model {shown!r}: merge=true needs adapter=PATH")
        return None
    if quantize is not None and not merge:
        raise SpecError(
            f"--model {shown!r}: quantize= with adapter= needs merge=true (LoRA layers stay unquantized)"
        )
    return read_adapter_folder(adapter, shown)


def read_adapter_folder(path_text: str, shown: str) -> AdapterFolder:
    """Check that `path_text` is a PEFT LoRA folder (before any weights load) and hash it."""
    path = Path(path_text).expanduser()
    where = f"--model {shown!r}: adapter folder {str(path)!r}"
    if not path.is_dir():
        raise SpecError(f"{where} does not exist or is not a folder")
    config_path = path / _CONFIG
    if not config_path.is_file():
        raise SpecError(f"{where} is not a PEFT adapter: it has no {_CONFIG}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SpecError(f"{where}: {_CONFIG} is not valid JSON ({_first_line(exc)})") from None
    if not isinstance(config, dict) or "peft_type" not in config:
        raise SpecError(f"{where} is not a PEFT adapter: {_CONFIG} has no peft_type")
    if str(config["peft_type"]).upper() != "LORA":
        raise SpecError(f"{where} holds a {config['peft_type']} adapter; only LoRA adapters are supported")
    rank = config.get("r")
    if not isinstance(rank, int) or rank < 1:
        raise SpecError(f"{where}: {_CONFIG} has no positive integer rank r")
    weights = next((path / name for name in _WEIGHT_FILES if (path / name).is_file()), None)
    if weights is None:
        raise SpecError(f"{where} is not a PEFT adapter: it has no {' or '.join(_WEIGHT_FILES)}")
    if importlib.util.find_spec("peft") is None:
        raise BackendUnavailableError(f"--model {shown!r}: adapter= needs the peft package: {PEFT_PIP}")
    digest = hashlib.sha256()
    for part in (config_path, weights):
        digest.update(part.read_bytes())
    base = config.get("base_model_name_or_path")
    return AdapterFolder(path, weights, digest.hexdigest(), rank, str(base) if base else None)


def apply_adapter(loaded: LoadedModel, folder: AdapterFolder, merge: bool, shown: str) -> None:
    """Inject (or merge) the adapter into `loaded.model` in place and record it in `loaded`."""
    import torch
    from peft import PeftModel

    where = f"--model {shown!r}: adapter folder {str(folder.path)!r}"
    model = loaded.model
    loaded.parameters = loaded.parameters or sum(p.numel() for p in model.parameters())
    _check_shapes(model, folder, where)
    adapted: Any
    try:
        with torch.no_grad():
            wrapped = PeftModel.from_pretrained(model, str(folder.path), is_trainable=False)
            adapted = wrapped.merge_and_unload() if merge else wrapped.get_base_model()
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        raise SpecError(f"{where} does not fit this model: {_first_line(exc)}") from None
    adapted.eval()
    loaded.model = adapted
    version = importlib.metadata.version("peft")
    loaded.identity = [*loaded.identity, f"adapter:{folder.digest}", f"merged={merge}"]
    loaded.adapter = folder.label + (" (merged)" if merge else "") + f" (peft {version})"


def _check_shapes(model: Any, folder: AdapterFolder, where: str) -> None:
    """Every LoRA matrix must name a Linear layer of the model and match its in/out features."""
    import torch

    shapes = _tensor_shapes(folder.weights, where)
    modules = dict(model.named_modules())
    lora = 0
    for key, shape in sorted(shapes.items()):
        part = next((p for p in _LORA_PARTS if key.endswith(p)), None)
        if part is None:
            continue  # bias or modules_to_save tensors: PEFT checks those itself
        lora += 1
        name = key.removeprefix(_KEY_PREFIX)[: -len(part)]
        module = modules.get(name)
        if module is None:
            raise SpecError(f"{where} does not match the model: it adapts {name!r}, which the model lacks")
        if not isinstance(module, torch.nn.Linear) or len(shape) != 2:
            continue  # embeddings, convolutions: left to PEFT's own loading checks
        expected = (folder.rank, module.in_features) if _LORA_PARTS[part] == "A" else None
        if expected is None:
            expected = (module.out_features, folder.rank)
        if tuple(shape) != expected:
            raise SpecError(
                f"{where} does not match the model: {name} is {module.in_features}->{module.out_features}"
                f" but the adapter's lora_{_LORA_PARTS[part]} is {'x'.join(map(str, shape))}"
                " (trained on another base?)"
            )
    if lora == 0:
        raise SpecError(f"{where} is not a LoRA adapter: its weights hold no lora_A/lora_B matrices")


def _tensor_shapes(weights: Path, where: str) -> dict[str, list[int]]:
    try:
        if weights.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(weights), framework="pt") as handle:
                return {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
        import torch

        state = torch.load(weights, map_location="cpu", weights_only=True)
        return {key: list(tensor.shape) for key, tensor in state.items()}
    except Exception as exc:  # a truncated or foreign file: say which
        raise SpecError(f"{where}: cannot read {weights.name}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
