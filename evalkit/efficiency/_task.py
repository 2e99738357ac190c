"""The `efficiency` task kind: from a task spec and a model to the record's figures and metrics.

The figures go into `RunRecord.efficiency` whole (curves included); a few headline figures are
also metrics (`bounded=False`, so they never enter an accuracy mean) so that `compare`, gates and
the leaderboard can treat them like any other metric.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from evalkit.backends.base import Backend
from evalkit.efficiency._isolate import measure_in_process, measure_in_subprocess
from evalkit.kinds import fingerprint_json, task_facts
from evalkit.results import EfficiencyFigures, MetricValue, SourceFacts, TaskFacts
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
    figures: EfficiencyFigures
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
        figures = measure_in_process(backend, settings)
    spec_json = fingerprint_json(spec) + "|" + settings.model_dump_json()
    task = task_facts(
        spec,
        fingerprint=hashlib.sha256(spec_json.encode()).hexdigest(),
        primary_metric="decode_tokens_per_s",
        num_fewshot=0,
        num_samples=len(figures.curves.prefill) + len(figures.curves.decode),
        source=SourceFacts(
            origin="synthetic",
            format="random-tokens",
            location=f"seeded random token ids (seed={settings.seed})",
            split="",
            num_documents=0,
            content_sha256=hashlib.sha256(
                json.dumps(settings.model_dump(mode="json"), sort_keys=True).encode()
            ).hexdigest(),
        ),
    )
    return EfficiencyOutcome(task, efficiency_metrics(figures), figures, settings.seed)


def efficiency_metrics(figures: EfficiencyFigures) -> dict[str, MetricValue]:
    """Headline figures as unbounded metrics; n is the number of repetitions behind each."""
    metrics = {}
    for name, higher in HEADLINE_METRICS.items():
        value = getattr(figures, name)
        if value is None:
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


def _repetitions(figures: EfficiencyFigures, name: str) -> int:
    prefill, decode = figures.curves.prefill, figures.curves.decode
    if name == "prefill_tokens_per_s" and prefill:
        return prefill[-1].stats.tokens_per_s.n
    if name in ("decode_tokens_per_s", "time_per_output_token_s", "time_to_first_token_s") and decode:
        stats = decode[0].stats
        return {
            "decode_tokens_per_s": stats.decode_tokens_per_s,
            "time_per_output_token_s": stats.time_per_output_token_s,
            "time_to_first_token_s": stats.time_to_first_token_s,
        }[name].n
    return 1
