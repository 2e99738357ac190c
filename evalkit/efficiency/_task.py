"""The `efficiency` task kind: from a task spec and a model to the record's figures and metrics.

The figures go into `RunRecord.efficiency` whole (curves included); a few headline figures are
also metrics (`bounded=False`, so they never enter an accuracy mean) so that `compare`, gates and
the leaderboard can treat them like any other metric.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from evalkit.backends.base import Backend
from evalkit.efficiency._engine import apply_roofline, measure_backend, utilisation_exceeds_one
from evalkit.efficiency._isolate import measure_in_subprocess
from evalkit.results.schema import DataSourceFacts, MetricValue, TaskFacts
from evalkit.runner.task_run import fingerprint_json
from evalkit.specs.task import EfficiencySpec, TaskSpec

# headline figure -> higher_is_better
HEADLINE_METRICS: dict[str, bool] = {
    "decode_tokens_per_s": True,
    "time_per_output_token_s": False,
    "time_to_first_token_s": False,
    "prefill_tokens_per_s": True,
    "peak_memory_bytes": False,
}


@dataclass(frozen=True)
class EfficiencyOutcome:
    task: TaskFacts
    metrics: dict[str, MetricValue]
    figures: dict[str, Any]
    seed: int


def run_efficiency_task(backend: Backend, spec: TaskSpec, *, seed: int | None = None) -> EfficiencyOutcome:
    """Measure `backend`'s model as `spec.efficiency` asks (in a subprocess unless `isolate: false`)."""
    settings = spec.efficiency or EfficiencySpec()
    if seed is not None:
        settings = settings.model_copy(update={"seed": seed})
    facts = backend.describe()
    if settings.isolate:
        figures = measure_in_subprocess(facts.name, settings)
    else:
        figures = _measure_here(backend, settings)
    spec_json = fingerprint_json(spec) + "|" + settings.model_dump_json()
    task = TaskFacts(
        name=spec.name,
        kind=spec.kind,
        fingerprint=hashlib.sha256(spec_json.encode()).hexdigest(),
        spec_file=spec.source_file,
        primary_metric="decode_tokens_per_s",
        num_fewshot=0,
        num_samples=len(figures["curves"]["prefill"]) + len(figures["curves"]["decode"]),
        source=DataSourceFacts(
            origin="synthetic",
            format="random-tokens",
            location=f"seeded random token ids (seed={settings.seed})",
            split="",
            num_documents=0,
            content_sha256=hashlib.sha256(
                json.dumps(figures["settings"], sort_keys=True).encode()
            ).hexdigest(),
        ),
    )
    return EfficiencyOutcome(task, efficiency_metrics(figures), figures, settings.seed)


def efficiency_metrics(figures: dict[str, Any]) -> dict[str, MetricValue]:
    """Headline figures as unbounded metrics; n is the number of repetitions behind each."""
    metrics = {}
    for name, higher in HEADLINE_METRICS.items():
        value = figures.get(name)
        if not isinstance(value, int | float):
            continue
        metrics[name] = MetricValue(
            value=float(value),
            stderr=None,
            ci95=None,
            n=_repetitions(figures, name),
            higher_is_better=higher,
            bounded=False,
        )
    return metrics


def _repetitions(figures: dict[str, Any], name: str) -> int:
    curves = figures.get("curves", {})
    if name == "prefill_tokens_per_s" and curves.get("prefill"):
        return int(curves["prefill"][-1]["stats"]["tokens_per_s"]["n"])
    if name in ("decode_tokens_per_s", "time_per_output_token_s", "time_to_first_token_s") and curves.get(
        "decode"
    ):
        return int(curves["decode"][0]["stats"][name]["n"])
    return 1


def _measure_here(backend: Backend, settings: EfficiencySpec) -> dict[str, Any]:
    """In-process measurement of an already loaded model: no load time, memory includes the parent."""
    from evalkit.efficiency._memory import PeakRssSampler
    from evalkit.efficiency._probe import host_peaks

    peaks = host_peaks()
    with PeakRssSampler() as sampler:
        started = time.perf_counter()
        figures = measure_backend(backend, backend.describe(), settings, host_peaks=peaks, sampler=sampler)
    if utilisation_exceeds_one(figures):  # the cached peak was measured on a busy host: probe again
        apply_roofline(figures, host_peaks(refresh=True))
    return {
        "load_time_s": None,
        "peak_memory_bytes": sampler.peak_bytes,
        "baseline_memory_bytes": sampler.baseline_bytes,
        "peak_device_memory_bytes": None,
        "isolated": False,
        "wall_time_s": time.perf_counter() - started,
        **figures,
    }
