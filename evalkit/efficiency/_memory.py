"""Peak resident memory, sampled rather than guessed.

`ru_maxrss` would give the process's all-time peak (including anything before the model was
loaded, and never resettable), and summing tensor sizes misses allocator slack, activations
and library buffers. A daemon thread that reads the RSS every few milliseconds with psutil sees
what the operating system actually had to provide during load and measurement.

A model on a GPU also has a device peak: torch's allocator keeps it (`max_memory_allocated`),
exactly, per device; `device_memory` reads it and `reset_device_peak` starts it again.
"""

from __future__ import annotations

import threading
from types import TracebackType

DEFAULT_INTERVAL_S = 0.005


class PeakRssSampler:
    """`with PeakRssSampler() as sampler: ...` then `sampler.peak_bytes` (also readable inside)."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.baseline_bytes = self._rss()
        self._peak = self.baseline_bytes
        self._window_peak = self.baseline_bytes
        self.samples = 0

    @property
    def peak_bytes(self) -> int:
        """The highest RSS seen since the sampler was made."""
        self._sample()  # include "now", so a short block is not missed between two ticks
        return self._peak

    def start_window(self) -> None:
        """Start a new window for `window_peak_bytes` (e.g. one context length of a curve)."""
        self._window_peak = self._rss()

    @property
    def window_peak_bytes(self) -> int:
        """The highest RSS seen since the last `start_window` (or since the sampler was made)."""
        self._sample()
        return self._window_peak

    def _rss(self) -> int:
        return int(self._process.memory_info().rss)

    def _sample(self) -> None:
        rss = self._rss()
        self.samples += 1
        self._peak = max(self._peak, rss)
        self._window_peak = max(self._window_peak, rss)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample()

    def __enter__(self) -> PeakRssSampler:
        self._thread = threading.Thread(target=self._loop, name="evalkit-rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()


def device_memory(device: str) -> int | None:
    """Peak bytes allocated on CUDA device `device` since its last reset (or since the process
    started); None for the CPU and MPS (which keeps no peak), or when torch is not loaded."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not device.startswith("cuda"):
        return None
    return int(torch.cuda.max_memory_allocated(device))


def reset_device_peak(device: str) -> None:
    """Start a new peak for `device_memory(device)` (CUDA only: nothing to reset elsewhere)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def device_name(device: str) -> str | None:
    """The accelerator's name for a torch device string ('NVIDIA H200'; 'mps'); None for the CPU."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or device.startswith("cpu"):
        return None
    if device.startswith("cuda"):
        return str(torch.cuda.get_device_name(device))
    return device
