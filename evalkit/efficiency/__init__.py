"""Efficiency measurement: load time, memory, prefill and decode speed, roofline utilisation.

Public API:
    run_efficiency_task(backend, spec) -> EfficiencyOutcome   the `efficiency` task kind
    measure_backend(backend, facts, settings, host_peaks=...)  the engine, on a loaded TimingProbe
    measure_in_subprocess(model_spec, settings)                 the same, in a fresh process
    host_peaks()                                                this host's matmul/bandwidth peaks
    peaks_for_device(device)                                    the same for a torch device (a GPU's own)
    DevicePlacement                                             optional backend capability: timing_device
    repeat, summarize, RepetitionPolicy, Summary                the repetition policy and statistics
    PeakRssSampler                                              background peak-RSS sampling

torch and psutil are imported inside functions: importing this package is cheap.
"""

from evalkit.efficiency._engine import (
    DevicePlacement,
    EfficiencyError,
    MeasurementFailedError,
    StateSizeProbe,
    measure_backend,
    random_tokens,
    timing_device,
)
from evalkit.efficiency._isolate import measure_in_subprocess
from evalkit.efficiency._measure import RepetitionPolicy, Summary, percentile, repeat, summarize
from evalkit.efficiency._memory import PeakRssSampler
from evalkit.efficiency._probe import host_peaks, measure_host_peaks, peaks_for_device
from evalkit.efficiency._task import EfficiencyOutcome, efficiency_metrics, run_efficiency_task

__all__ = [
    "DevicePlacement",
    "EfficiencyError",
    "EfficiencyOutcome",
    "MeasurementFailedError",
    "PeakRssSampler",
    "RepetitionPolicy",
    "StateSizeProbe",
    "Summary",
    "efficiency_metrics",
    "host_peaks",
    "measure_backend",
    "measure_host_peaks",
    "measure_in_subprocess",
    "peaks_for_device",
    "percentile",
    "random_tokens",
    "repeat",
    "run_efficiency_task",
    "summarize",
    "timing_device",
]
