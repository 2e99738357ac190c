"""Measured peaks: matmul FLOP/s (fp32, bf16) and memory bandwidth, of the CPU or of a GPU.

Utilisation figures (MFU, MBU) need a denominator. Vendor peaks are unknown for most CPUs and
unreachable in practice, so evalkit measures what this host achieves on the kernels a model
spends its time in: a square matmul (prefill is matmul-bound) and a large copy (decode at
batch 1 streams every weight once per token). The probe takes a few seconds, so its result is
cached in `$EVALKIT_CACHE_DIR/host_peaks.json`, keyed by the host facts that change it.

A model on a GPU is measured against that GPU (`peaks_for_device`, probed by `_device_probe`),
cached in the same file under a key that adds the device's name and compute capability. The CPU's
key is unchanged by this (the same digest as before devices existed), so peaks cached on CPU
hosts stay valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evalkit import paths
from evalkit.efficiency import _device_probe
from evalkit.results import HostPeaks

PROBE_VERSION = 1
CACHE_NAME = "host_peaks.json"
MATMUL_SIZE = 2048  # the largest side probed
MIN_MATMUL_SIZE = 256
COPY_BYTES = 256 * 1024 * 1024


def usable_cpus() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


def host_key() -> dict[str, Any]:
    """The facts a measured peak depends on (not the hostname: identical CI runners share peaks)."""
    import torch

    from evalkit.results.provenance import host_facts

    facts = host_facts()
    return {
        "probe_version": PROBE_VERSION,
        "cpu": facts.cpu,
        "cpus": usable_cpus(),
        "machine": platform.machine(),
        "accelerator": facts.accelerator,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def matmul_flops_per_s(dtype_name: str, seconds: float = 0.5, size: int = MATMUL_SIZE) -> float:
    """Best rate of square matmuls over about `seconds` (after one warm-up), at most `size`².

    The side starts at 256 and doubles only while one product would still take under a quarter of
    the budget: on a CPU without native bf16 (AVX2) one 2048² bfloat16 product takes about a
    minute, which stalled every efficiency run in the probe. Small sides underestimate the peak a
    little; they are used only where the large ones are hopeless anyway.
    """
    return _matmul_rate(dtype_name, seconds, size)[0]


def _matmul_rate(dtype_name: str, seconds: float, largest: int) -> tuple[float, int]:
    import torch

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    generator = torch.Generator().manual_seed(0)

    def operands(side: int) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.randn(side, side, generator=generator).to(dtype)
        return a, torch.randn(side, side, generator=generator).to(dtype)

    def once(a: torch.Tensor, b: torch.Tensor) -> float:
        start = time.perf_counter()
        torch.matmul(a, b)
        return time.perf_counter() - start

    with torch.inference_mode():
        side = min(MIN_MATMUL_SIZE, largest)
        a, b = operands(side)
        once(a, b)  # warm-up: first-call allocations and kernel selection
        elapsed = once(a, b)
        # The next side costs 8x as much: grow only while that stays within a quarter of the budget.
        while side * 2 <= largest and elapsed * 8 < seconds / 4:
            side *= 2
            a, b = operands(side)
            once(a, b)
            elapsed = once(a, b)
        flops = 2.0 * side**3
        best, spent = flops / max(elapsed, 1e-9), elapsed
        while spent < seconds:
            elapsed = once(a, b)
            spent += elapsed
            best = max(best, flops / max(elapsed, 1e-9))
    return best, side


def copy_bytes_per_s(seconds: float = 0.5, nbytes: int = COPY_BYTES) -> float:
    """Best rate of a large tensor copy, counting the bytes read plus the bytes written."""
    import torch

    source = torch.ones(nbytes // 4, dtype=torch.float32)
    target = torch.empty_like(source)
    target.copy_(source)
    best, spent = 0.0, 0.0
    while spent < seconds or best == 0.0:
        start = time.perf_counter()
        target.copy_(source)
        elapsed = time.perf_counter() - start
        spent += elapsed
        best = max(best, 2.0 * nbytes / elapsed)
    return best


def measure_host_peaks(seconds: float = 0.5) -> dict[str, Any]:
    started = time.perf_counter()
    float32, side = _matmul_rate("float32", seconds, MATMUL_SIZE)
    peaks: dict[str, Any] = {
        "matmul_flops_per_s": {
            "float32": float32,
            "bfloat16": matmul_flops_per_s("bfloat16", seconds),
        },
        "memory_bytes_per_s": copy_bytes_per_s(seconds),
        "matmul_size": side,  # the float32 side reached (bfloat16 may stop smaller)
        "copy_bytes": COPY_BYTES,
    }
    peaks["probe_seconds"] = round(time.perf_counter() - started, 3)
    return peaks


def host_peaks(cache_dir: Path | None = None, refresh: bool = False) -> HostPeaks:
    """The cached peaks of this host's CPU, probing (and caching) them on first use or on `refresh`.

    Returns the peaks with `key` (the host facts) and `cached` (False when just measured).
    """
    return _cached_peaks(host_key(), "cpu", measure_host_peaks, cache_dir, refresh)


def peaks_for_device(device: str, cache_dir: Path | None = None, refresh: bool = False) -> HostPeaks:
    """The peaks a model on torch device `device` ('cpu', 'cuda:0', 'mps') is measured against."""
    kind = device.split(":", 1)[0]
    if kind == "cpu":
        return host_peaks(cache_dir, refresh)
    if kind not in ("cuda", "mps"):
        raise ValueError(f"no peak probe for device {device!r}")
    key = {**host_key(), "device": _device_probe.device_label(device)}
    return _cached_peaks(key, kind, lambda: _device_probe.measure_device_peaks(device), cache_dir, refresh)


def _cached_peaks(
    key: dict[str, Any],
    kind: str,
    measure: Callable[[], dict[str, Any]],
    cache_dir: Path | None,
    refresh: bool,
) -> HostPeaks:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = (cache_dir or paths.cache_dir()) / CACHE_NAME
    known = _read(path)
    if not refresh and isinstance(known.get(digest), dict):
        cached = _typed({**known[digest], "device": kind, "key": key, "cached": True})
        if cached is not None:
            return cached
    peaks = _best_of(measure(), known.get(digest))
    known[digest] = peaks
    _write(path, known)
    return HostPeaks.model_validate({**peaks, "device": kind, "key": key, "cached": False})


def _typed(peaks: dict[str, Any]) -> HostPeaks | None:
    """A cache entry as HostPeaks; None for an entry this version cannot read (it is probed again)."""
    try:
        return HostPeaks.model_validate(peaks)
    except ValidationError:
        return None


def _best_of(new: dict[str, Any], old: Any) -> dict[str, Any]:
    """A peak is the best the host achieves: a re-probe can only raise it (contention lowers it)."""
    if not isinstance(old, dict):
        return new
    merged = dict(new)
    old_flops = old.get("matmul_flops_per_s") or {}
    merged["matmul_flops_per_s"] = {
        name: None if value is None else max(value, float(old_flops.get(name) or 0.0))
        for name, value in new["matmul_flops_per_s"].items()
    }
    merged["memory_bytes_per_s"] = max(new["memory_bytes_per_s"], float(old.get("memory_bytes_per_s", 0.0)))
    return merged


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any]) -> None:
    """Write beside, then rename: readers never see half a file. A failure only costs a reprobe."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(scratch, path)
    except OSError:
        pass
