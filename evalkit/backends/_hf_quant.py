"""Quantized variants of a transformers model, made in memory at load time (`quantize=` option).

A variant is evaluated like any model, on the same samples, so `evalkit compare REFERENCE VARIANT`
measures exactly what quantization costs. Three methods, all CPU-capable:

    int8-dynamic  torch's own dynamic quantization (`torch.ao.quantization.quantize_dynamic`):
                  int8 Linear weights, activations quantized per call. No extra package.
    int8, int4    weight-only quantization by optimum-quanto (`pip install optimum-quanto`):
                  int8 per-channel / int4 grouped weights, dequantized inside each matmul.

Why optimum-quanto and not torchao: with torch 2.13 on CPU, torchao 0.18's int4 weight-only
needs the `mslk` kernels (not installable here) and its int8 weight-only tensors fail on Mamba,
whose slow path multiplies a Linear weight directly; quanto runs int8 and int4 on Llama, Gemma-3
and Mamba. quanto's int4 tensors fail when first touched under `torch.inference_mode` (the mode
evalkit scores in), unless they were created in it: so they are.

Choices that shape the numbers:
* The output head (`lm_head`) stays in full precision, as transformers' own quantizers leave it:
  it is often tied to the input embedding, and quantizing it would untie (double) it.
* `ModelFacts.parameters` is counted before quantization (torch's dynamic Linear layers hold no
  `Parameter`s), so variants line up with their reference; `quantization` names what ran,
  library version included, and is part of the fingerprint: caches and results never mix variants.
* A GGUF loaded through transformers is already dequantized to float32, so quantizing it again is
  a legitimate (if lossy twice) variant: `gguf:Q4_1 (dequantized to float32) + int8-dynamic ...`.
  Running the GGUF's own quantized kernels is the llama.cpp backend's job, not this one's.
* Every method runs in float32 here; a bfloat16 request is refused rather than silently changed.
* After quantizing, one short forward pass proves the library copes with the architecture;
  if not, loading fails with one line naming the method and the model class.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalkit.errors import BackendUnavailableError, SpecError, did_you_mean

if TYPE_CHECKING:
    from evalkit.backends._hf_load import LoadedModel

__all__ = ["QUANTIZATIONS", "apply_quantization", "check_quantize_option"]

QUANTO_PIP = "pip install optimum-quanto==0.2.7 ninja --no-deps"
_SMOKE_TOKENS = [1, 2, 3, 4, 5, 6, 7, 8]


@dataclass(frozen=True)
class QuantMethod:
    name: str
    label: str  # how ModelFacts.quantization names it (the library and version are appended)
    library: str  # the distribution that does the work, for the version and the error messages
    apply: Callable[[Any, list[str]], None]  # (model, module names kept in full precision)
    # torch's dynamic Linear picks one activation scale per call, over every row of the batch
    # (padding included): scored alone, a request gets other numbers than scored with others.
    batch_invariant: bool = True


def _torch_dynamic_int8(model: Any, keep: list[str]) -> None:
    import torch
    from torch.ao.quantization import quantize_dynamic

    names = {
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name not in keep
    }
    # A set of names, not {nn.Linear}: the output head must stay a float Linear. torch 2.13 warns
    # that torch.ao.quantization is deprecated in favour of torchao; it still works, and torchao
    # has no CPU dynamic-int8 path here that runs every architecture (see the module docstring).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        quantize_dynamic(model, names, dtype=torch.qint8, inplace=True)


def _quanto(bits: int) -> Callable[[Any, list[str]], None]:
    def apply(model: Any, keep: list[str]) -> None:
        import torch
        from optimum.quanto import freeze, qint4, qint8, quantize

        with torch.inference_mode():  # see the module docstring: int4 tensors must be born here
            quantize(model, weights=qint8 if bits == 8 else qint4, exclude=keep or None)
            freeze(model)

    return apply


QUANTIZATIONS: dict[str, QuantMethod] = {
    "int8-dynamic": QuantMethod("int8-dynamic", "int8-dynamic", "torch", _torch_dynamic_int8, False),
    "int8": QuantMethod("int8", "int8 weight-only", "optimum-quanto", _quanto(8)),
    "int4": QuantMethod("int4", "int4 weight-only", "optimum-quanto", _quanto(4)),
}


def check_quantize_option(name: str | None, dtype: str, shown: str) -> None:
    """Reject, before any weights are read, what cannot run: unknown names, bfloat16, missing packages."""
    if name is None:
        return
    method = QUANTIZATIONS.get(name)
    if method is None:
        hint = did_you_mean(name, QUANTIZATIONS)
        known = ", ".join(QUANTIZATIONS)
        suggestion = f"did you mean {hint}?" if hint else f"known: {known}"
        raise SpecError(f"--model {shown!r}: unknown quantization {name!r}; {suggestion}")
    if dtype != "float32":
        raise SpecError(
            f"--model {shown!r}: quantize={name} runs in float32 on CPU; drop dtype={dtype} "
            "(bfloat16 activations are not supported by the quantized kernels used here)"
        )
    if method.library == "optimum-quanto" and importlib.util.find_spec("optimum.quanto") is None:
        raise BackendUnavailableError(
            f"--model {shown!r}: quantize={name} needs optimum-quanto (weight-only int8/int4 on CPU): "
            f"{QUANTO_PIP}"
        )


def apply_quantization(loaded: LoadedModel, name: str, shown: str) -> None:
    """Quantize `loaded.model` in place and record what ran in `loaded` (quantization, parameters)."""
    import torch

    method = QUANTIZATIONS[name]
    model = loaded.model
    if loaded.quantization is not None and not loaded.quantization.startswith("gguf:"):
        raise SpecError(
            f"--model {shown!r}: the checkpoint is already quantized ({loaded.quantization}); "
            f"quantize={name} applies to full-precision weights"
        )
    loaded.parameters = sum(p.numel() for p in model.parameters())
    keep = _output_head_names(model)
    architecture = type(model).__name__
    try:
        method.apply(model, keep)
        with torch.inference_mode():
            model(input_ids=torch.tensor([_SMOKE_TOKENS]))
    except ImportError as exc:
        raise BackendUnavailableError(
            f"--model {shown!r}: quantize={name} needs a missing package ({_first_line(exc)}): {QUANTO_PIP}"
        ) from None
    except Exception as exc:  # the library cannot handle this architecture: say which and why
        advice = " (it reads a Linear weight directly; try quantize=int8)" if name == "int8-dynamic" else ""
        raise BackendUnavailableError(
            f"--model {shown!r}: {method.library} cannot run quantize={name} on {architecture}"
            f"{advice}: {type(exc).__name__}: {_first_line(exc)}"
        ) from None
    model.eval()
    loaded.batch_invariant = method.batch_invariant
    done = f"{method.label} ({method.library} {_version(method.library)})"
    loaded.quantization = f"{loaded.quantization} + {done}" if loaded.quantization else done


def _output_head_names(model: Any) -> list[str]:
    head = model.get_output_embeddings()
    return [name for name, module in model.named_modules() if head is not None and module is head]


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
