"""What every task executor returns: the task's facts, its metrics and samples, and what ran.

An executor states the run it actually made (`RunFacts`): the limit it applied and in which unit,
the seed that drove it, the batch sizes it sent requests with, the shots and the number of
documents evaluated. The runner copies these into the record, so a record never repeats a
command-line option that the task did not use.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from evalkit.paths import task_file_locator
from evalkit.results import (
    EfficiencyFigures,
    LongContextMatrix,
    MetricValue,
    SampleLog,
    SourceFacts,
    TaskFacts,
)
from evalkit.specs import TaskSpec

# What `limit` counts: documents, samples per long-context grid cell, or nothing (no limit applies).
LimitUnit = Literal["documents", "samples_per_cell", "none"]


@dataclass(frozen=True)
class RunFacts:
    """What an executor actually did, as the record's `config` states it."""

    executor: str
    limit: int | None  # the cap applied, in `limit_unit`; None = everything
    limit_unit: LimitUnit
    seed: int | None  # None when nothing random was drawn
    batch_size: int | Literal["auto"] | None  # the batch size asked for; None when the kind takes none
    batch_sizes: tuple[int, ...]  # the batch sizes requests were actually sent with
    num_fewshot: int
    num_documents: int  # documents (long context: grid samples) evaluated


@dataclass(frozen=True)
class TaskOutcome:
    task: TaskFacts
    metrics: dict[str, MetricValue]
    samples: list[SampleLog]
    ran: RunFacts
    efficiency: EfficiencyFigures | None = None  # kind `efficiency` only: the record's figures
    long_context: LongContextMatrix | None = None  # kind `long_context` only: the grid
    notes: tuple[str, ...] = field(default=())  # e.g. "seed ignored: nothing is sampled"


def fingerprint_json(spec: TaskSpec) -> str:
    """The spec as the fingerprint sees it: fields left at their defaults are omitted, so adding a
    new optional field to the schema does not change the fingerprint of every existing task."""
    return spec.model_dump_json(exclude_defaults=True)


def task_fingerprint(spec_json: str, request_keys: Sequence[str]) -> str:
    """sha256 over the resolved task spec and every request sent (so over the exact samples)."""
    digest = hashlib.sha256(spec_json.encode("utf-8"))
    digest.update(json.dumps(list(request_keys)).encode("utf-8"))
    return digest.hexdigest()


def task_facts(
    spec: TaskSpec,
    *,
    fingerprint: str,
    primary_metric: str,
    num_fewshot: int,
    num_samples: int,
    source: SourceFacts,
    kind: str | None = None,
) -> TaskFacts:
    """The one way an executor describes the task it ran (name, kind and file from the spec)."""
    return TaskFacts(
        name=spec.name,
        kind=kind or spec.kind,
        fingerprint=fingerprint,
        spec_file=task_file_locator(spec.source_file),
        primary_metric=primary_metric,
        num_fewshot=num_fewshot,
        num_samples=num_samples,
        source=source,
    )


UNAVAILABLE_SOURCE = SourceFacts(
    origin="unavailable", format="", location="", split="", num_documents=0, content_sha256=""
)
