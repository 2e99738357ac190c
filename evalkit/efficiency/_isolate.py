"""Measure one model in a fresh Python process: `python -m evalkit.efficiency._isolate JOB.json`.

Memory and speed are properties of a process, not of a model object: a parent that already
holds another model (or the allocator slack of an accuracy run) would inflate the peak RSS and
perturb timings. The child loads the model from its spec string, measures, and writes the figures
as JSON to the job's `result_path`; the parent validates them into `EfficiencyFigures` (the one
place where figures cross a process boundary untyped). The parent turns a missing result
(segfault, OOM kill, timeout) or a reported exception into one clear `EfficiencyError`.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evalkit.backends import Backend
from evalkit.efficiency._engine import (
    EfficiencyError,
    MeasurementFailedError,
    apply_roofline,
    measure_backend,
    timing_device,
    utilisation_exceeds_one,
)
from evalkit.efficiency._memory import PeakRssSampler, device_memory, device_name, reset_device_peak
from evalkit.efficiency._probe import host_peaks, peaks_for_device
from evalkit.errors import EvalkitError
from evalkit.results import EfficiencyFigures
from evalkit.specs.task import EfficiencySpec

log = logging.getLogger("evalkit.efficiency")

_STDERR_TAIL_LINES = 15


def measure_in_subprocess(model_spec: str, settings: EfficiencySpec) -> EfficiencyFigures:
    """The efficiency figures of `model_spec`, measured in a child process that loads it."""
    with tempfile.TemporaryDirectory(prefix="evalkit-efficiency-") as scratch:
        job_path, result_path = Path(scratch) / "job.json", Path(scratch) / "result.json"
        job = {
            "model": model_spec,
            "settings": settings.model_dump(mode="json"),
            "result_path": str(result_path),
        }
        job_path.write_text(json.dumps(job))
        command = [sys.executable, "-m", "evalkit.efficiency._isolate", str(job_path)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=settings.timeout_s)
        except subprocess.TimeoutExpired:
            raise MeasurementFailedError(
                f"efficiency measurement of {model_spec!r} did not finish within {settings.timeout_s:g} s"
            ) from None
        log.debug("efficiency child stderr:\n%s", done.stderr)
        result = _read_result(result_path)
        if result is None:
            tail = "\n".join(done.stderr.strip().splitlines()[-_STDERR_TAIL_LINES:])
            raise MeasurementFailedError(
                f"efficiency measurement of {model_spec!r} crashed (exit code {done.returncode}) "
                f"before reporting a result; its last output:\n{tail}"
            )
    if not result.get("ok"):
        failed = EfficiencyError if result.get("input_error") else MeasurementFailedError
        raise failed(f"efficiency measurement of {model_spec!r} failed: {result.get('error')}")
    try:
        return EfficiencyFigures.model_validate(result["efficiency"])
    except ValidationError as exc:  # a child of another evalkit version, or a bug: say which figure
        raise MeasurementFailedError(
            f"efficiency measurement of {model_spec!r} reported malformed figures: {exc}"
        ) from None


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def measure_loaded_child(model_spec: str, settings: EfficiencySpec) -> EfficiencyFigures:
    """Inside the child: probe the host (cached), then load and measure under the RSS sampler.

    A model on an accelerator is measured against that device's peaks (probed after the load,
    once the device is known, and cached); its device peak memory spans the load and the
    measurement but not the probe, whose buffers are freed and are not the model's cost.
    """
    from evalkit.backends import load_model

    # Import torch and probe before the sampler starts: the probe's buffers are freed again and
    # are not the model's cost; the library import is (every process that runs the model pays it).
    peaks = host_peaks()
    with PeakRssSampler() as sampler:
        started = time.perf_counter()
        backend = load_model(model_spec)
        load_time = time.perf_counter() - started
        facts = backend.describe()
        after_load = sampler.peak_bytes
        device = timing_device(backend)
        load_device_peak = device_memory(device)
        if device != "cpu":
            peaks = peaks_for_device(device)
            reset_device_peak(device)
        figures = measure_backend(backend, facts, settings, host_peaks=peaks, sampler=sampler)
        measure_device_peak = device_memory(device)
    figures = _reprobed_if_above_one(figures, device)
    return figures.model_copy(
        update={
            "load_time_s": load_time,
            "peak_memory_bytes": sampler.peak_bytes,
            "baseline_memory_bytes": sampler.baseline_bytes,
            "load_peak_memory_bytes": after_load,
            "peak_device_memory_bytes": _larger(load_device_peak, measure_device_peak),
            "device": device_name(device),
            "rss_samples": sampler.samples,
            "isolated": True,
        }
    )


def measure_in_process(backend: Backend, settings: EfficiencySpec) -> EfficiencyFigures:
    """Measure an already loaded model here: no load time, and memory includes this process's own."""
    device = timing_device(backend)
    peaks = peaks_for_device(device)
    reset_device_peak(device)
    with PeakRssSampler() as sampler:
        started = time.perf_counter()
        figures = measure_backend(backend, backend.describe(), settings, host_peaks=peaks, sampler=sampler)
    figures = _reprobed_if_above_one(figures, device)
    return figures.model_copy(
        update={
            "load_time_s": None,
            "peak_memory_bytes": sampler.peak_bytes,
            "baseline_memory_bytes": sampler.baseline_bytes,
            "peak_device_memory_bytes": device_memory(device),
            "device": device_name(device),
            "isolated": False,
            "wall_time_s": time.perf_counter() - started,
        }
    )


def _reprobed_if_above_one(figures: EfficiencyFigures, device: str) -> EfficiencyFigures:
    """A utilisation above 1 means the cached peak was measured on a busy host: probe again."""
    if utilisation_exceeds_one(figures):
        return apply_roofline(figures, peaks_for_device(device, refresh=True))
    return figures


def _larger(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else max(a or 0, b or 0)


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    result_path = Path(job["result_path"])
    try:
        settings = EfficiencySpec.model_validate(job["settings"])
        figures = measure_loaded_child(job["model"], settings)
        result: dict[str, Any] = {"ok": True, "efficiency": figures.model_dump(mode="json")}
    except Exception as exc:  # reported to the parent, which makes it the task's error
        frame = traceback.extract_tb(exc.__traceback__)[-1:] or None
        where = f" [{Path(frame[0].filename).name}:{frame[0].lineno}]" if frame else ""
        result = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}{where}",
            "input_error": isinstance(exc, EvalkitError),  # bad input stays exit 2 in the parent
        }
        traceback.print_exc()
    result_path.write_text(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    raise SystemExit(main(sys.argv[1:]))
