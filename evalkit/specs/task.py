"""Typed task and suite specifications, loaded from YAML with file:line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from evalkit.specs._validate import validate_located
from evalkit.specs._yaml import load_located_yaml
from evalkit.specs.dataset import DatasetSpec

KindName = Literal["multiple_choice", "loglikelihood", "generate", "perplexity", "efficiency"]


class GenerationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stop: list[str] = Field(default_factory=lambda: ["\n\n"])
    max_tokens: int = Field(default=64, ge=1)


class AnswerSpec(BaseModel):
    """How a generated answer is extracted and compared with the references."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    regex: str | None = Field(default=None, description="first capture group (or whole match) is the answer")
    ignore_case: bool = True
    ignore_punctuation: bool = False
    strip: bool = True


class EfficiencySpec(BaseModel):
    """What an `efficiency` task measures and how long it keeps measuring (see `evalkit.efficiency`).

    Lengths are in tokens of seeded random input. Each figure is repeated until both
    `min_repetitions` and `min_seconds` are reached, after `warmup` unrecorded runs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_lengths: list[PositiveInt] = Field(default_factory=lambda: [128, 512, 2048], min_length=1)
    context_lengths: list[PositiveInt] = Field(default_factory=lambda: [128, 512, 2048], min_length=1)
    decode_tokens: PositiveInt = 32
    warmup: int = Field(default=1, ge=0)
    min_repetitions: PositiveInt = 3
    min_seconds: float = Field(default=1.0, ge=0)
    seed: int = 1234
    isolate: bool = Field(default=True, description="measure in a fresh subprocess that loads the model")
    timeout_s: float = Field(default=1800.0, gt=0, description="the subprocess is killed after this long")


class TaskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$")
    kind: KindName
    summary: str = ""
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)  # empty for the efficiency kind
    preprocess: str | None = Field(default=None, description="registered preprocessor name")
    template: str = Field(default="{query}", description="str.format template over the document's fields")
    instruction: str = Field(default="", description="prepended once, before the few-shot examples")
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    num_fewshot: int = Field(default=0, ge=0)
    fewshot_seed: int = 1234
    metrics: list[str] | None = None
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    answer: AnswerSpec = Field(default_factory=AnswerSpec)
    tags: list[str] = Field(default_factory=list)
    efficiency: EfficiencySpec | None = None  # kind efficiency only (defaults when omitted)
    published: dict[str, float] = Field(
        default_factory=dict, description="reference scores, e.g. {'smollm2-135m/acc_norm': 0.5}"
    )

    source_file: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _efficiency_block_fits_kind(self) -> TaskSpec:
        if self.efficiency is not None and self.kind != "efficiency":
            raise ValueError(f"an efficiency block needs kind: efficiency (this task is {self.kind})")
        if self.kind != "efficiency" and "dataset" not in self.model_fields_set:
            raise ValueError(f"kind {self.kind} needs a dataset block")
        return self


class SuiteEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    limit: int | None = Field(default=None, ge=1)
    num_fewshot: int | None = Field(default=None, ge=0)


class SuiteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str
    summary: str = ""
    tasks: list[SuiteEntry] = Field(min_length=1)

    source_file: str | None = Field(default=None, exclude=True)


def load_task_file(path: Path) -> TaskSpec:
    located = load_located_yaml(path)
    spec = validate_located(TaskSpec, located)
    return spec.model_copy(update={"source_file": str(path)})


def load_suite_file(path: Path) -> SuiteSpec:
    located = load_located_yaml(path)
    spec = validate_located(SuiteSpec, located)
    return spec.model_copy(update={"source_file": str(path)})
