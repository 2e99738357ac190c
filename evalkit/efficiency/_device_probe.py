"""An accelerator's peaks: matmul FLOP/s (fp32, bf16) and memory bandwidth, measured on the device.

The same two kernels as the CPU probe (`_probe`), where a model on a GPU spends its time: square
matmuls (prefill) and a large copy (decode streams every weight once per token), with operands
and buffers in device memory. A GPU finishes a 2048² product in microseconds, so sides grow to
8192 while a product stays cheap, and each timing is a batch of products (copies) between two
device synchronisations, which amortises launch and synchronisation overhead. The probe's memory
is handed back to the device afterwards, so it is not charged to the model measured next.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["DEVICE_COPY_BYTES", "DEVICE_MATMUL_SIZE", "device_label", "measure_device_peaks"]

DEVICE_MATMUL_SIZE = 8192  # the largest side probed; tensor cores need large sides to reach their peak
DEVICE_MIN_MATMUL_SIZE = 1024
DEVICE_COPY_BYTES = 1024 * 1024 * 1024  # halved while two buffers would not fit comfortably
_DEVICE_BATCH = 8  # products (copies) per timed batch


def device_label(device: str) -> str:
    """'cuda: NVIDIA H200 (sm_90)' for 'cuda:0'; 'mps' for Apple's GPU. What a peak is keyed by:
    the model and generation of the device, not its index on this machine."""
    import torch

    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        return f"cuda: {props.name} (sm_{props.major}{props.minor})"
    return device


def measure_device_peaks(device: str, seconds: float = 0.5) -> dict[str, Any]:
    """`measure_host_peaks` on an accelerator: operands and buffers live in device memory.

    float32 matmuls run in full float32 (TF32 off, as `place_model` sets it for a float32 model);
    bfloat16 is probed only where the device supports it natively.
    """
    import torch

    started = time.perf_counter()
    target = torch.device(device)
    with _full_float32(target):
        float32, side = _device_matmul_rate(target, torch.float32, seconds)
        bfloat16 = _device_matmul_rate(target, torch.bfloat16, seconds)[0] if _has_bf16(target) else None
    peaks: dict[str, Any] = {
        "matmul_flops_per_s": {"float32": float32, "bfloat16": bfloat16},
        "memory_bytes_per_s": _device_copy_rate(target, seconds),
        "matmul_size": side,
        "copy_bytes": _device_copy_bytes(target),
    }
    peaks["probe_seconds"] = round(time.perf_counter() - started, 3)
    return peaks


def _device_matmul_rate(device: Any, dtype: Any, seconds: float) -> tuple[float, int]:
    """Best FLOP/s of batches of square products on `device`, the side doubling while it is cheap."""
    import torch

    generator = torch.Generator(device=device).manual_seed(0)

    def operands(side: int) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.randn(side, side, generator=generator, device=device, dtype=dtype)
        return a, torch.randn(side, side, generator=generator, device=device, dtype=dtype)

    def batch(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> float:
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(_DEVICE_BATCH):
            torch.matmul(a, b, out=out)
        _synchronize(device)
        return (time.perf_counter() - start) / _DEVICE_BATCH

    with torch.inference_mode():
        side = DEVICE_MIN_MATMUL_SIZE
        a, b = operands(side)
        out = torch.empty_like(a)
        batch(a, b, out)  # warm-up: kernel selection, clocks ramping up
        elapsed = batch(a, b, out)
        while side * 2 <= DEVICE_MATMUL_SIZE and elapsed * 8 * _DEVICE_BATCH < seconds / 4:
            if not _fits(device, 3 * (side * 2) ** 2 * a.element_size()):
                break
            side *= 2
            del a, b, out
            a, b = operands(side)
            out = torch.empty_like(a)
            batch(a, b, out)
            elapsed = batch(a, b, out)
        flops = 2.0 * side**3
        best, spent = flops / max(elapsed, 1e-12), elapsed * _DEVICE_BATCH
        while spent < seconds:
            elapsed = batch(a, b, out)
            spent += elapsed * _DEVICE_BATCH
            best = max(best, flops / max(elapsed, 1e-12))
        del a, b, out
    _release(device)
    return best, side


def _device_copy_bytes(device: Any) -> int:
    """DEVICE_COPY_BYTES, or less where two such buffers would not fit comfortably."""
    nbytes = DEVICE_COPY_BYTES
    while nbytes > 64 * 1024 * 1024 and not _fits(device, 2 * nbytes):
        nbytes //= 2
    return nbytes


def _device_copy_rate(device: Any, seconds: float) -> float:
    """Best rate of device-to-device copies, bytes read plus bytes written."""
    import torch

    nbytes = _device_copy_bytes(device)
    source = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    best, spent = 0.0, 0.0
    while spent < seconds or best == 0.0:
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(_DEVICE_BATCH):
            target.copy_(source)
        _synchronize(device)
        elapsed = (time.perf_counter() - start) / _DEVICE_BATCH
        spent += elapsed * _DEVICE_BATCH
        best = max(best, 2.0 * nbytes / max(elapsed, 1e-12))
    del source, target
    _release(device)
    return best


def _synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _fits(device: Any, nbytes: int) -> bool:
    """Whether `nbytes` more fit in the device's free memory with room to spare (CUDA; else True)."""
    import torch

    if device.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(device)
    return nbytes * 2 < free


def _has_bf16(device: Any) -> bool:
    import torch

    if device.type == "cuda":
        with torch.cuda.device(device):  # is_bf16_supported asks about the current device
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    return True  # MPS: bfloat16 since macOS 14, which torch 2.13 requires


def _release(device: Any) -> None:
    """Hand the probe's cached blocks back, so they are not charged to the model measured next."""
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


@contextlib.contextmanager
def _full_float32(device: Any) -> Iterator[None]:
    """TF32 off for the block (CUDA), restoring the process's setting afterwards."""
    import torch

    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
