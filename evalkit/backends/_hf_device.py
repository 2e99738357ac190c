"""Where a transformers model runs: the `device=` option resolved against this machine.

    device=auto     cuda when torch sees a CUDA device, else mps when available, else cpu
    device=cpu      the CPU (float32 numbers identical to the default on a CPU-only machine)
    device=cuda     the current CUDA device (index resolved, e.g. cuda:0)
    device=cuda:N   CUDA device N
    device=mps      Apple's Metal device

A device the machine lacks is a `SpecError` naming the option, raised before any weights are read.
The record keeps the device *kind* (`ModelFacts.device`: cpu, cuda or mps), not the index: the
index says where on one machine, not how the numbers were made.

`quantize=` variants are made with CPU kernels (torch dynamic int8, optimum-quanto as measured
here): `auto` keeps them on the CPU, and an explicit accelerator for one is refused.
"""

from __future__ import annotations

import re
from typing import Any

from evalkit.errors import SpecError

__all__ = ["DEVICE_CHOICES", "device_kind", "place_model", "resolve_device"]

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(?::(\d+))?)$")


def resolve_device(option: str, shown: str, *, quantize: str | None = None) -> str:
    """The torch device string `option` means here ('cpu', 'cuda:0', 'mps'); SpecError if absent."""
    match = _DEVICE.match(option.strip().lower())
    if match is None:
        raise SpecError(f"--model {shown!r}: device must be {DEVICE_CHOICES}, not {option!r}")
    name = match.group(1)
    if name == "cpu" or (name == "auto" and quantize is not None):
        return "cpu"
    if quantize is not None:
        raise SpecError(
            f"--model {shown!r}: quantize={quantize} runs with CPU kernels; use device=cpu (or drop device=)"
        )
    import torch

    cuda = torch.cuda.is_available()
    if name == "auto":
        if cuda:
            return f"cuda:{torch.cuda.current_device()}"
        return "mps" if _mps_available(torch) else "cpu"
    if name == "mps":
        if not _mps_available(torch):
            raise SpecError(f"--model {shown!r}: MPS is not available on this machine")
        return "mps"
    if not cuda:
        raise SpecError(f"--model {shown!r}: CUDA is not available on this machine")
    if match.group(2) is None:
        return f"cuda:{torch.cuda.current_device()}"
    index, count = int(match.group(2)), torch.cuda.device_count()
    if index >= count:
        devices = "device" if count == 1 else "devices"
        raise SpecError(
            f"--model {shown!r}: device=cuda:{index}, but this machine has {count} CUDA {devices} "
            f"(cuda:0 to cuda:{count - 1})"
        )
    return f"cuda:{index}"


def device_kind(device: str) -> str:
    """'cuda:1' -> 'cuda': what a record keeps."""
    return device.split(":", 1)[0]


def place_model(model: Any, device: str) -> None:
    """Move `model` to `device` (in place) and fix the numerics that device would otherwise change.

    On CUDA, float32 means float32: TF32 tensor-core matmuls and convolutions (cuDNN allows TF32
    by default; Mamba's depthwise convolution goes through it) keep only 10 mantissa bits, which
    would make a float32 run on a GPU differ from the same run on a CPU by far more than rounding.
    The flags are process-wide; evalkit sets them to torch's own full-precision setting.
    """
    import torch

    if device_kind(device) == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if str(model.device) != device:
        model.to(device)


def _mps_available(torch: Any) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
